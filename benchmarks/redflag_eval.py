"""Precision and recall of the clinical red flags (``medcore.redflags``) on planted errors.

Built from the real sentence pairs of the shared test split (``prepared/sentences/test.jsonl``; each
pair appears in both directions): every unaltered pair is a *clean* case, and each of these edits of
the reference translation is one *planted* case:

- ``number``: one digit run of the translation changed (+1, ×10, −1 or its digits swapped); up to two
  such cases per pair, each changing another number;
- ``unit``: one dose unit swapped (mg ↔ μg, mL ↔ L, mmol/L ↔ mg/dL …);
- ``negation``: (up to two cases per pair) one negation word of the translation deleted (not, no, n't, without→with, never,
  denies→reports; 不, 未, 无, 没有, 否认→承认), where the source has a negation too ("not only"/不仅
  is emphasis, not a negation, and is never deleted);
- ``laterality``: left and right swapped (left ↔ right, 左 ↔ 右), where the source names a side.

The edits are found with their own simple patterns, not with the checker's. A case counts as
flagged when ``check_pair`` returns any flag; precision = planted flagged / all flagged, recall =
planted flagged / planted. "Right kind" counts a planted case only when a flag of its own kind fired.

    python -m benchmarks.redflag_eval                       # test split, seed 13
    python -m benchmarks.redflag_eval --split val --json out.json

The cue lists of the checker were tuned while looking at the clean test and val sentences and the
misses on them, and then at a seeded 600-row sample of the train split, so those figures are
optimistic; the next 600 rows of the same seeded order, never looked at while tuning, are the fair
figure:

    python -m benchmarks.redflag_eval --split train --limit 600             # looked at (tuning)
    python -m benchmarks.redflag_eval --split train --skip 600 --limit 600  # held out
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

from medcore.redflags import check_pair

# A quantity: not inside an identifier (COVID-19, N95) and the whole digit run (not its last digit).
_DIGITS = re.compile(r"(?<![A-Za-z\-\d.,])\d+(?![\d.,]\d|[A-Za-z]*-?\d)")
_EN_NEG = [(re.compile(r"\b(do|does|did|is|are|was|were|has|have|had|can|could|should|will|would|may|must)"
                       r" not\b", re.I), r"\1"),
           (re.compile(r"n't\b"), ""), (re.compile(r"\bnot\b\s*", re.I), ""), (re.compile(r"\bno\b\s*", re.I), ""),
           (re.compile(r"\bwithout\b", re.I), "with"), (re.compile(r"\bnever\b\s*", re.I), ""),
           (re.compile(r"\bdenie([sd])\b", re.I), r"reporte\1"), (re.compile(r"\bnone\b", re.I), "all")]
_ZH_NEG = [(re.compile(r"否认"), "承认"), (re.compile(r"没有"), "有"), (re.compile(r"[不未无没]"), "")]
_SRC_SIDE = {"zh": re.compile(r"(?<!右)[左右](?!右)"), "en": re.compile(r"\b(left|right)\b", re.I)}
_SRC_NEG = {"zh": re.compile(r"[不未无没]|否认"),
            "en": re.compile(r"\b(no|not|never|without|denies|denied|none)\b|n't\b", re.I)}
_UNIT_SWAPS = [("mg", "μg"), ("μg", "mg"), ("mL", "L"), ("ml", "L"), ("mmol/L", "mg/dL"), ("kg", "g"),
               ("毫克", "微克"), ("微克", "毫克"), ("毫升", "升"), ("%", "‰")]
_SIDES = {"en": (re.compile(r"\b(left|right|Left|Right)\b"), {"left": "right", "right": "left",
                                                                "Left": "Right", "Right": "Left"}),
          "zh": (re.compile(r"[左右]"), {"左": "右", "右": "左"})}


def plant_numbers(text: str, rng: random.Random, k: int) -> list[str]:
    """Up to ``k`` variants, each with a different digit run changed."""
    matches = list(_DIGITS.finditer(text))
    return [_change(text, m, rng) for m in rng.sample(matches, min(k, len(matches)))]


def _change(text: str, m: re.Match[str], rng: random.Random) -> str:
    value = int(m.group())
    ops = [value + 1, value * 10 if value else 5, max(value - 1, 0) if value > 1 else value + 2]
    if len(m.group()) >= 2 and m.group()[0] != m.group()[-1]:
        ops.append(int(m.group()[::-1].lstrip("0") or "0"))
    new = str(rng.choice([o for o in ops if o != value]))
    return text[: m.start()] + new + text[m.end() :]


def plant_unit(text: str, rng: random.Random) -> str | None:
    options = [(a, b) for a, b in _UNIT_SWAPS if re.search(r"\d\s*" + re.escape(a) + r"(?![A-Za-z])", text)]
    if not options:
        return None
    a, b = rng.choice(options)
    m = rng.choice(list(re.finditer(r"(?<=\d)(\s*)" + re.escape(a) + r"(?![A-Za-z])", text)))
    return text[: m.start()] + m.group(1) + b + text[m.end() :]


def plant_negations(source: str, text: str, src_lang: str, tgt_lang: str, rng: random.Random, k: int) -> list[str]:
    """Up to ``k`` variants, each with a different negation deleted."""
    if not _SRC_NEG[src_lang].search(source):
        return []
    candidates = []
    for pattern, repl in _EN_NEG if tgt_lang == "en" else _ZH_NEG:
        for m in pattern.finditer(text):
            # "not only" / 不仅 is emphasis, not a negation: deleting it is no clinical error.
            if not re.match(r"(not\s+)?only|仅|僅", text[m.end() :].lstrip(), re.I):
                candidates.append((m, pattern, repl))
    out = []
    for m, _pattern, repl in rng.sample(candidates, min(k, len(candidates))):
        variant = text[: m.start()] + m.expand(repl) + text[m.end() :]
        if variant not in out:
            out.append(variant)
    return out


def plant_laterality(source: str, text: str, src_lang: str, lang: str) -> str | None:
    """Swap the sides, where the source names a side (a "left" that is a verb is no laterality)."""
    pattern, swap = _SIDES[lang]
    if not _SRC_SIDE[src_lang].search(source) or not pattern.search(text):
        return None
    return pattern.sub(lambda m: swap[m.group()], text)


def build_cases(rows: list[dict], seed: int, per_kind: int = 2) -> list[dict]:
    """Every pair unaltered, and up to ``per_kind`` planted variants of each kind (one error each)."""
    rng = random.Random(seed)
    cases = []
    for row in rows:
        src_lang, tgt_lang = row["direction"].split("-")
        src, tgt = row["source"], row["target"]
        cases.append({"id": row["id"], "kind": "clean", "direction": row["direction"], "source": src, "translation": tgt})
        planted = [("number", t) for t in plant_numbers(tgt, rng, per_kind)]
        planted += [("unit", plant_unit(tgt, rng)),
                    *[("negation", t) for t in plant_negations(src, tgt, src_lang, tgt_lang, rng, per_kind)],
                    ("laterality", plant_laterality(src, tgt, src_lang, tgt_lang))]
        for kind, text in planted:
            if text is not None and text != tgt:
                cases.append({"id": row["id"], "kind": kind, "direction": row["direction"], "source": src,
                              "translation": text})
    return cases


def evaluate(cases: list[dict]) -> dict:
    tp = fp = fn = tn = 0
    right_kind: Counter[str] = Counter()
    per_kind: Counter[str] = Counter()
    per_kind_hit: Counter[str] = Counter()
    false_alarms: Counter[str] = Counter()
    for case in cases:
        flags = check_pair(case["source"], case["translation"], case["direction"])
        flagged = bool(flags)
        if case["kind"] == "clean":
            fp += flagged
            tn += not flagged
            for f in flags:
                false_alarms[f.kind] += 1
        else:
            per_kind[case["kind"]] += 1
            per_kind_hit[case["kind"]] += flagged
            tp += flagged
            fn += not flagged
            kinds = {f.kind for f in flags}
            # A changed number may surface as a number or a unit flag, and vice versa.
            own = {"number": {"number", "unit"}, "unit": {"unit", "number"}}.get(case["kind"], {case["kind"]})
            right_kind[case["kind"]] += bool(kinds & own)
    planted = tp + fn
    return {
        "clean_cases": tp + fp + fn + tn - planted, "planted_cases": planted,
        "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / planted if planted else None,
        "recall_right_kind": sum(right_kind.values()) / planted if planted else None,
        "false_alarm_rate": fp / (fp + tn) if fp + tn else None,
        "false_alarms_by_kind": dict(false_alarms),
        "per_kind": {k: {"cases": per_kind[k], "recall": per_kind_hit[k] / per_kind[k],
                         "recall_right_kind": right_kind[k] / per_kind[k]} for k in sorted(per_kind)},
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, default=Path("prepared/sentences"))
    ap.add_argument("--split", default="test", choices=("test", "val", "train"))
    ap.add_argument("--limit", type=int, default=0, help="use a seeded sample of this many rows (0: all)")
    ap.add_argument("--skip", type=int, default=0,
                    help="with --limit: skip this many rows of the seeded order first (a disjoint sample)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--per-kind", type=int, default=2, help="planted variants of each kind per pair (default 2)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--show-misses", type=int, default=0, help="print this many missed planted cases and false alarms")
    args = ap.parse_args(argv)
    path = args.prepared / f"{args.split}.jsonl"
    if not path.is_file():
        print(f"error: {path} not found (run `tsx-train prepare` or pass --prepared)", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.limit and args.limit < len(rows):
        # One seeded order of all rows; --skip N --limit M takes rows N..N+M-1 of it, so
        # `--limit 600` (tuning) and `--skip 600 --limit 600` (held out) never share a row.
        rows = random.Random(args.seed).sample(rows, len(rows))[args.skip:args.skip + args.limit]
    cases = build_cases(rows, args.seed, args.per_kind)
    result = evaluate(cases)
    result["split"], result["seed"] = args.split, args.seed
    print(f"red flags on {path}: {result['clean_cases']} clean + {result['planted_cases']} planted cases")
    print(f"  precision {result['precision']:.3f}  recall {result['recall']:.3f}  "
          f"(recall with a flag of the planted kind {result['recall_right_kind']:.3f}); "
          f"false alarms on clean pairs {result['fp']} ({result['false_alarm_rate']:.1%}) {result['false_alarms_by_kind']}")
    for kind, r in result["per_kind"].items():
        print(f"  {kind:<11} {r['cases']:>4} cases  recall {r['recall']:.3f}  right kind {r['recall_right_kind']:.3f}")
    if args.show_misses:
        shown = 0
        for case in cases:
            flags = check_pair(case["source"], case["translation"], case["direction"])
            if (case["kind"] == "clean") == bool(flags) and shown < args.show_misses:
                shown += 1
                print(f"--- {case['kind']} {case['id']} flags={[f.message for f in flags]}\n  S: {case['source'][:160]}"
                      f"\n  T: {case['translation'][:160]}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
