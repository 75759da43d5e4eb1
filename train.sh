#!/usr/bin/env bash
# Progressive training recipe: features → stage 1 → stage 2 → stage 3 → human stage → dimension stage
# → evaluation.
#
#   ./train.sh [configs/mini.yaml] [--override key=value ...]
#
# Variants are YAML recipes in configs/ (mini: Gemma 3 270M on CPU; qwen2.5-1.5b: one GPU;
# qwen2.5-vl-7b: N GPUs with DeepSpeed ZeRO-3), never copies of this script.
# Runs on one CPU, one GPU, or N GPUs (deepspeed --num_gpus N, or accelerate launch,
# when more than one GPU is visible). Re-running resumes: finished stages are skipped
# and an interrupted one continues from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")"

CONFIG="${1:-configs/mini.yaml}"
shift || true
EXTRA=("$@")                    # e.g. --override stage1.max_steps=10
# the recipe's decisions come from the config loader (with any --override), never from grepping the YAML:
# output folder, whether a DeepSpeed config is set, whether the recipe trains on the offline synth corpus
mapfile -t RECIPE < <(python - "$CONFIG" "${EXTRA[@]}" <<'PY'
import sys
from llmvqa.train.config import load_config
rest = sys.argv[2:]
overrides = rest[rest.index("--override") + 1:] if "--override" in rest else []
cfg = load_config(sys.argv[1], overrides)
print(cfg.output_dir)
print("yes" if cfg.deepspeed else "no")
print("yes" if any("instruct_data/synth.jsonl" in f for f in cfg.data.train_files) else "no")
PY
)
[ "${#RECIPE[@]}" -eq 3 ] || { echo "cannot read the recipe $CONFIG (see the error above)" >&2; exit 2; }
OUT="${RECIPE[0]}"; USES_DEEPSPEED="${RECIPE[1]}"; USES_SYNTH="${RECIPE[2]}"

