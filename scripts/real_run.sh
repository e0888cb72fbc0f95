#!/usr/bin/env bash
# The CPU-sized real run reported in the closing notes: the bundled Qwen2.5-Coder-0.5B as base, a
# seeded subset of the real shared data, both stages with the paper's LoRA shapes (batch 8: CPU-sized).
# (The paper's full runs need a GPU: see benchmarks/bench_train_gpu.py.) Extra flags pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -f prepared/manifest.json ] || $PY -m trainer.cli prepare --out prepared
$PY -m trainer.cli stage1 --out-dir runs/stage1 --train-limit 96 --val-limit 16 --eval-every 3 \
    --batch-size 8 --micro-batch-size 4 --learning-rate 5e-4 --set log_every=1 --epochs 1 --no-progress "$@"
$PY -m trainer.cli stage2 --out-dir runs/stage2 --train-limit 48 --val-limit 8 --eval-every 2 \
    --batch-size 8 --micro-batch-size 4 --learning-rate 3e-4 --set log_every=1 --epochs 1 \
    --init-adapter runs/stage1/adapter --no-progress "$@"
