#!/usr/bin/env bash
# Train tiny v3 (flow-aligned neighbour frames fed to the encoder, six refiner blocks), ×4 and ×2
# side by side, each on ONE CPU thread, warm-started from the shipped v2 weights, then install and
# pin the result (src/vsrup/assets/tiny_x{4,2}.*, weights.toml).
#
#   nohup scripts/train_tiny_v3.sh > runs/tiny_v3.log 2>&1 &
#
# Rerunning resumes (--resume; a finished stage is skipped). The warm start keeps v2's output
# exactly at step 0: the encoder's new input channels (the aligned neighbours) and the two new
# refiner blocks start at zero (`train.loop._load_matching`), so every step is spent learning to
# use the neighbours, not re-learning single-frame SR. Override steps with X4_STEPS / X2_STEPS.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RUN=${RUN:-runs/tiny_v3}
X4_STEPS=${X4_STEPS:-2600}
X2_STEPS=${X2_STEPS:-2400}
V2=00d70a9  # the commit that shipped v2
mkdir -p "$RUN"
for s in 4 2; do
    for ext in safetensors json; do
        [ -f "$RUN/v2_x$s.$ext" ] || git show "$V2:src/vsrup/assets/tiny_x$s.$ext" > "$RUN/v2_x$s.$ext"
    done
done
[ -f runs/wallpapers/manifest.json ] || python scripts/prep_wallpapers.py --out runs/wallpapers

COMMON=(--seed 0 --clean-fraction 0.9 --vary-start 0.0 --stills runs/wallpapers/images --per-still 8
    --cache-windows 60 --cache-dir runs/cache --ckpt-every 50 --eval-every 200 --no-progress
    --refiner-blocks 6 --aligned-inputs --resume --reschedule)
date -u +"start %FT%TZ"
stage() {  # scale steps lr extra-args...
    local s=$1 steps=$2 lr=$3
    shift 3
    [ -f "$RUN/tiny_x$s.safetensors" ] && return 0
    python -m vsrup.train --out "$RUN/tiny_x$s.safetensors" --scale "$s" --steps "$steps" --lr "$lr" \
        --init "$RUN/v2_x$s.safetensors" --run-dir "$RUN/x$s" "${COMMON[@]}" "$@"
    date -u +"x$s done %FT%TZ"
}
stage 4 "$X4_STEPS" 0.0005 &
stage 2 "$X2_STEPS" 0.0003 --latent-stride 2 &
wait
for s in 4 2; do
    cp "$RUN/tiny_x$s.safetensors" "$RUN/tiny_x$s.json" src/vsrup/assets/
done
python -m vsrup.weights --refresh-embedded
date -u +"installed and pinned %FT%TZ"
