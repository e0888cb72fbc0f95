"""Document throughput of the app's engine with 1, 2, 4 and 8 segments decoded side by side.

A real ~1,000-character Chinese note is translated zh→en by ``runtime.engine.TranslationEngine``
exactly as the app and ``tsx-medtrans translate --parallel N`` do it (greedy, the app's output
budgets, the default context). ``--parallel 1`` is the sequential path. For each model and N:

- wall seconds for the whole document, source characters/s and output tokens/s;
- first-token latency: from the call to the first piece of output (the first segment's first token);
- how many segments came out identical to the N = 1 translation of the same run.

All configurations of one model run back to back in one process (after one warm-up translation
of a short sentence), and the load average is printed before and after each, so that the ratios
between them are comparable even on a busy machine; the absolute numbers are not.

    python -m benchmarks.bench_parallel                                   # both bundled models
    python -m benchmarks.bench_parallel --models qwen2.5-coder-0.5b --parallel 1 4 --json out.json
    python -m benchmarks.bench_parallel --text my_note.txt

The default note is the ~1,000-character abstract ``wmt_biomed_medline_docs.tsv`` line 26 of the
shared data (``../shared/data/documents``), falling back to ``resources/samples/discharge_summary_zh.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from medcore.models import LARGE_MODEL, SMALL_MODEL, resolve_model
from runtime.engine import TranslationEngine
from runtime.machine import default_threads
from runtime.options import LoadOptions
from runtime.side_by_side import AUTO_PARALLEL

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT.parent / "shared" / "data" / "documents" / "wmt_biomed_medline_docs.tsv"
DOC_LINE = 25  # 0-based: the abstract closest to 1,000 Chinese characters (1,027)
SAMPLE = ROOT / "resources" / "samples" / "discharge_summary_zh.txt"
WARMUP = "患者诊断为急性心肌梗死。"


def load_note(path: str | None) -> tuple[str, str]:
    """(text, where it came from)."""
    if path:
        return Path(path).read_text(encoding="utf-8"), path
    if DOCS.is_file():
        line = DOCS.read_text(encoding="utf-8").split("\n")[DOC_LINE]
        return line.split("\t")[0], f"{DOCS.name} line {DOC_LINE + 1} (zh side)"
    return SAMPLE.read_text(encoding="utf-8"), str(SAMPLE.relative_to(ROOT))


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_one(engine: TranslationEngine, text: str, parallel: int) -> dict:
    first: list[float] = []
    t0 = time.perf_counter()

    def on_token(piece: str) -> None:
        if not first:
            first.append(time.perf_counter() - t0)

    before = loadavg()
    result = engine.translate(text, "zh-en", on_token=on_token, parallel=parallel)
    wall = time.perf_counter() - t0
    return {
        "parallel": parallel, "sequences_used": result.parallel, "segments": len(result.segments),
        "seconds": round(wall, 2), "chars_per_s": round(len(text) / wall, 2),
        "output_tokens": result.generated_tokens, "tok_per_s": round(result.generated_tokens / wall, 2),
        "first_token_s": round(first[0], 3) if first else None,
        "load_before": before, "load_after": loadavg(),
        "translations": [s.translation for s in result.segments],
        "finish": [s.finish_reason for s in result.segments],
    }


def bench_model(model: str, text: str, levels: list[int], threads: int, n_ctx: int) -> list[dict]:
    engine = TranslationEngine()
    info = engine.load(resolve_model(model), LoadOptions(n_ctx=n_ctx, n_threads=threads, parallel=max(levels)))
    print(f"\n{model}: {info.path.name}, ctx {info.n_ctx}, {threads} threads, CPU variant {info.cpu_variant}, "
          f"repacking {'on' if info.repack else 'off'}", flush=True)
    engine.translate(WARMUP, "zh-en", parallel=1)  # page the weights in before anything is timed
    rows = []
    for level in levels:
        row = run_one(engine, text, level)
        row["model"] = model
        rows.append(row)
        print(f"  parallel {level}: {row['seconds']:.1f} s, {row['chars_per_s']:.2f} chars/s, "
              f"{row['tok_per_s']:.2f} tok/s, first token {row['first_token_s']} s, "
              f"load {row['load_before']}→{row['load_after']}", flush=True)
    engine.unload()
    base = next((r for r in rows if r["parallel"] == 1), None)
    for row in rows:
        if base:
            row["speedup"] = round(base["seconds"] / row["seconds"], 2)
            row["first_token_ratio"] = (round(row["first_token_s"] / base["first_token_s"], 2)
                                        if row["first_token_s"] and base["first_token_s"] else None)
            same = sum(a == b for a, b in zip(row["translations"], base["translations"], strict=False))
            row["identical_segments"] = f"{same}/{len(base['translations'])}"
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=[LARGE_MODEL, SMALL_MODEL])
    ap.add_argument("--parallel", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--text", help="a UTF-8 Chinese note to translate instead of the default one "
                                   "(e.g. resources/samples/discharge_summary_zh.txt, 389 characters)")
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--ctx", type=int, default=LoadOptions().n_ctx, help="context size (default: the app's)")
    ap.add_argument("--json", help="write every number (and the translations) here")
    args = ap.parse_args(argv)
    text, origin = load_note(args.text)
    print(f"note: {origin}, {len(text)} characters; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {loadavg()}; automatic parallelism = {AUTO_PARALLEL}", flush=True)
    rows = []
    for model in args.models:
        # in the order given (dict.fromkeys drops repeats): 1 first, so every ratio has its baseline
        rows += bench_model(model, text, list(dict.fromkeys(args.parallel)), args.threads, args.ctx)
    print("\n| model | parallel | seconds | source chars/s | output tok/s | speed-up | first token (s) | "
          "first token vs 1 | identical segments | load avg before→after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['parallel']} | {r['seconds']:.1f} | {r['chars_per_s']:.2f} | {r['tok_per_s']:.2f} | "
              f"{r.get('speedup', '')}× | {r['first_token_s']} | {r.get('first_token_ratio', '')} | "
              f"{r.get('identical_segments', '')} | {r['load_before']}→{r['load_after']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"note": origin, "chars": len(text), "threads": args.threads,
                                               "rows": rows}, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
