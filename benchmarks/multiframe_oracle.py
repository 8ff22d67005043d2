"""How much can a frame's neighbours add at all, under the benchmark's degradation?

    python benchmarks/multiframe_oracle.py --scale 4 [--frames 16] [--iters 40] [--json FILE]

An upper-bound probe for the temporal part of the tiny model. Starting from the shipped model's
output (the `vsrup upscale` path, via `evaluate.upscale_clip`), each frame is refined by classical
multi-frame reconstruction (Irani & Peleg's back-projection, solved as least squares by gradient
descent with momentum): the estimate, warped into each neighbour's view and downscaled by the very
operator that made the LR (antialiased bicubic), must match that neighbour's LR frame. Pixels where
the warped estimate disagrees with the neighbour by more than 2 levels (occlusions, flow errors)
are left out of that neighbour's term. Rows:

- `single-frame`: only the frame's own LR (data consistency, no neighbours);
- `multi-frame, DIS`: ±1 neighbours, aligned by DIS flow between the model's HR outputs (what a
  product could do);
- `multi-frame, oracle`: ±1 neighbours aligned by DIS flow between the *ground-truth* HR frames
  (no product has this; it bounds what better alignment could give).

If the oracle row adds little over the model, the neighbours' LR frames carry little the model
does not already have under this degradation, and a temporal model can only win through learned
priors, not by classical alignment.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from vsrup.evaluate import held_out_sources, load_hr, make_lr, psnr_y, quantize, upscale_clip
from vsrup.models import load_model
from vsrup.models.flow import warp, window_flows
from vsrup.train.degrade import downscale

TOLERANCE = 2 / 255  # neighbour pixels that disagree more than this are left out (occlusion)


def reconstruct(x0, lr, scale, flows=None, iters=40, momentum=0.7):
    """Least-squares refinement of HR estimates x0 (T, 3, H, W) against their LR frames and, with
    `flows` (T, 4, H, W: window_flows of the HR frames), against the ±1 neighbours' LR frames."""
    terms = 1 if flows is None else 3
    step = scale**2 / 2 / terms  # D averages ~scale² pixels: this step is back-projection's λ = 1
    x, prev = x0.clone(), x0.clone()
    for _ in range(iters):
        xg = x.detach().requires_grad_(True)
        loss = (downscale(xg, scale) - lr).pow(2).sum()
        if flows is not None:
            t = x.shape[0]
            for src, dst, channels in (
                (range(t - 1), range(1, t), slice(0, 2)),
                (range(1, t), range(t - 1), slice(2, 4)),
            ):
                src, dst = list(src), list(dst)
                # frame dst's flow to src maps src's estimate into dst's view
                residual = downscale(warp(xg[src], flows[dst, channels]), scale) - lr[dst]
                keep = (residual.detach().abs().mean(1, keepdim=True) < TOLERANCE).float()
                loss = loss + (keep * residual.pow(2)).sum()
        (grad,) = torch.autograd.grad(loss, xg)
        x, prev = (x - step * grad + momentum * (x - prev)).clamp(0, 1), x
    return x


def probe_sequence(net, bicubic, source: Path, scale: int, frames: int, iters: int) -> dict:
    hr = load_hr(source, frames, scale)
    lr = make_lr(hr, scale, "bicubic")
    out = upscale_clip(net, lr)
    rows = {
        "bicubic": upscale_clip(bicubic, lr),
        "model": out,
        "model + single-frame": reconstruct(out, lr, scale, None, iters),
        "model + multi-frame, DIS": reconstruct(out, lr, scale, window_flows(out, out.shape[0]), iters),
        "model + multi-frame, oracle": reconstruct(out, lr, scale, window_flows(hr, hr.shape[0]), iters),
    }
    return {name: round(psnr_y(quantize(x), hr, scale), 3) for name, x in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=4, choices=(2, 4))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = load_model("tiny", args.scale, torch.device("cpu"), torch.float32)
    bicubic = load_model("bicubic", args.scale, torch.device("cpu"), torch.float32)
    result = {}
    for source in held_out_sources():
        row = probe_sequence(net, bicubic, source, args.scale, args.frames, args.iters)
        result[source.stem] = row
        print(
            source.stem,
            "  ".join(f"{k} {v - row['bicubic']:+.2f}" for k, v in row.items() if k != "bicubic"),
            flush=True,
        )
    methods = list(next(iter(result.values())))
    mean = {m: round(sum(r[m] - r["bicubic"] for r in result.values()) / len(result), 3) for m in methods}
    print("mean gain over bicubic:", mean)
    if args.json:
        report = {
            "scale": args.scale,
            "frames": args.frames,
            "iters": args.iters,
            "psnr_y": result,
            "mean_gain": mean,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
