"""Decode speed of the app's engine vs bare llama-cpp-python, first-token latency, transformers for scale.

The same GGUF, the same prompt (the prompt contract through the GGUF's chat template), greedy, the
same number of threads. Runs are interleaved (bare, app, bare, app, ...) so a busy machine slows
both alike, and the median is reported. Decode speed = (tokens - 1) / (time after the first token),
measured the same way for both. The goal is app >= 95 % of bare.

    python -m benchmarks.bench_engine                      # bundled 0.5B
    python -m benchmarks.bench_engine --model qwen2.5-coder-1.5b --no-hf
    python -m benchmarks.bench_engine --json bench.json
    python -m benchmarks.bench_engine --no-repack          # weight repacking off (as TSX_NO_REPACK=1)

Native vs portable build, repacking on and off, prompt and decode speed side by side:
``benchmarks/bench_cpu_backends.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from medcore.models import SMALL_MODEL, resolve_model
from medcore.prompt import load_contract, split_direction
from medcore.textnorm import normalize
from runtime.engine import TranslationEngine
from runtime.machine import default_threads
from runtime.options import LoadOptions

SENTENCE = "患者诊断为急性心肌梗死，行经皮冠状动脉介入治疗后恢复良好，出院后继续口服阿司匹林和氯吡格雷。"


def bare_run(llm, source: str, direction: str, max_tokens: int) -> dict:
    """What an integrator would write with llama-cpp-python alone."""
    src_lang, _ = split_direction(direction)
    messages = load_contract().messages(normalize(source, src_lang), direction)
    t0 = time.perf_counter()
    first = None
    text = []
    for chunk in llm.create_chat_completion(messages=messages, stream=True, temperature=0.0, max_tokens=max_tokens):
        piece = chunk["choices"][0].get("delta", {}).get("content")
        if piece:
            if first is None:
                first = time.perf_counter() - t0
            text.append(piece)
    total = time.perf_counter() - t0
    out = "".join(text).strip()
    n = len(llm.tokenize(out.encode("utf-8"), add_bos=False, special=False))
    return {"text": out, "tokens": n, "first_token_s": first, "seconds": total,
            "decode_tok_s": (n - 1) / (total - first) if n > 1 else 0.0}


def app_run(engine: TranslationEngine, source: str, direction: str, max_tokens: int) -> dict:
    result = engine.translate(source, direction, max_new_tokens=max_tokens)
    seg = result.segments[0]
    n = seg.generated_tokens
    return {"text": result.translation, "tokens": n, "first_token_s": seg.first_token_s, "seconds": seg.seconds,
            "decode_tok_s": (n - 1) / (seg.seconds - seg.first_token_s) if n > 1 else 0.0}


def hf_run(model_path, source: str, direction: str, max_tokens: int, threads: int) -> dict:
    import torch

    from hfmodel.loading import load_model, load_tokenizer
    from medcore.prompt import end_of_turn_id, render_prompt_ids

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path)
    model.eval()
    load_s = time.perf_counter() - t0
    src_lang, _ = split_direction(direction)
    ids = torch.tensor([render_prompt_ids(tokenizer, normalize(source, src_lang), direction)])
    eot = end_of_turn_id(tokenizer)
    with torch.inference_mode():
        t1 = time.perf_counter()
        model.generate(ids, max_new_tokens=1, do_sample=False, eos_token_id=eot, pad_token_id=eot)
        first = time.perf_counter() - t1
        t2 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, eos_token_id=eot, pad_token_id=eot)
        total = time.perf_counter() - t2
    new = out[0, ids.shape[1]:].tolist()
    if new and new[-1] == eot:
        new = new[:-1]
    n = len(new)
    return {"text": tokenizer.decode(new, skip_special_tokens=True).strip(), "tokens": n, "first_token_s": first,
            "seconds": total, "decode_tok_s": (n - 1) / (total - first) if n > 1 else 0.0, "load_s": load_s}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=SMALL_MODEL, help="GGUF path or bundled name (default: the 0.5B)")
    ap.add_argument("--sentence", default=SENTENCE)
    ap.add_argument("--direction", default="zh-en")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--hf-tokens", type=int, default=16, help="tokens for the transformers run (slow on CPU)")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers comparison")
    ap.add_argument("--no-repack", action="store_true", help="load without weight repacking (as TSX_NO_REPACK=1)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    import llama_cpp

    from runtime.llamacpp import ensure_backends, open_llama

    path = resolve_model(args.model)
    threads = args.threads or default_threads()
    runtime = ensure_backends()
    opts = LoadOptions(n_ctx=args.ctx, n_threads=threads, repack=not args.no_repack)
    engine = TranslationEngine()
    t0 = time.perf_counter()
    engine.load(path, opts)
    app_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    # "bare": llama-cpp-python alone, loaded through the project's one door to llama.cpp (the CPU
    # backend must be loaded first in the portable build; the same repacking as the app).
    bare = open_llama(path, repack=opts.repack, n_ctx=args.ctx, n_batch=opts.n_batch, n_threads=threads,
                      verbose=False)
    bare_load = time.perf_counter() - t0

    # warm-up (page in the weights for both), then interleaved measured runs
    bare_run(bare, args.sentence, args.direction, 4)
    app_run(engine, args.sentence, args.direction, 4)
    bare_runs, app_runs = [], []
    for i in range(args.repeats):
        bare_runs.append(bare_run(bare, args.sentence, args.direction, args.max_tokens))
        app_runs.append(app_run(engine, args.sentence, args.direction, args.max_tokens))
        print(f"run {i + 1}: bare {bare_runs[-1]['decode_tok_s']:.2f} tok/s, app {app_runs[-1]['decode_tok_s']:.2f} tok/s",
              file=sys.stderr)
    same_text = all(a["text"] == b["text"] for a, b in zip(app_runs, bare_runs, strict=True))
    results = {
        "model": path.name, "threads": threads, "n_ctx": args.ctx, "max_tokens": args.max_tokens,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
        "llama_cpp_python": llama_cpp.__version__, "sentence": args.sentence,
        "cpu_variant": runtime.variant, "backend_dl": runtime.backend_dl, "repack": bare.tsx_repack,
        "weight_buffers_mib": bare.tsx_buffers,
        "load_s": {"app": round(app_load, 3), "bare": round(bare_load, 3)},
        "bare": {"decode_tok_s": median(bare_runs, "decode_tok_s"), "first_token_s": median(bare_runs, "first_token_s"),
                 "tokens": bare_runs[0]["tokens"]},
        "app": {"decode_tok_s": median(app_runs, "decode_tok_s"), "first_token_s": median(app_runs, "first_token_s"),
                "tokens": app_runs[0]["tokens"]},
        "same_output": same_text,
        "translation": app_runs[0]["text"],
    }
    results["app_vs_bare"] = results["app"]["decode_tok_s"] / results["bare"]["decode_tok_s"]
    del bare
    engine.unload()
    if not args.no_hf:
        results["transformers"] = hf_run(path, args.sentence, args.direction, args.hf_tokens, threads)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, ensure_ascii=False, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
