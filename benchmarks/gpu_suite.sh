#!/usr/bin/env bash
# Every GPU figure issues 5 and 7 ask for, in one prepared run on one GPU (about 8 minutes on an
# H100), most important first:
#   1. the full-size DLoRAL-shaped model (random weights, real SD2.1-base shapes) on one window in
#      fp16: frames/s at 1280×720 output and peak GPU memory (also writes the model as a bundle);
#   2. `vsrup bench` of that bundle: the whole upscale path beside the bicubic floor, per stage;
#   3. the embedded tiny model, fp16 and fp32;
#   4. 960×540 → 3840×2160 under --max-memory 22: does 4K output fit a 24 GB card;
#   5. the DLoRAL window in fp32, then fp16 with torch.compile, then tiny with --compile.
# Each step has its own time limit and the whole run a budget (BUDGET_S, default 540 s, under the
# device tool's 600 s per command): a step that would overrun it is cut short or skipped. Results:
# one JSON per step in OUTDIR (default gpu-results/), log.txt, env.txt (the card), summary.md.
#
#   bash benchmarks/gpu_suite.sh [OUTDIR]
#   SMOKE=1 bash benchmarks/gpu_suite.sh /tmp/smoke   # the same steps on the CPU at toy sizes,
#                                                    # to check the script itself (not a measurement)
set -u
OUTDIR=${1:-gpu-results}
mkdir -p "$OUTDIR"
BUNDLE=${BUNDLE:-${TMPDIR:-/tmp}/vsrup-dloral-random}  # 1.9 GB of fp16: kept out of OUTDIR
HERE=$(cd "$(dirname "$0")" && pwd)

if [ "${SMOKE:-0}" = 1 ]; then  # building the 865 M-parameter UNet alone takes minutes on a CPU
    DEV=cpu HALF=fp32 SIZE=64x36 FRAMES=2 REPEAT=1 CLIP_FRAMES=6 BIG=96x64 BUDGET_S=${BUDGET_S:-3600}
else
    DEV=cuda HALF=fp16 SIZE=320x180 FRAMES=8 REPEAT=3 CLIP_FRAMES=45 BIG=960x540 BUDGET_S=${BUDGET_S:-540}
fi
# The default compile mode autotunes for many minutes on a UNet; `default` keeps the suite short.
export VSRUP_COMPILE_MODE=${VSRUP_COMPILE_MODE:-default}

step() {  # step NAME SECONDS COMMAND...: run within the limit and the budget; stdout → NAME.json
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET_S - SECONDS))
    if [ "$left" -lt 30 ]; then
        echo "== $name: skipped, ${left} s of the budget left" | tee -a "$OUTDIR/log.txt"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name ($(date -u +%T), limit ${limit}s): $*" | tee -a "$OUTDIR/log.txt"
    local started=$SECONDS
    timeout "$limit" "$@" >"$OUTDIR/$name.json" 2>>"$OUTDIR/log.txt"
    echo "   exit $? after $((SECONDS - started)) s" | tee -a "$OUTDIR/log.txt"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
    python -c "import torch, vsrup; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'vsrup', vsrup.__version__)"
} >"$OUTDIR/env.txt" 2>&1
cat "$OUTDIR/env.txt"

WINDOW=(python "$HERE/dloral_fullsize.py" --device $DEV --size $SIZE)
if [ -f "$BUNDLE/config.json" ]; then  # a rerun on a warm machine skips the random initialisation
    step dloral_window_fp16 240 "${WINDOW[@]}" --dtype $HALF --frames $FRAMES --repeat $REPEAT --from-bundle "$BUNDLE"
else
    step dloral_window_fp16 240 "${WINDOW[@]}" --dtype $HALF --frames $FRAMES --repeat $REPEAT --write-bundle "$BUNDLE"
fi

BENCH=(vsrup bench --device $DEV --size $SIZE --frames $CLIP_FRAMES --json -)
step dloral_bench_fp16 150 "${BENCH[@]}" --dtype $HALF --model "$BUNDLE" --skip decode,encode,length
step tiny_bench_fp16 90 "${BENCH[@]}" --dtype $HALF --skip length
step tiny_bench_fp32 60 "${BENCH[@]}" --dtype fp32 --skip floor,decode,encode,length
# 22 of 24 GiB: the cap covers torch's allocator, not the CUDA context and libraries beside it.
step dloral_4k_22gib 120 vsrup bench --model "$BUNDLE" --device $DEV --dtype $HALF --size $BIG --frames 8 \
    --max-memory 22 --skip floor,decode,encode,stages,length --json -
step dloral_window_fp32 90 "${WINDOW[@]}" --dtype fp32 --frames 4 --repeat 2 --from-bundle "$BUNDLE"
step dloral_window_fp16_compile 240 "${WINDOW[@]}" --dtype $HALF --frames $FRAMES --repeat $REPEAT \
    --from-bundle "$BUNDLE" --compile
step tiny_bench_fp16_compile 120 "${BENCH[@]}" --dtype $HALF --skip floor,decode,encode,length --compile

python "$HERE/gpu_summary.py" "$OUTDIR" | tee "$OUTDIR/summary.md"
