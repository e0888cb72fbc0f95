"""Translate the sentences of the "to review" label set with the bundled 0.5B (step 1 of 2).

The label set (``benchmarks/data/review_labels.jsonl``) stores, per sentence of the shared test
split, the id, the model's translation and one hand label per glossary term the checker looked at.
This script makes the translations: the first ``--n`` TICO-19 (CC0) sentences of each direction of
``prepared/sentences/test.jsonl``, greedy, one CPU thread. Translations are stored (not re-made by
the evaluation) because a label is a judgement on one exact output.

    python -m benchmarks.review_translate --n 40 --out /tmp/review_hyp.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from runtime.engine import TranslationEngine
from runtime.options import LoadOptions


def select(test_path: Path, n: int, directions: tuple[str, ...]) -> list[dict]:
    rows = [json.loads(line) for line in test_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for direction in directions:
        picked = [r for r in rows if r["direction"] == direction and r["origin"].startswith("tico19")][:n]
        out.extend(picked)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=Path, default=Path("prepared/sentences/test.jsonl"))
    ap.add_argument("--n", type=int, default=40, help="sentences per direction")
    ap.add_argument("--directions", default="zh-en,en-zh")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    rows = select(args.test, args.n, tuple(args.directions.split(",")))
    engine = TranslationEngine()
    engine.load(args.model, LoadOptions(n_threads=args.threads))
    with args.out.open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows, 1):
            result = engine.translate(row["source"], row["direction"])
            fh.write(json.dumps({"id": row["id"], "direction": row["direction"],
                                 "translation": result.translation}, ensure_ascii=False) + "\n")
            fh.flush()
            print(f"{i}/{len(rows)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
