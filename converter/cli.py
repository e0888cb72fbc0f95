"""tsx-convert: merge stage adapters, export GGUF, verify the export.

  tsx-convert merge --base qwen2.5-coder-0.5b --adapter runs/stage1/adapter --adapter runs/stage2/adapter --out merged/
  tsx-convert gguf merged/ --out models/ --type f16 --type q8_0 --type q4_k_m      (or --type auto)
  tsx-convert verify --hf merged/ --gguf models/merged-q8_0.gguf [--base BASE] [--json]
  tsx-convert lora --adapter runs/stage1/adapter --adapter runs/stage2/adapter --out adapters/ [--spec NAME.yaml]
  tsx-convert verify --gguf BASE.gguf --lora adapters/stage1.lora.gguf --lora adapters/stage2.lora.gguf [--json]

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

    lo = sub.add_parser("lora", help="PEFT stage adapter(s) -> GGUF LoRA file(s) llama.cpp applies at run time")
    lo.add_argument("--adapter", action="append", default=[], required=True,
                    help="stage adapter directory; repeat in training order (stage 1, then stage 2)")
    lo.add_argument("--out", required=True, help="output directory (stageN.lora.gguf + .json each), or one .gguf file")
    lo.add_argument("--base", help="base model (default: the one recorded in tsx_stage.json); its config is read "
                                   "from its HF form (the dequantised cache for a GGUF)")
    lo.add_argument("--outtype", choices=["f32", "f16", "bf16", "q8_0"], default="f16",
                    help="LoRA tensor type (default f16; the base stays as it is)")
    lo.add_argument("--data-manifest", help="prepared data directory or manifest.json the adapters were trained on "
                                            "(default: from the training run's config.json)")
    lo.add_argument("--spec", help="also write a tuned-model spec (YAML) naming the base and these adapters")
    lo.add_argument("--name", help="the tuned model's name in --spec (default: the spec file's stem)")
    lo.add_argument("--description", default="", help="one line for --spec")
    lo.add_argument("--verify", action="store_true",
                    help="then verify base GGUF + these adapters against transformers + the PEFT adapters")
    lo.add_argument("--no-base", action="store_true", help="verify without the base-model comparison (fine-tune kept)")
    lo.add_argument("--max-new-tokens", type=int, default=32)
    lo.add_argument("--probes", help="YAML file of probes instead of the built-in ones (with --verify)")
    lo.add_argument("--thresholds", help="JSON file {ftype: {top1, kl_mean, kl_max, greedy}} (with --verify)")
    lo.add_argument("--json", action="store_true", help="print the records as JSON")

    v = sub.add_parser("verify", help="compare a GGUF with the merged model (and the base), or base GGUF + runtime "
                                      "LoRAs with the HF base + the PEFT adapters")
    v.add_argument("--hf", help="merged model directory; with --lora: the HF base (default: the GGUF's dequantised form)")
    v.add_argument("--gguf", help="GGUF file to check (with --lora: the base GGUF the adapters are applied to)")
    v.add_argument("--lora", action="append", default=[], help="GGUF LoRA applied at run time; repeat in training order")
    v.add_argument("--adapter", action="append", default=[],
                   help="with --lora: the PEFT adapter each LoRA was made from (default: from the LoRA's sidecar)")
    v.add_argument("--spec", help="a tuned-model spec (name or YAML): its base GGUF and adapters, as --gguf/--lora")
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


def _cmd_lora(args) -> int:
    from converter.lora import dumps, export_loras, summary

    records = export_loras(args.adapter, args.out, base=args.base, outtype=args.outtype, data_manifest=args.data_manifest)
    if args.spec:
        from medcore.models import BUNDLED
        from medcore.modelspec import write_spec

        first = records[0]
        spec = write_spec(args.spec, args.name or Path(args.spec).stem, first["base_name"] or first["base"],
                          [{"file": r["path"], "sha256": r["gguf_sha256"]} for r in records],
                          description=args.description, base_sha256=first["base_fingerprint"],
                          provenance={"data_manifest_sha256": records[-1]["data_manifest_sha256"],
                                      "stages": [{"stage": r["stage"], "peft_sha256": r["peft_sha256"],
                                                  "val_loss": r["tsx_stage"].get("val_loss"),
                                                  "step": r["tsx_stage"].get("step")} for r in records],
                                      "bundled_base": first["base_name"] in BUNDLED})
        print(f"tuned-model spec: {spec}", file=sys.stderr if args.json else sys.stdout)
    report = None
    if args.verify:
        from converter.verify import format_report, verify_runtime

        report = verify_runtime(records[0]["base"], [r["path"] for r in records], peft=args.adapter,
                                max_new_tokens=args.max_new_tokens, probes_file=args.probes,
                                thresholds=_runtime_limits(args.thresholds, records[0]["base"]), use_base=not args.no_base)
    if args.json:
        print(dumps({"adapters": records, "verify": report}))
    else:
        print(summary(records))
        if report:
            print(format_report(report))
    return 0 if report is None or report["passed"] else 1


def _runtime_limits(path: str | None, gguf: str) -> dict | None:
    limits = _thresholds(path)
    if limits:
        from runtime.gguf_header import read_gguf_info

        limits = limits.get(read_gguf_info(gguf).file_type)
    return limits


def _cmd_verify_runtime(args) -> int:
    from converter.verify import format_report, verify_runtime

    gguf, loras = args.gguf, list(args.lora)
    if args.spec:
        from medcore.modelspec import resolve

        resolved = resolve(args.spec)
        if resolved.spec is None:
            raise ConvertError(f"{args.spec} is not a tuned-model spec")
        gguf, loras = str(resolved.base), [str(p) for p in resolved.adapters] + loras
    if not gguf:
        raise ConvertError("give the base GGUF (--gguf) the adapters are applied to")
    report = verify_runtime(gguf, loras, peft=args.adapter or None, hf=args.hf, ftype=args.ftype,
                            max_new_tokens=args.max_new_tokens, probes_file=args.probes,
                            thresholds=_runtime_limits(args.thresholds, gguf) if not args.ftype else
                            (_thresholds(args.thresholds) or {}).get(args.ftype), use_base=not args.no_base)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0 if report["passed"] else 1


def _cmd_verify(args) -> int:
    from converter.merge import read_manifest
    from converter.verify import format_report, verify

    if args.lora or args.spec:
        return _cmd_verify_runtime(args)
    if not args.hf or not args.gguf:
        raise ConvertError("verify needs --hf and --gguf (or --gguf with --lora, or --spec)")
    base = None
    if not args.no_base:
        base = args.base or read_manifest(args.hf).get("base", {}).get("hf_dir")
        if base and not Path(base).exists():
            base = None
    limits = _thresholds(args.thresholds)
    if limits:
        from runtime.gguf_header import read_gguf_info

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
        return {"merge": _cmd_merge, "gguf": _cmd_gguf, "verify": _cmd_verify, "lora": _cmd_lora}[args.command](args)
    except (ConvertError, ModelError) as exc:
        print(f"tsx-convert: {exc}", file=sys.stderr)
        return 1 if "failed verification" in str(exc) or "passed verification" in str(exc) else 2


if __name__ == "__main__":
    sys.exit(main())
