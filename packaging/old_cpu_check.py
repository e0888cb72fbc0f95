"""Run the portable llama.cpp on an emulated older CPU: a SIGILL there is a failure.

    python packaging/old_cpu_check.py                 # qemu-x86_64 -cpu Haswell (AVX2, no AVX-512)
    python packaging/old_cpu_check.py --cpu Nehalem   # SSE4.2 only
    make check-old-cpu [QEMU_CPU=Haswell]

Needs Debian's ``qemu-user`` (``apt-get install qemu-user``; QEMU ≥ 7.2 emulates AVX2). Under
``qemu-x86_64 -cpu <model>`` the project's interpreter runs, in three steps, each timed:

1. ``backend``: :func:`runtime.llamacpp.ensure_backends` — which CPU variant ggml picks
   for the emulated CPU and its features (for Haswell: ``haswell``, AVX2 and no AVX512);
2. ``translate``: ``tsx-medtrans translate`` of one short sentence with the bundled 0.5B;
3. ``selftest``: ``tsx-medtrans --self-test --no-page`` with the 0.5B on the same sentence (no QtWebEngine under
   emulation: Chromium would take too long there, and the web view is not CPU-specific).

Emulation is slow (tens of times slower than the host): this is a release check, not part of
``make test``; ``--steps`` runs part of it. The JSON summary goes to ``build/old-cpu-check/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen2.5-coder-0.5b"
SENTENCE = "患者有高血压病史。"
# What each emulated CPU must get (the variants the portable build ships; see DEFAULT_VARIANTS).
EXPECTED = {"Haswell": "haswell", "Broadwell": "haswell", "Skylake-Client": "haswell", "SandyBridge": "sandybridge",
            "IvyBridge": "sandybridge", "Nehalem": "sse42", "Westmere": "sse42", "Penryn": "x64", "Conroe": "x64"}
BACKEND_PROBE = (
    "import json; from runtime.llamacpp import ensure_backends as e; i = e(); "
    "print(json.dumps({'variant': i.variant, 'variant_file': i.variant_file, 'features': i.features, "
    "'cpu': i.cpu_description, 'amx': i.amx, 'backend_dl': i.backend_dl}))"
)


def run(name: str, cmd: list[str], timeout: float) -> dict:
    print(f"--- {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return {"name": name, "ok": False, "seconds": round(time.perf_counter() - t0, 1), "error": "timeout",
                "stdout": (exc.stdout or b"")[-2000:].decode(errors="replace") if isinstance(exc.stdout, bytes) else ""}
    seconds = round(time.perf_counter() - t0, 1)
    rc = proc.returncode
    sig = -rc if rc < 0 else (rc - 128 if rc > 128 else None)
    out = {"name": name, "ok": rc == 0, "returncode": rc, "seconds": seconds,
           "stdout": proc.stdout[-4000:], "stderr": proc.stderr[-4000:]}
    if sig:
        try:
            out["signal"] = signal.Signals(sig).name
        except ValueError:
            out["signal"] = str(sig)
    mark = "PASS" if out["ok"] else f"FAIL ({out.get('signal') or rc})"
    print(f"[{mark}] {name} in {seconds:.1f} s", flush=True)
    print(proc.stdout[-1500:], proc.stderr[-1500:], sep="\n", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", default="Haswell", help="QEMU CPU model (default Haswell: AVX2, no AVX-512)")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per step")
    ap.add_argument("--steps", nargs="+", choices=("backend", "translate", "selftest"),
                    default=["backend", "translate", "selftest"], help="which steps to run (default all)")
    ap.add_argument("--out", type=Path, help="JSON summary (default build/old-cpu-check/<cpu>.json)")
    args = ap.parse_args(argv)
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        print("qemu-x86_64 not found: apt-get install qemu-user", file=sys.stderr)
        return 2
    base = [qemu, "-cpu", args.cpu, str(Path(args.python).absolute())]
    env_note = {"TSX_NO_REPACK": os.environ.get("TSX_NO_REPACK")}
    steps = [run("backend", [*base, "-c", BACKEND_PROBE], args.timeout)]  # always: it is quick
    backend = {}
    if steps[0]["ok"]:
        backend = json.loads(steps[0]["stdout"].strip().splitlines()[-1])
        expected = EXPECTED.get(args.cpu)
        if expected and backend.get("variant") != expected:
            steps[0]["ok"] = False
            steps[0]["error"] = f"expected the {expected} variant for {args.cpu}, got {backend.get('variant')}"
        if backend.get("amx"):
            steps[0]["ok"] = False
            steps[0]["error"] = "an AMX backend was loaded"
    if "translate" in args.steps:
        steps.append(run("translate", [*base, "-m", "desktop.cli", "translate", SENTENCE, "--model", args.model,
                                       "--direction", "zh-en", "--ctx", "512", "--threads", "2", "--max-tokens", "24",
                                       "-v"], args.timeout))
    out = args.out or ROOT / "build" / "old-cpu-check" / f"{args.cpu}-{'-'.join(args.steps)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if "selftest" in args.steps:  # the same short sentence: emulated AVX2 is ~100x slower
        report_file = out.with_name(out.stem + "-selftest-report.json")
        report_file.unlink(missing_ok=True)
        steps.append(run("selftest", [*base, "-m", "desktop.cli", "--self-test", "--model", args.model, "--no-page",
                                      "--no-hash", "--ctx", "512", "--sentence", SENTENCE,
                                      "--json-out", str(report_file)], args.timeout))
        try:  # the whole report (stdout keeps only its tail): the CPU variant, buffers, patch threshold …
            report = json.loads(report_file.read_text(encoding="utf-8"))
            steps[-1]["report"] = {c["name"]: {k: c.get(k) for k in ("status", "seconds", "detail")}
                                   for c in report["checks"]}
        except (OSError, ValueError, KeyError):
            pass
    summary = {"cpu": args.cpu, "qemu": subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0],
               "backend": backend, "env": env_note, "ok": all(s["ok"] for s in steps),
               "steps": [{k: v for k, v in s.items() if k not in ("stdout", "stderr")} | {"output_tail": (s.get("stdout", "") + s.get("stderr", ""))[-1500:]}
                         for s in steps]}
    out.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"{'PASSED' if summary['ok'] else 'FAILED'} on qemu -cpu {args.cpu}: "
          + ", ".join(f"{s['name']} {s['seconds']:.0f} s{'' if s['ok'] else ' FAIL'}" for s in steps) + f"  ({out})")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
