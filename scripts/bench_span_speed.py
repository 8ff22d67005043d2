"""CPU speed switches for the SPAN base (issue 26 item 3): fp32 vs bf16, channels_last, torch.compile.

Each variant upscales the same 320×180 frame (a real frame, area-downscaled from a shared clip) ×4
(or ×2); the variants run interleaved, several rounds, and the best time of each is reported
(the machine is shared: the minimum is the least disturbed run). Quality: PSNR-Y of each
variant's output against the 1280×720 original, beside fp32's, and the largest difference from
fp32's output in 8-bit levels.

    PYTHONPATH=src python scripts/bench_span_speed.py [--scale 4] [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vsrup.models.span import load_span_net
from vsrup.train.data import DEFAULT_DATA, read_frames
from vsrup.train.span_data import psnr_y
from vsrup.weights.span_wheel import require_base


def frame(scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    hr = read_frames(DEFAULT_DATA / "clips" / "01_dog.mp4", max_frames=1)[0]
    hr = torch.from_numpy(hr).permute(2, 0, 1)[None].float() / 255
    hr = F.interpolate(hr, size=(180 * scale, 320 * scale), mode="area")
    return F.interpolate(hr, size=(180, 320), mode="bicubic", antialias=True).clamp(0, 1), hr


def variants(scale: int) -> dict:
    def build(dtype=torch.float32, channels_last=False, compiled=False):
        net = load_span_net(require_base(scale)).eval().to(dtype)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(memory_format=fmt)
        fn = torch.compile(net) if compiled else net

        def run(x):
            with torch.no_grad():
                return fn(x.to(dtype).contiguous(memory_format=fmt)).float().clamp(0, 1)

        return run

    return {
        "fp32": build(),
        "fp32+channels_last": build(channels_last=True),
        "bf16": build(torch.bfloat16),
        "bf16+channels_last": build(torch.bfloat16, True),
        "fp32+compile": build(compiled=True),
        "bf16+channels_last+compile": build(torch.bfloat16, True, True),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lr, hr = frame(args.scale)
    runs = {k: v for k, v in variants(args.scale).items() if not args.only or k in args.only}
    outputs, best = {}, {k: float("inf") for k in runs}
    for name, run in runs.items():  # warm-up (compiles)
        t = time.perf_counter()
        outputs[name] = run(lr)
        print(f"{name}: first call {time.perf_counter() - t:.2f} s", flush=True)
    for _ in range(args.rounds):
        for name, run in runs.items():
            t = time.perf_counter()
            run(lr)
            best[name] = min(best[name], time.perf_counter() - t)
    ref = outputs.get("fp32")
    report = {}
    for name in runs:
        row = {
            "best_s": round(best[name], 4),
            "psnr_y": round(float(psnr_y(outputs[name], hr, args.scale)), 3),
        }
        if ref is not None:
            row["max_diff_levels"] = round(float((outputs[name] - ref).abs().max() * 255), 2)
        report[name] = row
        print(name, row, flush=True)
    meta = {"scale": args.scale, "threads": args.threads, "rounds": args.rounds, "torch": torch.__version__}
    out = Path("runs") / f"span_speed_x{args.scale}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