# ---- how to launch: plain python on CPU / one GPU, a distributed launcher on several
NGPU=$(python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$NGPU" -gt 1 ]; then
  if command -v deepspeed >/dev/null 2>&1 && [ "$USES_DEEPSPEED" = yes ]; then
    LAUNCH=(deepspeed --num_gpus "$NGPU" --module llmvqa.cli)
  else
    LAUNCH=(accelerate launch --num_processes "$NGPU" -m llmvqa.cli)
  fi
else
  LAUNCH=(python -m llmvqa.cli)
fi
echo "config $CONFIG → $OUT; $NGPU GPU(s); launcher: ${LAUNCH[*]}"

# ---- 0. the offline corpus, when the recipe trains on it (configs/mini.yaml does): graded 2-s clips
#         from real footage (llmvqa sig synth), then SIG instruction records (llmvqa sig build).
#         On developer machines the real AI-generated clips of $AIGC_EXAMPLES (default
#         ../shared/data/aigc_examples) are more sources; without them the 26 shipped ones are used.
if [ "$USES_SYNTH" = yes ]; then
  SYNTH_ARGS=(--seconds 2 --clips-per-source 16 --workers 2)
  AIGC_EXAMPLES="${AIGC_EXAMPLES:-../shared/data/aigc_examples}"
  if [ -f "$AIGC_EXAMPLES/MANIFEST.csv" ]; then
    SYNTH_ARGS+=(--extra-sources "$AIGC_EXAMPLES")
  else
    echo "note: $AIGC_EXAMPLES/MANIFEST.csv not found; the corpus uses the 26 shipped sources only"
  fi
  [ -f data/synth/manifest.jsonl ] || python -m llmvqa.cli sig synth --out data/synth "${SYNTH_ARGS[@]}"
  [ -f instruct_data/synth.jsonl ] || python -m llmvqa.cli sig build --kind synth --input data/synth/manifest.jsonl \
      --root data/synth --out instruct_data/synth.jsonl --cache cache/features
fi

# ---- 1. cached features: every record's video once (encoders are frozen, so this is done once)
python -m llmvqa.cli train --config "$CONFIG" --fill-cache "${EXTRA[@]}"

# ---- 2. stage 1: projectors only, LLM frozen, dimension → level pairs
"${LAUNCH[@]}" train --config "$CONFIG" --stage 1 --resume "${EXTRA[@]}"

# ---- 3. stage 2: LoRA + projectors on rating instructions, CE + PLCC + rank loss
"${LAUNCH[@]}" train --config "$CONFIG" --stage 2 --resume "${EXTRA[@]}"

# ---- 4. stage 3: the full instruction mix with justifications
"${LAUNCH[@]}" train --config "$CONFIG" --stage 3 --resume "${EXTRA[@]}"

# ---- 5. human stage: where human-rated clips are present ($HUMAN_RATINGS, default ../shared/data/fetv_dev:
#         labels.csv + clips/), fit the human prior on them, ranked by degradation chains of the synth corpus
#         (with range hinges), and train the scorer to read it, with extra reading steps while its reading check
#         fails (llmvqa calibrate --synth; the recipe is CalibrationConfig's defaults).
#         Without them the model is stage 3's.
FINAL="$OUT/stage3/final"
HUMAN_RATINGS="${HUMAN_RATINGS:-../shared/data/fetv_dev}"
if [ -f "$HUMAN_RATINGS/labels.csv" ]; then
  # with the synth corpus present, 240 degradation chains of its train split rank the prior and the scorer
  # (a degraded clip below its own clean clip; about 9 min to build the first time, then cached)
  CHAIN_ARGS=()
  [ -f data/synth/manifest.jsonl ] && CHAIN_ARGS=(--synth data/synth/manifest.jsonl)
  [ -f "$OUT/calibrated/scorer/config.json" ] || python -m llmvqa.cli calibrate --model "$FINAL" \
      --ratings "$HUMAN_RATINGS" "${CHAIN_ARGS[@]}" --out "$OUT/calibrated" --verbose
  FINAL="$OUT/calibrated"
  # the 80% interval from the held-out errors of prompt-grouped folds (≈ 50 min on 2 cores)
  if [ -f eval/human_cv.py ] && [ ! -f "$OUT/human_cv/report.json" ]; then
    python eval/human_cv.py --base "$FINAL" --ratings "$HUMAN_RATINGS" "${CHAIN_ARGS[@]}" --out "$OUT/human_cv" \
      --write-interval "$FINAL"
  fi
else
  echo "note: $HUMAN_RATINGS/labels.csv not found; no human stage (the model is stage 3's)"
fi

# ---- 6. dimension stage (where the synth corpus is present; DIMENSION_STAGE=0 skips it): a probe per dimension
#         (boosted trees over the statistics and a token summary), read by the main model when asked that dimension,
#         kept for the dimensions where the answers beat the majority level on the val split (llmvqa tune-dimensions;
#         the scorer, prior and interval stay as they are). About 40 min on 2 cores.
#         Then (release 6) the probe is fitted again with every level weighing the same and per-level thresholds
#         moved for balanced accuracy on source-grouped cross-fitting (--probe-only: the reading stays; ≈ 8 min), and
#         the val selection runs on that probe (--select-only; ≈ 17 min). Then (release 7) the slot values are centred
#         where the model reads them as the probe's level, measured on 300 train clips and kept per dimension where the
#         val answers gain (--reading-centres; ≈ 35 min).
if [ "${DIMENSION_STAGE:-1}" = 1 ] && [ -f data/synth/manifest.jsonl ]; then
  DIMS="$OUT/dimensions"
  [ -f "$DIMS/dimension_stage.json" ] || python -m llmvqa.cli tune-dimensions --model "$FINAL" \
      --synth data/synth/manifest.jsonl --out "$DIMS" --select-split '' --verbose
  grep -q '"probe_refit"' "$DIMS/dimension_stage.json" || python -m llmvqa.cli tune-dimensions --model "$DIMS" \
      --out "$DIMS" --synth data/synth/manifest.jsonl --probe-only --probe-balance 1.0 --probe-offsets
  grep -q '"selection"' "$DIMS/dimension_stage.json" || python -m llmvqa.cli tune-dimensions --model "$DIMS" \
      --out "$DIMS" --synth data/synth/manifest.jsonl --select-only --verbose
  grep -q '"reading_centres"' "$DIMS/dimension_stage.json" || python -m llmvqa.cli tune-dimensions --model "$DIMS" \
      --out "$DIMS" --synth data/synth/manifest.jsonl --reading-centres --verbose
  FINAL="$DIMS"
fi

# ---- 7. evaluation of the final checkpoint (when the evaluation script is present)
if [ -f eval/score_dataset.py ]; then
  # EVAL_DATA: a dataset file (info.txt, CSV, JSONL, synth manifest); default: the synth corpus' test split
  python eval/score_dataset.py ${EVAL_DATA:+"$EVAL_DATA"} --model "$FINAL" --out "$OUT/eval" \
    || echo "evaluation failed (see above); the checkpoint is at $FINAL"
else
  echo "eval/score_dataset.py not found; skipping evaluation. Checkpoint: $FINAL"
fi
