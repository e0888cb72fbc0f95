"""Test sets: loading one, the glossary that goes with it, and the identity recorded with its results.

A test set is a prepared JSONL (:mod:`medcore.records`, as written by ``tsx-train prepare``) or any
pair file :func:`medcore.pairs.read_pairs` reads (each pair is then used in both directions). The
seeded sample spread over direction x kind is :func:`medcore.records.select_records`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from medcore.pairs import read_pairs
from medcore.prompt import DIRECTIONS, split_direction
from medcore.records import PreparedRecord, read_records
from medcore.terms import Glossary
from medcore.textnorm import normalize


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_prepared(path: Path) -> bool:
    """A JSONL whose first record names a direction (a pair JSONL holds zh/en keys instead)."""
    if path.suffix.lower() != ".jsonl":
        return False
    with path.open(encoding="utf-8", newline="\n") as fh:
        first = next((line for line in fh if line.strip()), "")
    if not first:
        return False
    try:
        head = json.loads(first)
    except ValueError:
        return True  # read as prepared records, so the error names the line
    return isinstance(head, dict) and "direction" in head


def load_test_set(path: str | os.PathLike[str], kind: str | None = None) -> list[PreparedRecord]:
    """Records from a prepared JSONL, or from a pair file (both directions, ``kind`` default sentence).

    ``kind`` is also the kind of a prepared record that names none.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"test set {path} not found (run `tsx-train prepare` or pass a pair file)")
    if _is_prepared(path):
        return read_records(path, default_kind=kind or "sentence")
    records = []
    for index, pair in enumerate(read_pairs(path)):
        zh, en = normalize(pair.zh, "zh"), normalize(pair.en, "en")
        if not zh or not en:
            continue
        for direction in DIRECTIONS:
            src, _ = split_direction(direction)
            records.append(PreparedRecord(
                id=f"{path.stem}-{index:06d}-{direction}", kind=kind or "sentence", direction=direction,
                source=zh if src == "zh" else en, target=en if src == "zh" else zh,
                origin=f"{path.name}:{pair.line}"))
    return records


def load_eval_glossary(path: str | os.PathLike[str] | None) -> Glossary | None:
    """A term file, or ``default``: the app's shipped medical glossary with its priorities and advisory
    everyday words (``medcore.glossary``), i.e. what a user's translation is checked and prompted with."""
    if not path:
        return None
    if str(path) == "default":
        from medcore.glossary import load_glossary

        return load_glossary(use_default=True)
    return Glossary.load(path)


def find_glossary(test_path: str | os.PathLike[str]) -> Path | None:
    """The prepared ``glossary.tsv`` beside a test file or one folder up (``terms/test.jsonl``)."""
    test_path = Path(test_path).resolve()
    for folder in (test_path.parent, test_path.parent.parent):
        if (folder / "glossary.tsv").is_file():
            return folder / "glossary.tsv"
    return None


def data_identity(path: str | os.PathLike[str], records: Sequence[PreparedRecord]) -> dict:
    """The test file's sha256 and the selected records' ids, hashed: which data a result is about."""
    path = Path(path)
    ids = "\n".join(r.id for r in records).encode()
    return {"path": str(path), "sha256": _sha256(path.read_bytes()), "records": len(records),
            "selection_sha256": _sha256(ids)}
