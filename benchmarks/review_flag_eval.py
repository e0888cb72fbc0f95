"""Precision and recall of the "to review" term flag, before and after issue 13, on hand-labelled decisions.

The label set ``benchmarks/data/review_labels.jsonl`` (how it was made: ``benchmarks/data/README.md``)
holds, per sentence of the shared test split, the bundled 0.5B model's translation and one label per
glossary term the checkers looked at: ``flag`` when the translation does not render that source term
correctly (missing, wrong, left untranslated), ``ok`` when it does (any inflection or a legitimate
wording). Source sentences are read from ``prepared/sentences/test.jsonl`` by id (not copied here).

- **before**: the matcher as it was (``medcore/terms.py`` at commit ``30e00fe``, read with ``git show``)
  with the three shared lists loaded as plain term files, every entry required;
- **after**: today's matcher with the shipped default glossary (source priority, general-dictionary
  everyday words advisory, renderings its reference audit demoted advisory unless left untranslated).

A decision is flagged by a checker when a hit of that checker overlapping the labelled span is
flagged. Hits that overlap no labelled span are counted and reported (they were not labelled).

    python -m benchmarks.review_flag_eval
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BEFORE_COMMIT = "30e00fe"
SHARED_LISTS = ("terms/hpo_zh.tsv", "terms/tico19_covid_terms.tsv", "terms/cedict_medical.tsv")


def load_before_module(repo: Path):
    """The term matcher as it was before issue 13, imported from git under another name."""
    code = subprocess.run(["git", "-C", str(repo), "show", f"{BEFORE_COMMIT}:medcore/terms.py"],
                          check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "terms_before.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("terms_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["terms_before"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def flagged_spans(glossary, source: str, translation: str, direction: str, after: bool) -> list[tuple[int, int, bool]]:
    src, tgt = direction.split("-")
    out = []
    for check in glossary.check(source, translation, src, tgt):
        flag = check.flagged if after else not check.ok
        out.append((check.hit.span.start, check.hit.span.end, flag))
    return out


def score(rows: list[dict], sources: dict[str, str], glossary, after: bool) -> dict:
    tp = fp = fn = tn = 0
    unlabelled = 0
    for row in rows:
        spans = flagged_spans(glossary, sources[row["id"]], row["translation"], row["direction"], after)
        labelled = [(d["start"], d["end"]) for d in row["decisions"]]
        unlabelled += sum(1 for s, e, _ in spans if not any(s < le and ls < e for ls, le in labelled))
        for d in row["decisions"]:
            flagged = any(f for s, e, f in spans if s < d["end"] and d["start"] < e)
            truth = d["label"] == "flag"
            tp += flagged and truth
            fp += flagged and not truth
            fn += (not flagged) and truth
            tn += (not flagged) and not truth
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "flagged": tp + fp, "precision": precision, "recall": recall,
            "f1": f1, "unlabelled_hits": unlabelled}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, default=Path(__file__).parent / "data" / "review_labels.jsonl")
    ap.add_argument("--test", type=Path, default=Path("prepared/sentences/test.jsonl"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder holding terms/ (for 'before')")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    for path in (args.labels, args.test, *(args.data / f for f in SHARED_LISTS)):
        if not path.is_file():
            print(f"error: {path} not found", file=sys.stderr)
            return 2
    from medcore.glossary import load_glossary

    rows = [json.loads(line) for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    sources = {}
    for line in args.test.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            sources[record["id"]] = record["source"]
    missing = [r["id"] for r in rows if r["id"] not in sources]
    if missing:
        print(f"error: {len(missing)} labelled ids are not in {args.test} (e.g. {missing[0]})", file=sys.stderr)
        return 2
    before_mod = load_before_module(Path(__file__).resolve().parent.parent)
    before = before_mod.Glossary.load([args.data / f for f in SHARED_LISTS])
    after = load_glossary()
    n = sum(len(r["decisions"]) for r in rows)
    positives = sum(d["label"] == "flag" for r in rows for d in r["decisions"])
    result = {"decisions": n, "labelled_flag": positives, "sentences": len(rows),
              "before": score(rows, sources, before, after=False), "after": score(rows, sources, after, after=True)}
    print(f"'to review' flag on {n} labelled decisions ({positives} should be flagged) in {len(rows)} sentences")
    for name in ("before", "after"):
        r = result[name]
        print(f"  {name:<6} flagged {r['flagged']:>3}  precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
              f"F1 {r['f1']:.3f}  (tp {r['tp']}, fp {r['fp']}, fn {r['fn']}, tn {r['tn']}; "
              f"unlabelled hits {r['unlabelled_hits']})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
