"""tsx-convert: merge stage adapters, export GGUF, verify the export.

  tsx-convert merge --base qwen2.5-coder-0.5b --adapter runs/stage1/adapter --adapter runs/stage2/adapter --out merged/
  tsx-convert gguf merged/ --out models/ --type f16 --type q8_0 --type q4_k_m      (or --type auto)
  tsx-convert verify --hf merged/ --gguf models/merged-q8_0.gguf [--base BASE] [--json]

Exit status: 0 done and verified, 1 verification failed, 2 bad input or a step that could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from converter import ConvertError
from medcore.models import ModelError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsx-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("merge", help="base + stage adapters (training order) -> merged HF directory")
    m.add_argument("--base", required=True, help="base model: HF directory, GGUF file or bundled model name")
    m.add_argument("--adapter", action="append", default=[], required=True,
                   help="stage adapter directory; repeat in training order (stage 1, then stage 2)")
    m.add_argument("--out", required=True, help="merged model directory to write")
    m.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    m.add_argument("--gguf", action="append", default=[], metavar="TYPE",
                   help="also export these GGUF types (f16, bf16, q8_0, q4_k_m, ..., auto) into --gguf-out")
    m.add_argument("--gguf-out", help="directory for --gguf files (default: beside --out)")
    m.add_argument("--no-verify", action="store_true", help="skip the checks of the merged model and the GGUFs")

    g = sub.add_parser("gguf", help="merged HF directory -> verified GGUF file(s)")
    g.add_argument("merged", help="merged model directory (from `tsx-convert merge`)")
    g.add_argument("--out", required=True, help="output directory (or one .gguf file for a single type)")
    g.add_argument("--type", action="append", dest="types", default=[], metavar="TYPE",
                   help="f32, f16, bf16, q8_0 (llama.cpp's converter), q6_k, q5_k_m, q4_k_m, q4_0 (quantize API), "
                        "or auto: the smallest of q4_k_m/q5_k_m/q6_k/q8_0 that keeps the fine-tune. Repeatable; default auto")
    _verify_options(g)
    g.add_argument("--no-verify", action="store_true", help="write without verifying (not recommended)")
    g.add_argument("--keep-failed", action="store_true", help="keep a file that failed verification as *.rejected.gguf")
    g.add_argument("--json", action="store_true", help="print the records as JSON")

    v = sub.add_parser("verify", help="compare a GGUF with the merged model (and the base)")
    v.add_argument("--hf", required=True, help="merged model directory")
    v.add_argument("--gguf", required=True, help="GGUF file to check")
    v.add_argument("--ftype", help="judge with this file type's thresholds (default: the GGUF's own)")
    _verify_options(v)
    v.add_argument("--json", action="store_true", help="print the full report as JSON")
    return p


def _verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", help="base model, to check the fine-tune survived (default: from the merge manifest)")
    p.add_argument("--no-base", action="store_true", help="do not compare with the base model")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--probes", help="YAML file of probes ({probes: [{direction, source}]}) instead of the built-in ones")
    p.add_argument("--thresholds", help="JSON file {ftype: {top1, kl_mean, kl_max, greedy}} overriding the built-in limits")


def _cmd_merge(args) -> int:
    from converter.merge import check_merge, merge

    manifest = merge(args.base, args.adapter, args.out, dtype=args.dtype)
    print(f"merged {len(args.adapter)} adapter(s) into {args.out} in {manifest['seconds']} s")
    if not args.no_verify:
        result = check_merge(args.out, args.base, args.adapter)
        print(f"merged model vs base+adapters applied live: top-1 {result['top1_agreement']:.4f}, KL mean "
              f"{result['kl_mean']:.2e}, max {result['kl_max']:.2e} over {result['positions']} positions")
        if not result["passed"]:
            print(f"FAILED: the merged model differs from base+adapters (limit {result['kl_limit']})", file=sys.stderr)
            return 1
    if args.gguf:
        from converter.gguf import export, summary

        out = Path(args.gguf_out) if args.gguf_out else Path(args.out).parent
        try:
            records = export(args.out, out, args.gguf, verify=not args.no_verify, base=args.base)
        except ConvertError as exc:
            if getattr(exc, "records", None):
                print(summary(exc.records))
            raise
        print(summary(records))
    return 0


def _cmd_gguf(args) -> int:
    from converter.gguf import dumps, export, summary

    try:
        records = export(args.merged, args.out, args.types or ["auto"], verify=not args.no_verify, base=args.base,
                         use_base=not args.no_base, keep_failed=args.keep_failed, max_new_tokens=args.max_new_tokens,
                         probes_file=args.probes, thresholds=_thresholds(args.thresholds))
    except ConvertError as exc:
        if getattr(exc, "records", None):
            print(dumps(exc.records) if args.json else summary(exc.records))
        raise
    print(dumps(records) if args.json else summary(records))
    return 0


def _cmd_verify(args) -> int:
    from converter.merge import read_manifest
    from converter.verify import format_report, verify

    base = None
    if not args.no_base:
        base = args.base or read_manifest(args.hf).get("base", {}).get("hf_dir")
        if base and not Path(base).exists():
            base = None
    limits = _thresholds(args.thresholds)
    if limits:
        from converter.llamacpp import read_gguf_info

        limits = limits.get(args.ftype or read_gguf_info(args.gguf).file_type)
    report = verify(args.hf, args.gguf, base=base, ftype=args.ftype, max_new_tokens=args.max_new_tokens,
                    probes_file=args.probes, thresholds=limits)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0 if report["passed"] else 1


def _thresholds(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConvertError(f"cannot read thresholds from {path}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM (kill) and SIGHUP (a closed terminal) unwind like Ctrl-C: temporary outputs are removed
    # and llama.cpp's converter child is killed with its process group (medcore.childproc).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"merge": _cmd_merge, "gguf": _cmd_gguf, "verify": _cmd_verify}[args.command](args)
    except (ConvertError, ModelError) as exc:
        print(f"tsx-convert: {exc}", file=sys.stderr)
        return 1 if "failed verification" in str(exc) or "passed verification" in str(exc) else 2


if __name__ == "__main__":
    sys.exit(main())
