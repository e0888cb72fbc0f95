#!/usr/bin/env bash
# The full-data fine-tune that becomes the app's default model (issue 11), as one resumable chain.
# Run it again after any interruption (session end, kill, reboot): each step resumes or is skipped
# when its output is complete, so `nohup scripts/tune_default.sh >> runs/tune.log 2>&1 &` is the
# whole procedure, however many sessions it takes.
#
#   1. prepare the shared data (once);
#   2. stage 1: all term records, 1 epoch, best-validation checkpoint (tsx-train --resume);
#   3. stage 2: all sentence records, 1 epoch, on top of stage 1, with the term block;
#   4. GGUF LoRA adapters + tuned-model spec (tsx-convert lora --verify);
#   5. ablation through the app's runtime (llama.cpp): base / +S1 / +S1+S2 on the 0.5B, and the 1.5B
#      base the tuned model has to beat, on >= 400 sentences and >= 1,000 terms of the combined test split;
#      translations are saved as they finish (tsx-eval --resume), so a long evaluation spans sessions too.
#
# Threads: OMP_NUM_THREADS=1 when the machine is shared (docs/training.md); 2 on a quiet machine.
# A SIGTERM to a training step finishes the step and checkpoints it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
# Which base is tuned. The 0.5B chain is the default; the 1.5B one is
#   BASE=qwen2.5-coder-1.5b NAME=tsx-medtrans-1.5b RUNS=runs/1.5b EVAL=runs/eval-full-1.5b scripts/tune_default.sh
BASE=${BASE:-qwen2.5-coder-0.5b}
NAME=${NAME:-tsx-medtrans-0.5b}
RUNS=${RUNS:-runs}
ADAPTERS=resources/models/adapters/$NAME
EVAL=${EVAL:-runs/eval-full}
# The model a tuned model has to beat to become the default (issue 11).
RIVAL=qwen2.5-coder-1.5b
# The whole combined test split by default (410 sentences, 2,080 terms); LIMIT=N takes a seeded spread.
LIMIT_ARGS=()
[ -n "${LIMIT:-}" ] && LIMIT_ARGS=(--limit "$LIMIT")

# A stage is finished when its metrics.json (written only at the end) has reached the checkpoint's step,
# or, restored from the repo on another machine, has its adapter and no checkpoint at all.
finished() {
  "$BIN/python" - "$1" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
try:
    done = json.loads((out / "metrics.json").read_text())["summary"]["steps"]
    state = out / "checkpoints/last/state.json"
    last = json.loads(state.read_text())["global_step"] if state.exists() else None
except (OSError, KeyError, ValueError):
    sys.exit(1)
adapter = (out / "adapter" / "adapter_model.safetensors").is_file()
sys.exit(0 if done == last or (last is None and adapter) else 1)
PY
}

# Finished stages are committed (resources/models/adapters/$NAME/peft/stageN): a machine without runs/
# gets them back instead of training them again.
restore_stage() {  # restore_stage <n>
  local saved=$ADAPTERS/peft/stage$1 out=$RUNS/stage$1
  [ -f "$saved/adapter_model.safetensors" ] && [ ! -f "$out/adapter/adapter_model.safetensors" ] || return 0
  echo "== stage $1: restored from $saved"
  mkdir -p "$out/adapter"
  cp "$saved"/adapter_model.safetensors "$saved"/adapter_config.json "$saved"/tsx_stage.json "$out/adapter/"
  cp "$saved"/metrics.json "$saved"/metrics.csv "$saved"/config.json "$out/"
}

run_stage() {  # run_stage <stage> <out_dir> <args...>
  local stage=$1 out=$2; shift 2
  if finished "$out"; then echo "== $stage: finished ($out)"; return; fi
  local resume=()
  [ -f "$out/checkpoints/last/state.json" ] && resume=(--resume)
  echo "== $stage: $(date -u +%FT%TZ) ${resume[*]:-fresh}"
  "$BIN/tsx-train" "$stage" --out-dir "$out" --no-progress "${resume[@]}" "$@"
}

