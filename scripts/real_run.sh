#!/usr/bin/env bash
# The CPU-sized real run reported in the closing notes: the bundled Qwen2.5-Coder-0.5B as base, a
# seeded subset of the real shared data, both stages with the paper's LoRA shapes and batch 16.
# (The paper's full runs need a GPU: see benchmarks/bench_train_gpu.py.) Extra flags pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -f prepared/manifest.json ] || $PY -m trainer.cli prepare --out prepared
$PY -m trainer.cli stage1 --out-dir runs/stage1 --train-limit 320 --val-limit 32 --eval-every 5 \
    --learning-rate 5e-4 --set log_every=1 --set micro_batch_size=8 --epochs 1 --no-progress "$@"
$PY -m trainer.cli stage2 --out-dir runs/stage2 --train-limit 160 --val-limit 24 --eval-every 5 \
    --learning-rate 3e-4 --set log_every=1 --set micro_batch_size=8 --epochs 1 \
    --init-adapter runs/stage1/adapter --no-progress "$@"
