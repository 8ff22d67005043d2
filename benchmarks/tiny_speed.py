"""Model-only speed and FLOPs of the tiny model's versions at 320×180 → 1280×720 (×4).

    python benchmarks/tiny_speed.py [--threads 2] [--window 8] [--repeats 3] [--arch v3,v2,v1,none]

Runs `upscale` on windows of real frames (examples/dog_320x180.mp4, through vsrup's reader) with
random weights of each architecture (speed does not depend on the values), best of `repeats`,
and counts convolution FLOPs (2 × MAC) per output frame. DIS flow time is included for v2 and v3.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vsrup.io.probe import probe
from vsrup.io.reader import read_frames
from vsrup.models.tiny import TinyConfig, TinyVSR

CLIP = Path(__file__).resolve().parent.parent / "examples" / "dog_320x180.mp4"
# Each version's architecture (TinyConfig fields besides scale).
ARCHS = {
    "v3": {"align": "flow", "aligned_inputs": True, "refiner_blocks": 6},
    "v2": {"align": "flow"},
    "v1": {"align": "offset"},
    "none": {"align": "none"},  # per-frame, v2's size
}


def frames(n: int) -> torch.Tensor:
    out = []
    for frame in read_frames(probe(CLIP)):
        out.append(frame.image)
        if len(out) == n:
            break
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def conv_flops(model: TinyVSR, x: torch.Tensor) -> float:
    total = 0.0

    def hook(mod, inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += 2.0 * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.upscale(x)
    for h in handles:
        h.remove()
    return total / x.shape[0]


def measure(arch: str, x: torch.Tensor, repeats: int) -> dict:
    model = TinyVSR(TinyConfig(scale=4, **ARCHS[arch])).eval()
    best = float("inf")
    with torch.no_grad():
        model.upscale(x[:2])  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            model.upscale(x)
            best = min(best, time.perf_counter() - t)
    per_frame = best / x.shape[0]
    params = sum(p.numel() for p in model.parameters())
    gflop = conv_flops(model, x) / 1e9
    return {
        "arch": arch,
        "s_per_frame": round(per_frame, 4),
        "fps": round(1 / per_frame, 2),
        "gflop": round(gflop, 2),
        "params": params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default=",".join(ARCHS), help="versions to measure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = frames(args.window)
    for arch in args.arch.split(","):
        print(json.dumps(measure(arch, x, args.repeats) | {"threads": args.threads, "window": args.window}))


if __name__ == "__main__":
    main()
