#!/usr/bin/env bash
# Ablation of the tiny model's temporal module: per-frame (align=none) vs the previous learned
# offset module (align=offset) vs flow-guided recurrent propagation (align=flow). Same data,
# seed, steps and recipe; ×4 from scratch; one CPU thread each, run one after another.
#
#   nohup nice -n 10 scripts/ablation.sh > runs/ablation.log 2>&1 &
#
# It ends by scoring each model on the held-out benchmark (bicubic LR, first FRAMES frames), with
# and without its temporal module, into $OUT/<align>.eval.json; the model card's ablation table
# is read off those. Rerunning resumes. STEPS (default 400, ~15 min each on an idle core).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
STEPS=${STEPS:-400}
FRAMES=${FRAMES:-10}
OUT=${OUT:-runs/ablation}
mkdir -p "$OUT"
[ -f runs/wallpapers/manifest.json ] || python scripts/prep_wallpapers.py --out runs/wallpapers
for align in none offset flow; do
    [ -f "$OUT/$align.safetensors" ] && continue
    python -m vsrup.train --out "$OUT/$align.safetensors" --scale 4 --steps "$STEPS" --align "$align" \
        --seed 0 --clean-fraction 0.8 --vary-start 0.0 --stills runs/wallpapers/images --per-still 8 \
        --cache-windows 60 --cache-dir runs/cache --ckpt-every 50 --eval-every 100 --lr 0.002 \
        --run-dir "$OUT/$align" --resume --no-progress
    date -u +"$align done %FT%TZ"
done
for align in none offset flow; do
    python -m vsrup.evaluate --model "$OUT/$align.safetensors" --scale 4 --frames "$FRAMES" \
        --variants bicubic --threads 1 --json "$OUT/$align.eval.json"
done
