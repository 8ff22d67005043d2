#!/usr/bin/env bash
# Continue training the SHIPPED tiny weights (same architecture, same recipe as v3) for another
# round, ×4 and ×2 side by side on one CPU thread each. Installing is a separate, deliberate step,
# after `vsrup eval --model RUN/tiny_xS.safetensors` shows the round helped:
#   cp RUN/tiny_x{4,2}.* src/vsrup/assets/ && python -m vsrup.weights --refresh-embedded
#
#   nohup scripts/train_tiny_continue.sh > runs/tiny_continue.log 2>&1 &
#
# Each round starts a fresh cosine schedule from the weights at HEAD (copied into the run dir as
# start_x{4,2}.*, with the commit they came from in start_commit), so rounds chain from session to
# session without keeping optimizer state around. Rerunning resumes the round (--resume; a finished
# stage is skipped). Override steps with X4_STEPS / X2_STEPS, the peak rates with X4_LR / X2_LR.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUN=${RUN:-runs/tiny_continue}
X4_STEPS=${X4_STEPS:-3000}
X2_STEPS=${X2_STEPS:-2800}
X4_LR=${X4_LR:-0.0003}
X2_LR=${X2_LR:-0.0002}
mkdir -p "$RUN"
if [ ! -f "$RUN/start_commit" ]; then
    for s in 4 2; do cp "src/vsrup/assets/tiny_x$s.safetensors" "src/vsrup/assets/tiny_x$s.json" "$RUN/"; done
    for s in 4 2; do for ext in safetensors json; do mv "$RUN/tiny_x$s.$ext" "$RUN/start_x$s.$ext"; done; done
    git rev-parse HEAD > "$RUN/start_commit"
fi
[ -f runs/wallpapers/manifest.json ] || python scripts/prep_wallpapers.py --out runs/wallpapers

# The architecture flags must match the shipped weights (the warm start loads every tensor whose
# shape matches, so a mismatch would silently start parts from scratch).
COMMON=(--seed 0 --clean-fraction 0.9 --vary-start 0.0 --stills runs/wallpapers/images --per-still 8
    --cache-windows 60 --cache-dir runs/cache --ckpt-every 50 --eval-every 200 --no-progress
    --refiner-blocks 6 --aligned-inputs --resume --reschedule)
date -u +"start %FT%TZ from $(cat "$RUN/start_commit")"
stage() {  # scale steps lr extra-args...
    local s=$1 steps=$2 lr=$3
    shift 3
    [ -f "$RUN/tiny_x$s.safetensors" ] && return 0
    python -m vsrup.train --out "$RUN/tiny_x$s.safetensors" --scale "$s" --steps "$steps" --lr "$lr" \
        --init "$RUN/start_x$s.safetensors" --run-dir "$RUN/x$s" "${COMMON[@]}" "$@"
    date -u +"x$s done %FT%TZ"
}
stage 4 "$X4_STEPS" "$X4_LR" &
stage 2 "$X2_STEPS" "$X2_LR" --latent-stride 2 &
wait
date -u +"round done %FT%TZ; evaluate before installing"
