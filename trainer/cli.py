"""`tsx-train`: prepare data, run stage 1 / stage 2, show a resolved config.

Multi-GPU: the same command runs under ``torchrun --nproc_per_node N -m trainer.cli stage1 ...`` or
``accelerate launch -m trainer.cli stage1 ...``; micro-batches are sharded over devices and the
gradient accumulation shrinks so the effective batch stays ``batch_size``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from medcore.models import ModelError
from medcore.pairs import DataFormatError

# Named flags for the most used fields; anything else through --set key=value.
STAGE_FLAGS = {
    "base": str, "data": str, "out_dir": str, "epochs": int, "max_steps": int, "batch_size": int,
    "micro_batch_size": int, "learning_rate": float, "train_limit": int, "val_limit": int, "eval_every": int,
    "max_length": int, "device": str, "precision": str, "seed": int,
}


def _stage_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    for name in STAGE_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            overrides.append(f"{name}={value}")
    if getattr(args, "gradient_checkpointing", False):
        overrides.append("gradient_checkpointing=true")
    if getattr(args, "init_adapter", None):
        overrides.append("init_adapters=" + json.dumps(args.init_adapter))
    return overrides + list(args.set or [])


def _add_stage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a stage YAML (default: the shipped resources/configs/stageN.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any field, e.g. lora.r=8 (repeatable)")
    for name, typ in STAGE_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None)
    p.add_argument("--init-adapter", action="append", help="adapter merged before this stage (repeatable, in order)")
    p.add_argument("--gradient-checkpointing", action="store_true")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tsx-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="normalise, filter, dedupe and split term and sentence pairs")
    p.add_argument("--config", help="data YAML (default: resources/configs/data.yaml)")
    p.add_argument("--data-root", help="folder relative input paths are read from (default: ../shared/data)")
    p.add_argument("--terms", nargs="+", help="term-pair files (replace the config's list)")
    p.add_argument("--sentences", nargs="+", help="sentence-pair files (replace the config's list)")
    p.add_argument("--include", nargs="+", default=[], help="extra sentence files to add (e.g. the ParaMed file)")
    p.add_argument("--directions", nargs="+", choices=["zh-en", "en-zh"])
    p.add_argument("--seed", type=int)
    p.add_argument("--out", default="prepared", help="output folder (default: prepared)")

    for stage in ("stage1", "stage2"):
        p = sub.add_parser(stage, help=f"train {stage} (see resources/configs/{stage}.yaml)")
        _add_stage_args(p)
        p.add_argument("--resume", action="store_true", help="continue the run in out_dir from its last checkpoint")
        p.add_argument("--overwrite", action="store_true", help="discard an earlier run in out_dir")
        p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("show-config", help="print the fully resolved stage config as JSON")
    p.add_argument("stage", choices=["stage1", "stage2"])
    _add_stage_args(p)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command == "prepare":
            from trainer.data import DataConfig, prepare

            config = DataConfig.load(args.config)
            if args.data_root:
                config.data_root = args.data_root
            if args.terms:
                config.terms = args.terms
            if args.sentences:
                config.sentences = args.sentences
            config.sentences = list(config.sentences) + list(args.include)
            if args.directions:
                config.directions = args.directions
            if args.seed is not None:
                config.split["seed"] = args.seed
            manifest = prepare(config, args.out)
            for name, info in manifest["outputs"].items():
                print(f"{name:28s} {info.get('records', info.get('pairs')):>7}")
            print(f"dropped {manifest['dropped']['total']} lines: {manifest['dropped']['by_reason']} "
                  f"(each with its reason in {args.out}/dropped.jsonl)")
            return 0

        from trainer.config import load_stage_config

        stage = args.stage if args.command == "show-config" else args.command
        config = load_stage_config(stage, args.config, _stage_overrides(args))
        if args.command == "show-config":
            print(json.dumps(config.to_dict(), indent=2))
            return 0
        from trainer.stages import run_stage

        run_stage(config, resume=args.resume, overwrite=args.overwrite, show_progress=not args.no_progress)
        return 0
    except (DataFormatError, ModelError, FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as exc:
        print(f"tsx-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
