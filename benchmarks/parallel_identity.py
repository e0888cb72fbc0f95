"""Share of segments whose greedy translation is identical with segments side by side and one after another.

A seeded sample of the shared sentence test split (``prepared/sentences/test.jsonl``, both directions)
is translated by the app's engine twice: every record through ``translate_many`` with up to N
sequences side by side (what ``tsx-eval --backend llamacpp`` does) and each record alone with
``parallel=1`` (the sequential path). Prints the share of identical outputs, both paths' BLEU per
direction against the references, and the records that differ.

    python -m benchmarks.parallel_identity --limit 100 --parallel 8 --model qwen2.5-coder-0.5b --json out.json

Why some differ: a sequence decoded beside others goes through batched matrix kernels that sum in
another order than the one-row kernels, so its logits differ in the last bits; greedy decoding then
picks another token where the two best are nearly tied (tests/runtime/test_parallel_decode.py replays
such outputs on the sequential path and checks every token is within a near-tie of the greedy one).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from medcore.models import SMALL_MODEL
from runtime.engine import TranslationEngine
from runtime.machine import default_threads
from runtime.options import LoadOptions

TEST = Path(__file__).resolve().parents[1] / "prepared" / "sentences" / "test.jsonl"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=SMALL_MODEL, help="bundled model, GGUF file or tuned-model spec name")
    ap.add_argument("--test", default=str(TEST))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    records = [json.loads(line) for line in Path(args.test).read_text(encoding="utf-8").splitlines() if line.strip()]
    records = random.Random(args.seed).sample(records, min(args.limit, len(records)))
    items = [(r["source"], r["direction"]) for r in records]
    engine = TranslationEngine()
    engine.load(args.model, LoadOptions(n_ctx=2048, n_threads=args.threads, parallel=args.parallel))
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    side = engine.translate_many(items)
    t_side = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [engine.translate(s, d, parallel=1) for s, d in items]
    t_alone = time.perf_counter() - t0
    segs = [(a, b) for x, y in zip(side, alone, strict=True) for a, b in zip(x.segments, y.segments, strict=True)]
    same = sum(a.translation == b.translation for a, b in segs)
    records_same = sum(x.translation == y.translation for x, y in zip(side, alone, strict=True))
    print(f"{args.model}: {len(items)} records ({len(segs)} segments), parallel {side[0].parallel} vs 1; "
          f"load average {load0:.2f}→{os.getloadavg()[0]:.2f}")
    print(f"identical segments: {same}/{len(segs)} ({100 * same / max(len(segs), 1):.1f} %); identical records "
          f"{records_same}/{len(items)}; wall {t_side:.0f} s side by side, {t_alone:.0f} s one after another")
    # "Nearly the same": the two paths' corpus BLEU against the references, per direction.
    from evaluation.scoring import bleu

    scores = {}
    for direction in sorted({d for _, d in items}):
        idx = [i for i, (_, d) in enumerate(items) if d == direction]
        refs, tgt = [records[i]["target"] for i in idx], direction.split("-")[1]
        scores[direction] = {name: round(bleu([outs[i].translation for i in idx], refs, tgt).score, 2)
                             for name, outs in (("parallel", side), ("sequential", alone))}
        print(f"BLEU {direction} ({len(idx)} records): side by side {scores[direction]['parallel']:.2f}, "
              f"one after another {scores[direction]['sequential']:.2f}")
    diffs = [(a.index, a.translation, b.translation) for a, b in segs if a.translation != b.translation]
    for _, par, seq in diffs[:10]:
        print(f"  side by side: {par[:100]!r}\n  sequential:   {seq[:100]!r}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": args.model, "records": len(items), "segments": len(segs), "identical_segments": same,
            "identical_records": records_same, "bleu": scores, "seconds_parallel": t_side, "seconds_sequential": t_alone,
            "differences": [{"parallel": p, "sequential": s} for _, p, s in diffs]}, ensure_ascii=False, indent=2))
    engine.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
