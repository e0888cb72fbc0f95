"""llama.cpp builds and weight repacking side by side: prompt and decode speed for each model.

For every build × model one worker process loads the model through
``runtime.llamacpp.open_llama`` twice, with weight repacking on and off (a build with AMX
compiled in — a native one on this CPU — is always off), and measures, with the same threads, the
two interleaved (on, off, on, off, …) so load from other jobs hits both alike:

* **prompt** tok/s: one ``eval`` of a ~256-token prompt (the sample discharge summary in the chat
  template), the median of ``--repeats`` after a warm-up;
* **decode** tok/s: exactly as ``benchmarks/bench_engine.py`` measures it (greedy chat completion of
  the benchmark sentence, ``(tokens - 1) / time after the first token``), the median of ``--repeats``.

The switch itself (``TSX_NO_REPACK=1``) is tested in ``tests/runtime/test_llamacpp.py``.

Builds: ``portable`` is the llama-cpp-python this interpreter imports (the project's build);
``--build NAME=DIR`` adds another one installed into DIR (``pip install --no-deps --target DIR
<wheel>``), e.g. a native build for comparison: the worker then runs with DIR first on ``sys.path``.
The 1-minute load average is printed with every row (other work on the machine slows everything).

    python -m benchmarks.bench_cpu_backends                                  # both bundled models
    python -m benchmarks.bench_cpu_backends --build native=.whl/native-site --json bench.json
    python -m benchmarks.bench_cpu_backends --models qwen2.5-coder-1.5b --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
PROMPT_TOKENS = 256


def loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def worker(model: str, threads: int, repeats: int, max_tokens: int, ctx: int, modes: list[str]) -> list[dict]:
    """One model, loaded once per repacking mode in this process; the runs interleave (on, off, on, …)."""
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from benchmarks.bench_engine import SENTENCE, bare_run
    from medcore.models import resolve_model
    from medcore.prompt import load_contract
    from medcore.resources import RESOURCES_DIR
    from runtime.gguf_header import Key
    from runtime.llamacpp import ensure_backends, open_llama

    runtime = ensure_backends()
    path = resolve_model(model)
    llms, load_s = {}, {}
    for mode in modes:
        if mode == "on" and runtime.amx:  # forced off there: the "off" row is the same configuration
            continue
        t0 = time.perf_counter()
        llms[mode] = open_llama(path, repack=mode == "on", n_ctx=ctx, n_batch=512, n_threads=threads,
                                n_threads_batch=threads, verbose=False)
        load_s[mode] = time.perf_counter() - t0
    # prompt processing: a long prompt of the kind the app sends, cut to PROMPT_TOKENS tokens
    text = (RESOURCES_DIR / "samples" / "discharge_summary_zh.txt").read_text(encoding="utf-8")
    any_llm = next(iter(llms.values()))
    formatter = Jinja2ChatFormatter(template=any_llm.metadata[Key.CHAT_TEMPLATE], eos_token="", bos_token="")
    prompt = formatter(messages=load_contract().messages(text, "zh-en")).prompt
    ids = any_llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)[:PROMPT_TOKENS]
    pp: dict[str, list[float]] = {m: [] for m in llms}
    runs: dict[str, list[dict]] = {m: [] for m in llms}
    for llm in llms.values():  # warm-up: page the weights in, first decode
        llm.reset()
        llm.eval(ids)
        llm.reset()
        bare_run(llm, SENTENCE, "zh-en", 4)
    for _ in range(repeats):
        for mode, llm in llms.items():
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(ids)
            pp[mode].append(len(ids) / (time.perf_counter() - t0))
            llm.reset()
            runs[mode].append(bare_run(llm, SENTENCE, "zh-en", max_tokens))
    out = []
    for mode, llm in llms.items():
        r = runs[mode]
        out.append({
            "model": path.name, "llama_cpp": str(Path(llama_cpp.__file__).parent), "version": llama_cpp.__version__,
            "backend_dl": runtime.backend_dl, "cpu_variant": runtime.variant or "built-in",
            "amx_compiled_in": runtime.amx, "repack_asked": mode == "on", "repack": llm.tsx_repack,
            "buffers_mib": llm.tsx_buffers, "threads": threads, "load_s": round(load_s[mode], 2),
            "prompt_tokens": len(ids), "prompt_tok_s": round(statistics.median(pp[mode]), 2),
            "prompt_tok_s_runs": [round(x, 2) for x in pp[mode]],
            "decode_tok_s": round(statistics.median(x["decode_tok_s"] for x in r), 2),
            "decode_tok_s_runs": [round(x["decode_tok_s"], 2) for x in r],
            "first_token_s": round(statistics.median(x["first_token_s"] for x in r), 3),
            "decode_tokens": r[0]["tokens"], "translation": r[0]["text"],
        })
    for llm in llms.values():
        llm.close()
    return out


def run_one(build: str, site: str | None, model: str, modes: list[str], args) -> list[dict]:
    env = dict(os.environ)
    env.pop("TSX_NO_REPACK", None)  # the modes decide
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, str(ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "benchmarks.bench_cpu_backends", "--worker", "--models", model,
           "--threads", str(args.threads), "--repeats", str(args.repeats), "--max-tokens", str(args.max_tokens),
           "--ctx", str(args.ctx), "--modes", *modes]
    before = loadavg()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return [{"build": build, "model": model, "error": proc.stderr[-2000:], "returncode": proc.returncode}]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    for row in rows:
        row.update({"build": build, "load_avg_before": before, "load_avg_after": loadavg()})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                    help="another llama-cpp-python installed into DIR (repeatable)")
    ap.add_argument("--no-portable", action="store_true", help="only the --build ones")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--modes", nargs="+", choices=("on", "off"), default=["on", "off"],
                    help="weight repacking on and/or off (default both, interleaved in one process)")
    ap.add_argument("--json", help="also write every row here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.models[0], args.threads, args.repeats, args.max_tokens, args.ctx, args.modes),
                         ensure_ascii=False))
        return 0
    builds: list[tuple[str, str | None]] = [] if args.no_portable else [("portable", None)]
    for spec in args.build:
        name, _, folder = spec.partition("=")
        if not folder or not Path(folder).is_dir():
            ap.error(f"--build {spec}: expected NAME=DIR with an existing DIR")
        builds.append((name, str(Path(folder).resolve())))
    rows = []
    print(f"{'build':<10} {'model':<40} {'variant':<10} {'repack':<6} {'prompt tok/s':>12} "
          f"{'decode tok/s':>12} {'load avg':>9}  weight buffers (MiB)", flush=True)
    for model in args.models:
        for build, site in builds:
            for row in run_one(build, site, model, args.modes, args):
                rows.append(row)
                if "error" in row:
                    print(f"{build:<10} {model:<40} FAILED (exit {row['returncode']}): {row['error'][-300:]}", flush=True)
                    continue
                buffers = ", ".join(f"{k} {v:.0f}" for k, v in row["buffers_mib"].items())
                print(f"{build:<10} {row['model']:<40} {row['cpu_variant']:<10} {'on' if row['repack'] else 'off':<6} "
                      f"{row['prompt_tok_s']:>12.1f} {row['decode_tok_s']:>12.2f} "
                      f"{row['load_avg_before'] or 0:>4.2f}→{row['load_avg_after'] or 0:<4.2f}  {buffers}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
