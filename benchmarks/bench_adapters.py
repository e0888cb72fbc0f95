"""What the runtime LoRA adapters of a tuned model cost: the same engine and context, adapters off and on.

A tuned model (``resources/models/<name>.yaml``) is a bundled base plus GGUF LoRA adapters that
llama.cpp applies at run time. This loads it once through the app's engine and translates the same
sentences with the adapters switched off (the base alone, as **Base model only** does) and on,
interleaved (off, on, off, on, ...) so a busy machine slows both alike, and reports the medians and
the ratio. Each run is ``bench_engine.app_run``: decode speed = (tokens - 1) / (time after the first token).

    python -m benchmarks.bench_adapters                        # the default model
    python -m benchmarks.bench_adapters --model tsx-medtrans-0.5b --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from benchmarks.bench_engine import app_run
from medcore.modelspec import default_model
from runtime.engine import TranslationEngine
from runtime.machine import default_threads
from runtime.options import LoadOptions

SENTENCES = [
    ("患者诊断为急性心肌梗死，行经皮冠状动脉介入治疗后恢复良好，出院后继续口服阿司匹林和氯吡格雷。", "zh-en"),
    ("The patient was admitted with community-acquired pneumonia and started on intravenous ceftriaxone.", "en-zh"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a tuned-model spec name or file (default: the default model)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    model = args.model or default_model()
    engine = TranslationEngine()
    t0 = time.perf_counter()
    info = engine.load(model, LoadOptions(n_ctx=args.ctx, n_threads=args.threads or default_threads()))
    load_s = time.perf_counter() - t0
    if not info.adapters:
        ap.error(f"{model} has no runtime adapters: give a tuned model (resources/models/<name>.yaml)")
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.repeats):
        for source, direction in SENTENCES:
            for state in ("off", "on"):
                engine.set_adapters_active(state == "on")
                runs[state].append(app_run(engine, source, direction, args.max_tokens))
    engine.set_adapters_active(True)

    def med(state: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[state])

    summary = {"model": model, "adapters": [a["file"] for a in info.adapters], "load_s": round(load_s, 2),
               "threads": args.threads or default_threads(), "repeats": args.repeats,
               **{state: {key: round(med(state, key), 3) for key in ("seconds", "first_token_s", "decode_tok_s", "tokens")}
                  for state in runs}}
    summary["decode_ratio_on_vs_off"] = round(summary["on"]["decode_tok_s"] / summary["off"]["decode_tok_s"], 3)
    summary["seconds_ratio_on_vs_off"] = round(summary["on"]["seconds"] / summary["off"]["seconds"], 3)
    print(f"{model}: {len(summary['adapters'])} runtime adapter(s), loaded in {summary['load_s']} s, "
          f"{summary['threads']} threads, {args.repeats} × {len(SENTENCES)} sentences each way, medians:")
    print("| adapters | s/sentence | first token s | decode tok/s | tokens |")
    print("|---|---:|---:|---:|---:|")
    for state in ("off", "on"):
        r = summary[state]
        print(f"| {state} | {r['seconds']:.2f} | {r['first_token_s']:.2f} | {r['decode_tok_s']:.2f} | {r['tokens']:.0f} |")
    print(f"decode speed on/off: {summary['decode_ratio_on_vs_off']:.3f}×; time per sentence on/off: "
          f"{summary['seconds_ratio_on_vs_off']:.3f}×")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(summary | {"runs": runs}, fh, ensure_ascii=False, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
