"""Data preparation: read, normalise, filter, deduplicate and split term and sentence pairs.

Output (``prepared/``): ``terms/{train,val,test}.jsonl``, ``sentences/{train,val,test}.jsonl``,
``combined_test.jsonl`` (term test + sentence test, as the paper evaluates), ``glossary.tsv`` (every
kept term pair, for term accuracy and highlighting), ``dropped.jsonl`` (every dropped line with its
reason) and ``manifest.json`` (inputs and outputs with hashes and counts). Every JSONL record is a
:class:`medcore.records.PreparedRecord`.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medcore.atomic import write_json, write_jsonl, write_text
from medcore.pairs import read_pairs
from medcore.prompt import DIRECTIONS, split_direction
from medcore.records import PreparedRecord, read_records
from medcore.resources import resource_path
from medcore.textnorm import cjk_count, latin_count, normalize_en, normalize_zh

SPLITS = ("train", "val", "test")


@dataclass
class DataConfig:
    data_root: str | None = None
    terms: list[str] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=lambda: list(DIRECTIONS))
    split: dict[str, float] = field(default_factory=lambda: {"train": 0.9, "val": 0.05, "test": 0.05, "seed": 42})
    filters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> DataConfig:
        data = yaml.safe_load(Path(path or resource_path("configs", "data.yaml")).read_text(encoding="utf-8"))
        return cls(**data)

    def root(self) -> Path:
        if self.data_root:
            return Path(self.data_root).expanduser()
        if env := os.environ.get("TSX_DATA_DIR"):
            return Path(env).expanduser()
        return Path(__file__).resolve().parents[1].parent / "shared" / "data"

    def resolve(self, name: str) -> Path:
        path = Path(name).expanduser()
        return path if path.is_absolute() or path.exists() else self.root() / name


@dataclass
class Pair:
    zh: str
    en: str
    kind: str
    origin: str


def _check(zh: str, en: str, kind: str, filters: dict[str, Any]) -> str | None:
    """The reason to drop a normalised pair, or None to keep it."""
    if not zh or not en:
        return "empty side"
    if zh == en:
        return "both sides identical"
    if cjk_count(zh) == 0:
        return "Chinese side has no Chinese characters"
    if cjk_count(en) > 0 or latin_count(en) == 0:
        return "English side is not English"
    if len(zh) > filters.get("max_zh_chars", 1000) or len(en) > filters.get("max_en_chars", 3000):
        return "over-length"
    lo, hi = filters.get(f"{kind}_ratio", (0.0, float("inf")))
    ratio = len(en) / len(zh)
    if not lo <= ratio <= hi:
        return f"length ratio {ratio:.2f} outside [{lo}, {hi}]"
    return None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_and_clean(files: list[Path], kind: str, filters: dict[str, Any], seen: dict[tuple[str, str], str],
                   dropped: list[dict], stats: dict[str, dict]) -> list[Pair]:
    """Read files of one kind; return kept pairs, append every drop with its reason."""
    kept = []
    for path in files:
        counts = Counter()
        for raw in read_pairs(path):
            origin = f"{path.name}:{raw.line}"
            zh, en = normalize_zh(raw.zh), normalize_en(raw.en)
            reason = _check(zh, en, kind, filters)
            if reason is None and (zh, en) in seen:
                reason = f"duplicate of {seen[(zh, en)]}"
            counts["read"] += 1
            if reason:
                counts["dropped"] += 1
                dropped.append({"origin": origin, "kind": kind, "reason": reason, "zh": raw.zh, "en": raw.en})
                continue
            seen[(zh, en)] = origin
            counts["kept"] += 1
            kept.append(Pair(zh, en, kind, origin))
        stats[str(path)] = {"kind": kind, "sha256": sha256_bytes(path.read_bytes()), **counts}
    return kept


def group_split(pairs: list[Pair], shares: dict[str, float], seed: int) -> dict[str, list[Pair]]:
    """Seeded split in which pairs sharing a Chinese or an English text stay together.

    Union-find over both sides: "阿司匹林 → aspirin" and "阿司匹林 → acetylsalicylic acid" share
    a source for zh→en, and "乙酰水杨酸 → aspirin" shares one for en→zh, so all three form one group.
    Groups are shuffled with the seed and dealt to test, then val, then train, by pair count.
    """
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_by_key: dict[str, int] = {}
    for i, pair in enumerate(pairs):
        for key in ("zh:" + pair.zh, "en:" + pair.en.lower()):
            j = first_by_key.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(pairs)):
        groups[find(i)].append(i)
    order = sorted(groups.values(), key=lambda g: g[0])
    random.Random(seed).shuffle(order)
    total = len(pairs)
    want = {"test": round(total * shares["test"]), "val": round(total * shares["val"])}
    if len(order) >= 3:  # small inputs: one group each for test and val rather than none
        want = {s: max(1, n) if shares[s] > 0 else n for s, n in want.items()}
    out: dict[str, list[Pair]] = {s: [] for s in SPLITS}
    for group in order:
        target = next((s for s in ("test", "val") if len(out[s]) < want[s]), "train")
        out[target].extend(pairs[i] for i in sorted(group))
    return out


def to_records(pairs: list[Pair], directions: list[str], split: str) -> list[PreparedRecord]:
    records = []
    for index, pair in enumerate(pairs):
        for direction in directions:
            src, tgt = split_direction(direction)
            records.append(PreparedRecord(
                id=f"{pair.kind}-{split}-{index:06d}-{direction}",
                kind=pair.kind,
                direction=direction,
                source=pair.zh if src == "zh" else pair.en,
                target=pair.zh if tgt == "zh" else pair.en,
                origin=pair.origin,
            ))
    return records


def prepare(config: DataConfig, out_dir: str | Path) -> dict:
    """Run the whole preparation; returns the manifest (also written to ``out_dir/manifest.json``)."""
    out = Path(out_dir)
    for direction in config.directions:
        split_direction(direction)
    shares = {k: float(config.split[k]) for k in SPLITS}
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise ValueError(f"split shares must add up to 1, got {shares}")
    seed = int(config.split.get("seed", 42))
    seen: dict[tuple[str, str], str] = {}
    dropped: list[dict] = []
    stats: dict[str, dict] = {}
    by_kind = {
        "term": read_and_clean([config.resolve(f) for f in config.terms], "term", config.filters, seen, dropped, stats),
        "sentence": read_and_clean([config.resolve(f) for f in config.sentences], "sentence", config.filters, seen,
                                   dropped, stats),
    }
    splits = {kind: group_split(pairs, shares, seed) for kind, pairs in by_kind.items()}
    check_splits(config, splits, stats, dropped)  # before anything is written
    outputs: dict[str, dict] = {}
    combined: list[PreparedRecord] = []
    for kind in by_kind:
        folder = "terms" if kind == "term" else "sentences"
        for split, split_pairs in splits[kind].items():
            records = to_records(split_pairs, config.directions, split)
            path = out / folder / f"{split}.jsonl"
            write_jsonl(path, [r.to_dict() for r in records])
            outputs[f"{folder}/{split}.jsonl"] = _describe(path, records)
            if split == "test":
                combined.extend(records)
    write_jsonl(out / "combined_test.jsonl", [r.to_dict() for r in combined])
    outputs["combined_test.jsonl"] = _describe(out / "combined_test.jsonl", combined)
    glossary = "".join(f"{p.zh}\t{p.en}\n" for p in by_kind["term"])
    write_text(out / "glossary.tsv", glossary)
    outputs["glossary.tsv"] = {"sha256": sha256_bytes(glossary.encode()), "pairs": len(by_kind["term"])}
    write_jsonl(out / "dropped.jsonl", dropped)
    manifest = {
        "config": {**config.__dict__, "data_root": str(config.root())},
        "inputs": stats,
        "outputs": outputs,
        "dropped": {"total": len(dropped), "by_reason": _reason_counts(dropped), "file": "dropped.jsonl"},
    }
    write_json(out / "manifest.json", manifest)
    return manifest


class EmptySplitError(ValueError):
    """A prepared split would hold no records (empty inputs, everything dropped, or too few pairs)."""


def check_splits(config: DataConfig, splits: dict[str, dict[str, list[Pair]]], stats: dict[str, dict],
                 dropped: list[dict]) -> None:
    """Raise :class:`EmptySplitError` naming the inputs if any split of any kind would be empty.

    Training needs train and val, evaluation needs test: an empty split is never useful, so it is
    reported before anything is written (a previous ``prepared/`` stays as it was).
    """
    problems = []
    for kind, by_split in splits.items():
        empty = [s for s in SPLITS if not by_split[s] and float(config.split[s]) > 0]
        if not empty:
            continue
        folder = "terms" if kind == "term" else "sentences"
        files = config.terms if kind == "term" else config.sentences
        kept = sum(len(v) for v in by_split.values())
        lines = [f"{folder}: no records for {', '.join(f'{folder}/{s}.jsonl' for s in empty)} "
                 f"({kept} pair(s) kept in all)"]
        if not files:
            lines.append(f"  no {kind} input files were given (--{folder} or the data config's `{folder}:`)")
        for name in files:
            path = config.resolve(name)
            info = stats.get(str(path), {})
            read, ok = info.get("read", 0), info.get("kept", 0)
            what = "empty (no pairs)" if read == 0 else f"{read} line(s) read, {ok} kept"
            lines.append(f"  {path}: {what}")
        reasons = Counter(d["reason"] if not d["reason"].startswith("duplicate") else "duplicate"
                          for d in dropped if d["kind"] == kind)
        if reasons:
            lines.append("  dropped: " + ", ".join(f"{r} ({n})" for r, n in reasons.most_common()))
        if kept:
            lines.append(f"  {kept} pair(s) are too few to fill train/val/test; give at least 3 distinct "
                         f"{kind} pairs (about 20 for the {_shares_text(config)} shares)")
        else:
            lines.append(f"  give {kind} files that hold pairs (zh<TAB>en, CSV/XLSX, .zh/.en or JSONL)")
        problems.append("\n".join(lines))
    if problems:
        raise EmptySplitError("prepared data would have empty splits; nothing was written\n" + "\n".join(problems))


def _shares_text(config: DataConfig) -> str:
    return ":".join(f"{float(config.split[s]) * 100:g}" for s in SPLITS)


def _describe(path: Path, records: list[PreparedRecord]) -> dict:
    counts = Counter(r.direction for r in records)
    return {"sha256": sha256_bytes(path.read_bytes()), "records": len(records), "by_direction": dict(counts)}


def _reason_counts(dropped: list[dict]) -> dict[str, int]:
    counts = Counter("duplicate" if d["reason"].startswith("duplicate") else
                     "length ratio" if d["reason"].startswith("length ratio") else d["reason"] for d in dropped)
    return dict(counts.most_common())


def read_split(path: str | Path, limit: int | None = None, seed: int = 0) -> list[PreparedRecord]:
    """A prepared training/validation split; ``limit`` takes a seeded sample (for CPU-sized runs).

    A plain ``random.sample``, not :func:`medcore.records.select_records`' spread over direction x kind:
    a split holds one kind, and a run resumed from a checkpoint must draw the very examples it
    started with (runs with ``train_limit``/``val_limit`` exist).
    """
    records = read_records(path)
    if limit is not None and limit < len(records):
        records = random.Random(seed).sample(records, limit)
    return records
