#!/usr/bin/env bash
# Train span-video's adapter (LoRA + flow-aligned neighbour fusion) on the frozen SPAN base, in the
# background, one thread, resumable. Needs the converted base: `vsrup download-weights span`.
#   scripts/train_span_video.sh 4            # start (or continue: the run resumes when its dir exists)
#   tail -f runs/span-video-x4/log.jsonl     # loss every 10 steps, monitor every 200
#   RUN=runs/v OUT=runs/v/final.safetensors EXTRA="--log-loss --rank 16" scripts/train_span_video.sh 4
#   kill -- -PID; RESCHEDULE=1 STEPS=1800 scripts/train_span_video.sh 4   # end sooner (or later)
# The finished adapter lands in src/vsrup/assets/span_video_x{SCALE}.safetensors (+ .json).
set -euo pipefail
SCALE=${1:-4}
STEPS=${STEPS:-2500}
CROP=${CROP:-$((48 * SCALE))}  # HR crop: 48 LR pixels at either scale (the same cost per step)
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/span-video-x$SCALE}
OUT=${OUT:-src/vsrup/assets/span_video_x$SCALE.safetensors}
mkdir -p "$RUN"
RESUME=()
[[ -f $RUN/state.json ]] && RESUME=(--resume)
[[ -f $RUN/state.json && -n ${RESCHEDULE:-} ]] && RESUME+=(--reschedule)  # a new STEPS, recorded
PY=${PYTHON:-python}
# The recipe of the shipped adapters (docs/MODEL_CARD.md): half clean LR, the general mix's blur
# at 0.4×, the mean-log loss. EXTRA replaces it (EXTRA="" gives the trainer's defaults).
RECIPE="--clean 0.5 --blur-scale 0.4 --log-loss"
PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 nohup setsid "$PY" -m vsrup.train.span_loop \
    --scale "$SCALE" --steps "$STEPS" --crop "$CROP" --run-dir "$RUN" --cache-dir runs/span-cache \
    --out "$OUT" ${EXTRA-$RECIPE} "${RESUME[@]}" \
    >>"$RUN/stdout.log" 2>&1 &
echo "training ×$SCALE in the background (pid $!); log: $RUN/log.jsonl"
