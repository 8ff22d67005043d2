#!/usr/bin/env bash
# Train the flow-propagation `tiny` model, ×4 then ×2, on ONE CPU thread, and install the result:
# src/vsrup/assets/tiny_x{4,2}.safetensors + .json, then re-pin them in weights.toml.
#
#   nohup scripts/train_tiny_v2.sh > runs/tiny_v2.log 2>&1 &
#
# Rerunning it resumes (each stage uses --resume; a finished stage is skipped). Step counts were
# chosen from the measured speed so both stages end inside the session's time box; override with
# X4_STEPS / X2_STEPS. A run dir remembers its settings; only the step count may change on resume
# (--reschedule, recorded in the weights' JSON). History: ×4 was launched with 1800 steps and
# rescheduled to 1000 at step 600, when other jobs' load had slowed a step from 2.6 s to 4.8 s.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUN=${RUN:-runs/tiny_v2}
X4_STEPS=${X4_STEPS:-1000}
X2_STEPS=${X2_STEPS:-500}
# The previously shipped per-frame-quality weights (offset model, commit 21b2165) warm-start the
# encoder, fusion, refiner and output conv; the new propagation branches start near zero.
PREV=21b2165
mkdir -p "$RUN"
for s in 4 2; do
    for ext in safetensors json; do
        [ -f "$RUN/prev_x$s.$ext" ] || git show "$PREV:src/vsrup/assets/tiny_x$s.$ext" > "$RUN/prev_x$s.$ext"
    done
done
[ -f runs/wallpapers/manifest.json ] || python scripts/prep_wallpapers.py --out runs/wallpapers

COMMON=(--seed 0 --clean-fraction 0.8 --vary-start 0.0 --stills runs/wallpapers/images --per-still 8
    --cache-windows 60 --cache-dir runs/cache --ckpt-every 50 --eval-every 100 --lr 0.0005 --no-progress)
date -u +"start %FT%TZ"
if [ ! -f "$RUN/tiny_x4.safetensors" ]; then
    python -m vsrup.train --out "$RUN/tiny_x4.safetensors" --scale 4 --steps "$X4_STEPS" \
        --init "$RUN/prev_x4.safetensors" --run-dir "$RUN/x4" "${COMMON[@]}" --resume --reschedule
fi
date -u +"x4 done %FT%TZ"
# ×2 from the previous ×2 (stride-2 encoder, ×2-trained refiner and output conv, consistent with
# each other), not from the new ×4: the ×4's first conv cannot transfer (3 vs 12 input channels),
# and its other layers were tuned to that conv's features. The propagation starts near zero here too.
# Peak lr 2e-4 (not 5e-4): in a short run, a fresh Adam's first steps cost the ×4 warm start
# 0.8 dB that took 500 steps to win back; a lower rate disturbs the warm start less.
if [ ! -f "$RUN/tiny_x2.safetensors" ]; then
    python -m vsrup.train --out "$RUN/tiny_x2.safetensors" --scale 2 --latent-stride 2 --steps "$X2_STEPS" \
        --init "$RUN/prev_x2.safetensors" --run-dir "$RUN/x2" "${COMMON[@]}" --lr 0.0002 --resume
fi
date -u +"x2 done %FT%TZ"
for s in 4 2; do
    cp "$RUN/tiny_x$s.safetensors" "$RUN/tiny_x$s.json" src/vsrup/assets/
done
python -m vsrup.weights --refresh-embedded
date -u +"installed and pinned %FT%TZ"
