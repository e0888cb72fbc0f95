"""Evaluation runs that survive interruption: translations are saved as they finish, and resumed.

A full test-split run through llama.cpp takes hours on a 2-core CPU, longer than a working session.
While a system translates, its rows go to ``partial.jsonl`` in its output folder, a chunk at a time
(flushed and fsynced). The file's first line is the run's **key**: the system's name, the model's
description (``translator.describe()``: weights' sha256, adapters, term block, context) and the
sha256 of the selected records. ``--resume`` reuses the rows of a partial file with the same key
(a different model or selection starts over, and says so) and skips a system whose ``metrics.json``
carries the same key. Killing a run loses at most the chunk in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medcore.atomic import write_jsonl
from medcore.records import PreparedRecord

PARTIAL = "partial.jsonl"
CHUNK = 32  # records per save: big enough for the parallel decoder's slots, small enough to lose little


def run_key(name: str, translator: Any, records: Sequence[PreparedRecord]) -> dict:
    """What makes two runs' translations interchangeable: system, model, and the exact records."""
    selection = hashlib.sha256(json.dumps([[r.id, r.direction, r.source] for r in records],
                                          ensure_ascii=False).encode("utf-8")).hexdigest()
    # Through JSON and back, so the key compares equal to the one read from a file.
    return json.loads(json.dumps({"system": name, "model": translator.describe(), "records": len(records),
                                  "selection_sha256": selection}, ensure_ascii=False, default=str))


def finished_metrics(out_dir: Path, key: dict) -> dict | None:
    """The metrics of a completed run with this key, or None."""
    try:
        metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if metrics.get("run_key") == key else None


def _saved_rows(path: Path, key: dict, total: int, say: Callable[[str], None]) -> dict[int, dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    try:
        head = json.loads(lines[0]) if lines else None
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("key") != key:
        say(f"{path}: saved translations come from another model or record selection; starting over")
        return {}
    rows: dict[int, dict] = {}
    for line in lines[1:]:
        try:
            item = json.loads(line)
        except ValueError:
            break  # the line being written when the run was killed
        if isinstance(item, dict) and isinstance(item.get("index"), int) and 0 <= item["index"] < total:
            rows[item["index"]] = item["row"]
    return rows


def translate_resumable(records: list[PreparedRecord], translate_chunk: Callable[[list[PreparedRecord]], list[dict]],
                        out_dir: Path,
                        key: dict, *, resume: bool, progress: bool = True, desc: str = "translating",
                        chunk: int | None = None, say: Callable[[str], None] = print) -> list[dict]:
    """Rows for ``records`` in order, translating only what ``partial.jsonl`` does not hold yet.

    ``translate_chunk`` turns a list of records into their rows. Without ``resume`` a partial file is
    discarded. The partial file stays after the last chunk; the caller removes it once the complete
    results are written.
    """
    from tqdm.auto import tqdm

    chunk = chunk or CHUNK
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PARTIAL
    done = _saved_rows(path, key, len(records), say) if resume and path.exists() else {}
    # Rewritten whole (atomically): drops a torn last line and any rows of another key.
    write_jsonl(path, [{"key": key}] + [{"index": i, "row": done[i]} for i in sorted(done)])
    if done:
        say(f"{desc}: resuming with {len(done)} of {len(records)} segments already translated")
    todo = [i for i in range(len(records)) if i not in done]
    bar = tqdm(total=len(records), initial=len(done), desc=desc, unit="seg", disable=not progress)
    with path.open("a", encoding="utf-8") as fh:
        for start in range(0, len(todo), chunk):
            indices = todo[start : start + chunk]
            rows = translate_chunk([records[i] for i in indices])
            for i, row in zip(indices, rows, strict=True):
                fh.write(json.dumps({"index": i, "row": row}, ensure_ascii=False) + "\n")
                done[i] = row
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(indices))
            if not progress:
                say(f"{desc}: {len(done)}/{len(records)} segments")
    bar.close()
    return [done[i] for i in range(len(records))]


def discard_partial(out_dir: Path) -> None:
    (out_dir / PARTIAL).unlink(missing_ok=True)
