"""Latency of attention captured from llama.cpp (the app's attention engine), by pair length.

For each model (bundled 0.5B and 1.5B) and weight repacking on/off, and for real pairs of growing
length (a short sentence up to a three-sentence paragraph of the sample discharge summary):

* ``forward``: the forward pass over prompt + translation with nothing captured (the floor), all
  tokens from an empty cache;
* ``capture``: the same full pass capturing every layer's ``kq_soft_max`` (``AttentionCapture.capture``);
* ``capture, prefix reused``: as the app does it: the prompt's text before the source (system message,
  template head: the same for every pair of a direction) stays in the cache from the previous click;
* ``click``: what a click on a term costs before drawing: capture + cutting/merging into an
  ``AttentionResult`` + term alignment + the term page's HTML (``LlamaAttentionEngine`` uncached);
* ``cold``: the first click of a session: opening the model too (a fresh engine).

Medians over ``--reps`` runs, one llama.cpp thread (the attention pane's default, see
``desktop/attention/dock.py``). The machine's load average is printed before and after: on a busy
machine the numbers are upper bounds.

    python -m benchmarks.bench_attention_capture [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b]
                                                 [--reps 3] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from medcore.resources import resource_path


def pairs() -> list[tuple[str, str, str, str]]:
    """(label, source, translation, term in the translation), shortest first."""
    zh = resource_path("samples", "discharge_summary_zh.txt").read_text(encoding="utf-8").splitlines()
    en = resource_path("samples", "discharge_summary_en.txt").read_text(encoding="utf-8").splitlines()
    return [
        ("short", "发热是最常见的症状。", "Fever is the most common symptom.", "Fever"),
        ("sentence", "患者确诊为急性心肌梗死，行经皮冠状动脉介入治疗。",
         "The patient was diagnosed with acute myocardial infarction and underwent percutaneous coronary intervention.",
         "acute myocardial infarction"),
        ("long sentence", zh[0], en[0], "acute myocardial infarction"),
        ("paragraph", "".join(zh[:3]), " ".join(en[:3]), "hypertension"),
    ]


def loadavg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_model(model: Path, repack: bool, reps: int, threads: int) -> list[dict]:
    from desktop.attention import page
    from desktop.attention.alignment import align_term
    from desktop.attention.llama_engine import LlamaAttentionEngine

    rows = []
    t0 = time.perf_counter()
    engine = LlamaAttentionEngine(model, threads=threads, repack=repack)
    label, src, tgt, term = pairs()[1]
    start = tgt.index(term)
    r = engine.compute(src, tgt, "zh-en")
    align_term(r, (start, start + len(term)))
    cold = time.perf_counter() - t0
    cap = engine.capture
    for label, src, tgt, term in pairs():
        layout = cap.layout(src, tgt, "zh-en")
        kept, gen = layout.kept, layout.gen_rows
        rows_q = kept + [g for g in gen if g not in set(kept)]
        forward = median_time(lambda layout=layout: cap.forward_only(layout.ids), reps)
        capture = median_time(lambda layout=layout, rows_q=rows_q, kept=kept: cap.capture(layout.ids, rows_q, kept), reps)
        cap.capture(layout.ids, rows_q, kept, reuse_prefix=layout.src_pos[0])  # puts the prefix in the cache
        reused = median_time(lambda layout=layout, rows_q=rows_q, kept=kept: cap.capture(
            layout.ids, rows_q, kept, reuse_prefix=layout.src_pos[0]), reps)
        start = tgt.index(term)

        def click(src=src, tgt=tgt, start=start, term=term):
            engine._cache.clear()
            result = engine.compute(src, tgt, "zh-en")
            alignment = align_term(result, (start, start + len(term)))
            panel = page.term_panel(result, alignment, "This model", band=alignment.band)
            page.term_view_html(src, tgt, "zh-en", page.TermSelection((start, start + len(term))), [panel])

        rows.append({"model": model.name, "repack": bool(cap.llm.tsx_repack), "pair": label,
                     "tokens": len(layout.ids), "source_tokens": len(layout.src_pos),
                     "translation_tokens": len(layout.tgt_pos), "forward_s": round(forward, 3),
                     "capture_s": round(capture, 3), "capture_reused_s": round(reused, 3),
                     "prefix_tokens": layout.src_pos[0], "click_s": round(median_time(click, reps), 3),
                     "cold_first_click_s": round(cold, 2), "kept_mib": round(cap.needed_bytes(len(rows_q), len(kept)) / 2**20, 2)})
        print(json.dumps(rows[-1]), flush=True)
    engine.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    from medcore.models import BUNDLED, models_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    print(f"load average before: {loadavg()} ({os.cpu_count()} CPUs)", flush=True)
    rows = []
    for name in args.models:
        path = models_dir() / BUNDLED[name].filename if name in BUNDLED else Path(name)
        for repack in (True, False):
            rows += bench_model(path, repack, args.reps, args.threads)
    after = loadavg()
    print(f"load average after: {after}")
    print("\n| model | repacking | pair | tokens (source / translation) | forward, nothing captured | capture | "
          "capture, prefix reused | click (as the app: capture + views' data + term page) | cold first click |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {'on' if r['repack'] else 'off'} | {r['pair']} | {r['tokens']} ({r['source_tokens']} / "
              f"{r['translation_tokens']}) | {r['forward_s']:.2f} s | {r['capture_s']:.2f} s | "
              f"{r['capture_reused_s']:.2f} s ({r['prefix_tokens']} reused) | {r['click_s']:.2f} s | "
              f"{r['cold_first_click_s']:.1f} s |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "threads": args.threads, "load_after": after}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
