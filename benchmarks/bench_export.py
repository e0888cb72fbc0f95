"""Export time and peak memory per GGUF type for a merged model (default: the bundled 0.5B).

    python benchmarks/bench_export.py                      # merges the bundled 0.5B (no adapters) once
    python benchmarks/bench_export.py --merged merged/ --adapters runs/stage1/adapter runs/stage2/adapter
    python benchmarks/bench_export.py --types f16 q8_0 q4_k_m --verify

Each type runs in a fresh process so its peak RSS is its own. Peak RSS is reported for the exporting
process and for its largest child (llama.cpp's converter runs as a subprocess); quantised types include
the f16 intermediate they are made from. Verification (off by default) adds the reference runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from converter.gguf import export
merged, out, ftype, verify = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
t = time.perf_counter()
[rec] = export(merged, out, [ftype], verify=verify)
seconds = time.perf_counter() - t
print(json.dumps({"ftype": ftype, "seconds": round(seconds, 1), "size_mb": round(rec["size_bytes"] / 1e6, 1),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "peak_child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
                  "verify": {k: (rec.get("verify") or {}).get(k) for k in ("top1_agreement", "kl_mean", "kl_max", "greedy_match")}
                  if verify else None}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--merged", help="merged model directory (made from --base/--adapters if missing)")
    ap.add_argument("--base", default="qwen2.5-coder-0.5b")
    ap.add_argument("--adapters", nargs="*", default=[])
    ap.add_argument("--types", nargs="+", default=["f16", "q8_0", "q4_k_m"])
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--out", help="where to write the GGUFs (default: a temporary directory, removed)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_export."))
    merged = Path(args.merged) if args.merged else work / "merged"
    if not (merged / "config.json").exists():
        from converter.merge import merge

        t = time.perf_counter()
        merge(args.base, args.adapters, merged, check=bool(args.adapters))
        print(f"merge: {time.perf_counter() - t:.1f} s -> {merged}", flush=True)
    out = Path(args.out) if args.out else work / "gguf"
    rows = []
    for ftype in args.types:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(merged), str(out), ftype, "1" if args.verify else "0"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{ftype}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{ftype:>7}: {r['seconds']:6.1f} s  {r['size_mb']:8.1f} MB  peak RSS {r['peak_rss_mb']} MB "
              f"(converter subprocess {r['peak_child_rss_mb']} MB)" + (f"  verify {r['verify']}" if r["verify"] else ""),
              flush=True)
    print(json.dumps(rows))
    if not args.out:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if len(rows) == len(args.types) else 1


if __name__ == "__main__":
    sys.exit(main())
