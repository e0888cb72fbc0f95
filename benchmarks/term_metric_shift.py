"""How the sentence term-accuracy metric moves with issue 13's matcher (same glossary, same outputs).

``evaluation.scoring.sentence_term_accuracy`` counts, for every glossary term in a source sentence,
whether an expected translation appears in the output, with ``medcore.terms``' matcher. Issue 13
changed that matcher (inflection and British/American spelling tolerated, alternatives split, CJK
next to English words). This prints the metric with the matcher before (commit 30e00fe, read with
``git show``) and after, on

- the reference translations of the shared test split used as if they were outputs (a perfect
  system; every miss is a false alarm of the matcher), and
- the bundled 0.5B's outputs stored in ``benchmarks/data/review_labels.jsonl`` (66 sentences),

with the glossary ``tsx-eval`` uses (``prepared/glossary.tsv``: a plain term file, so every entry is
required and priorities play no part — the metric's denominator is the same before and after except
where the English-side matching finds more or fewer source terms).

    python -m benchmarks.term_metric_shift
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.review_flag_eval import load_before_module


def accuracy_before(mod, glossary, rows: list[tuple[str, str, str, str | None]]) -> tuple[int, int, int, int]:
    correct = total = c_correct = c_total = 0
    for source, output, direction, reference in rows:
        src, tgt = direction.split("-")
        for check in glossary.check(source, output, src, tgt):
            total += 1
            correct += check.ok
            if reference is not None and any(mod.find_phrase(reference, e, tgt) for e in check.expected):
                c_total += 1
                c_correct += check.ok
    return correct, total, c_correct, c_total


def accuracy_after(glossary, rows: list[tuple[str, str, str, str | None]]) -> tuple[int, int, int, int]:
    from evaluation.scoring import sentence_term_accuracy

    correct = total = c_correct = c_total = 0
    for direction in ("zh-en", "en-zh"):
        part = [r for r in rows if r[2] == direction]
        if not part:
            continue
        src, tgt = direction.split("-")
        refs = [r[3] for r in part]
        every, confirmed = sentence_term_accuracy([r[0] for r in part], [r[1] for r in part], src, tgt, glossary,
                                                  refs if all(x is not None for x in refs) else None)
        correct, total = correct + every.correct, total + every.total
        c_correct, c_total = c_correct + confirmed.correct, c_total + confirmed.total
    return correct, total, c_correct, c_total


def _fmt(c: int, t: int) -> str:
    return f"{c / t:.3f} ({c}/{t})" if t else "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, default=Path("prepared"))
    ap.add_argument("--labels", type=Path, default=Path(__file__).parent / "data" / "review_labels.jsonl")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    test, glossary_path = args.prepared / "sentences" / "test.jsonl", args.prepared / "glossary.tsv"
    for path in (test, glossary_path, args.labels):
        if not path.is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 2
    from medcore.terms import Glossary

    before_mod = load_before_module(Path(__file__).resolve().parent.parent)
    before, after = before_mod.Glossary.load(glossary_path), Glossary.load(glossary_path)
    records = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_id = {r["id"]: r for r in records}
    refs_as_outputs = [(r["source"], r["target"], r["direction"], None) for r in records]
    labelled = [json.loads(line) for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    model_outputs = [(by_id[x["id"]]["source"], x["translation"], x["direction"], by_id[x["id"]]["target"])
                     for x in labelled]
    result = {}
    print(f"sentence term accuracy with {glossary_path} ({len(after)} terms)")
    for name, rows in (("references as outputs (test split, both directions)", refs_as_outputs),
                       ("0.5B outputs (review label set)", model_outputs)):
        b, a = accuracy_before(before_mod, before, rows), accuracy_after(after, rows)
        result[name] = {"before": b, "after": a}
        print(f"  {name}:\n    all terms:            before {_fmt(b[0], b[1])}  after {_fmt(a[0], a[1])}")
        if rows[0][3] is not None:
            print(f"    reference-confirmed:  before {_fmt(b[2], b[3])}  after {_fmt(a[2], a[3])}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