[ -f prepared/manifest.json ] || "$BIN/tsx-train" prepare
restore_stage 1
restore_stage 2
run_stage stage1 "$RUNS/stage1" --base "$BASE" --micro-batch-size 16 --val-limit 512 --eval-every 250 --epochs 1
# Micro-batch 4 (the same steps, see trainer.stages.recount_position): at 8 the 1.5B's longest sentence
# batches took the trainer past 24 GB and the kernel killed it.
run_stage stage2 "$RUNS/stage2" --base "$BASE" --init-adapter "$RUNS/stage1/adapter" \
    --micro-batch-size 4 --val-limit 410 --eval-every 100 --epochs 1

if [ ! -f "resources/models/$NAME.yaml" ]; then
  echo "== GGUF LoRA adapters and spec: $(date -u +%FT%TZ)"
  "$BIN/tsx-convert" lora --adapter "$RUNS/stage1/adapter" --adapter "$RUNS/stage2/adapter" --out "$ADAPTERS" \
      --spec "resources/models/$NAME.yaml" --description "$BASE + TSX-MedTrans stage 1 + 2 (full data)" \
      --verify
fi

# The runs that decide what ships come first: the tuned model (+stage1+2), the same with the term block
# the app sends it, and the 1.5B base it must beat. The +stage1+2 run writes exactly where, and under
# the same run key as, the ablation's own system, so the ablation then skips it (evaluation/resume.py).
STACK=(--model "$BASE" --adapters "$ADAPTERS/stage1.lora.gguf" "$ADAPTERS/stage2.lora.gguf")
# Sentence term accuracy against the glossary the app ships (advisory everyday words not counted).
COMMON=(--backend llamacpp --test prepared/combined_test.jsonl --glossary default "${LIMIT_ARGS[@]}" --no-progress --resume)
if [ ! -f "$EVAL/ablation/stage1+2/metrics.json" ]; then
  echo "== the tuned model (+stage1+2, no term block): $(date -u +%FT%TZ)"
  "$BIN/tsx-eval" run "${STACK[@]}" --name +stage1+2 --out "$EVAL/ablation/stage1+2" "${COMMON[@]}"
fi
# What the app sends the tuned model with the default glossary: the term block (auto = on for a model
# trained with it), on the sentences; compared with the same sentences of the +stage1+2 run above by
# `python -m benchmarks.term_block_effect $EVAL/ablation/stage1+2 $EVAL/tuned-block`.
if [ ! -f "$EVAL/tuned-block/metrics.json" ]; then
  echo "== the tuned model with the term block, sentences: $(date -u +%FT%TZ)"
  "$BIN/tsx-eval" run "${STACK[@]}" --name tuned+block --kinds sentence --term-block auto \
      --out "$EVAL/tuned-block" "${COMMON[@]}"
fi
# (Tuning the 1.5B itself, the ablation's base is that model: no separate run.)
if [ "$BASE" != "$RIVAL" ] && [ ! -f "$EVAL/base-1.5b/metrics.json" ]; then
  echo "== the 1.5B base on the same records: $(date -u +%FT%TZ)"
  "$BIN/tsx-eval" run --model "$RIVAL" --name base-1.5b --out "$EVAL/base-1.5b" "${COMMON[@]}"
fi
if [ ! -f "$EVAL/ablation/ablation.json" ]; then
  echo "== ablation (llama.cpp, the app's runtime): $(date -u +%FT%TZ)"
  "$BIN/tsx-eval" ablation --base "$BASE" \
      --stage1 "$ADAPTERS/stage1.lora.gguf" --stage2 "$ADAPTERS/stage2.lora.gguf" --out "$EVAL/ablation" "${COMMON[@]}"
fi
echo "== done: $(date -u +%FT%TZ). Compare $EVAL/ablation/ablation.md with the 1.5B base ($EVAL/base-1.5b, or the ablation's base when BASE is the 1.5B);"
echo "   if the tuned model wins, commit $ADAPTERS + resources/models/$NAME.yaml + the PEFT adapters"
echo "   and set 'default: $NAME' in resources/models/default.yaml (docs/converter.md)."
