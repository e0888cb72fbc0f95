"""One evaluation run: translate a test set, save every hypothesis, score it per direction and kind.

Results of one run, in its output folder:

- ``hypotheses.jsonl``: every record with its ``hypothesis`` beside ``source`` and ``reference``, the
  per-segment term checks, COMET score, time and token counts; ``hypotheses.tsv``: the same for a
  spreadsheet (id, direction, kind, source, reference, hypothesis).
- ``metrics.json``: the metrics overall, per direction and per kind (:mod:`evaluation.aggregate`),
  with sacreBLEU signatures, the model's and the data's fingerprints and the library versions.

Translations are saved as they finish (:mod:`evaluation.resume`), so an interrupted run continues.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from evaluation.aggregate import score_rows
from evaluation.resume import discard_partial, finished_metrics, run_key, translate_resumable
from evaluation.scoring import CometSpec
from medcore.atomic import write_json, write_jsonl, write_text
from medcore.records import PreparedRecord
from medcore.terms import Glossary

LIBRARIES = ("tsx-medtrans", "sacrebleu", "unbabel-comet", "torch", "transformers", "peft", "llama-cpp-python",
             "numpy")


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def translate_records(records: Sequence[PreparedRecord], translator: Any, progress: bool = True,
                      desc: str = "translating") -> list[dict]:
    """Translate records; each returned row is the record plus ``hypothesis`` and how it was made."""
    outputs = translator.translate([(r.source, r.direction) for r in records], progress=progress, desc=desc)
    rows = []
    for record, out in zip(records, outputs, strict=True):
        row = {"id": record.id, "kind": record.kind, "direction": record.direction,
               "source": record.source, "reference": record.target, "hypothesis": out.text,
               "seconds": round(out.seconds, 4), "new_tokens": out.new_tokens,
               "max_new_tokens": out.max_new_tokens, "stopped": out.stopped}
        if out.error:
            row["error"] = out.error
        if record.origin is not None:
            row["origin"] = record.origin
        rows.append(row)
    return rows


def write_hypotheses(rows: list[dict], out_dir: str | os.PathLike[str]) -> None:
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "hypotheses.jsonl", rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["id", "direction", "kind", "source", "reference", "hypothesis"])
    for r in rows:
        writer.writerow([r["id"], r["direction"], r["kind"], r["source"], r["reference"], r["hypothesis"]])
    write_text(out_dir / "hypotheses.tsv", buffer.getvalue())


def read_hypotheses(path: str | os.PathLike[str]) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(records: Sequence[PreparedRecord], translator: Any, out_dir: str | os.PathLike[str], *,
             glossary: Glossary | None = None, comet: CometSpec | None = None, data: dict | None = None,
             name: str = "system", progress: bool = True, resume: bool = False, rescore: bool = False) -> dict:
    """Translate, score and write one system's outputs; returns the metrics (also in metrics.json).

    Translations are saved as they finish (:mod:`evaluation.resume`); with ``resume`` an
    interrupted run continues where it stopped and a finished one is not translated again.
    ``rescore`` (with ``resume``) scores a finished run's saved translations again with today's
    scoring code and glossary, translating nothing.
    """
    out_dir = Path(out_dir)
    key = run_key(name, translator, records)
    checkpoint = comet.checkpoint if comet else None
    finished = finished_metrics(out_dir, key) if resume else None
    if finished is not None and finished.get("comet_checkpoint") == checkpoint and not rescore:
        say(f"{name}: finished earlier with this model and these records ({out_dir / 'metrics.json'})")
        return finished
    if finished is not None:  # same translations, another COMET choice or --rescore: score again, translate nothing
        rows = read_hypotheses(out_dir / "hypotheses.jsonl")
    else:
        rows = translate_resumable(list(records), lambda chunk: translate_records(chunk, translator, progress=False),
                                   out_dir, key, resume=resume, progress=progress, desc=name, say=say)
        # Saved before scoring, so a scoring failure (e.g. COMET) never costs the translations.
        write_hypotheses(rows, out_dir)
    metrics = score_rows(rows, glossary, comet.model() if comet else None,
                         comet.batch_size if comet else 16, progress=False)
    metrics["system"] = name
    metrics["model"] = translator.describe()
    metrics["data"] = data
    metrics["comet_checkpoint"] = checkpoint
    metrics["versions"] = library_versions()
    metrics["run_key"] = key
    write_hypotheses(rows, out_dir)
    write_json(out_dir / "metrics.json", metrics)
    discard_partial(out_dir)
    return metrics


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
