"""Quality benchmark: PSNR-Y, SSIM-Y and temporal flicker of a model against bicubic and Lanczos.

Given HR videos or frame folders, the LR input is made by bicubic ×scale downscale (antialiased,
rounded to 8 bit) and, as a second variant, by a fixed realistic degradation (blur, noise, H.264).
Each method's output is rounded to 8 bit like a written video, then compared with the HR frames:

- PSNR-Y / SSIM-Y: on BT.601 luma (the usual SR convention), `scale` border pixels cropped.
- flicker: mean |(out_t − out_{t−1}) − (gt_t − gt_{t−1})| on Y (8-bit units): how much the
  frame-to-frame change of the output departs from the true change. Lower is steadier.

Methods: the model over temporal windows, the same model per frame (windows of one frame), bicubic,
and Lanczos (PIL's LANCZOS filter). Run `python -m vsrup.evaluate --help`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vsrup.errors import InputError, UsageError, VsrupError
from vsrup.io.reader import Frame
from vsrup.pipeline.plan import make_plan
from vsrup.pipeline.runner import Runner, to_image
from vsrup.pipeline.stream import upscale_stream
from vsrup.train.data import read_frames
from vsrup.train.degrade import Recipe, degrade, downscale

# The held-out set: lossless HR sequences kept in the repository (benchmarks/heldout, sources and
# licenses in its SOURCES.md), never used for training.
HELD_OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "heldout"


def held_out_sources(folder: Path = HELD_OUT) -> list[Path]:
    """The held-out sequences listed in `folder`/manifest.toml, in its order."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    manifest = folder / "manifest.toml"
    if not manifest.is_file():
        raise InputError(f"no held-out set at {folder} (a source checkout has it); name HR videos instead")
    sequences = tomllib.loads(manifest.read_text())["sequences"]
    return [folder / entry["file"] for entry in sequences.values()]


# The "degraded" variant: one fixed recipe, so every run and every method sees the same input.
DEGRADED = Recipe(blur_sigma=(0.8, 0.8), noise_sigma=2 / 255, h264_crf=26)
PSNR_CAP = 100.0  # identical images have infinite PSNR; report this instead so JSON stays valid


# Metrics ------------------------------------------------------------------------------------------


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-range Y in 8-bit units (16..235) from RGB (…, 3, H, W) in [0, 1]."""
    r, g, b = x.unbind(-3)
    return 16 + 65.481 * r + 128.553 * g + 24.966 * b


def _crop(y: torch.Tensor, border: int) -> torch.Tensor:
    return y[..., border : y.shape[-2] - border, border : y.shape[-1] - border] if border else y


def psnr_y(out: torch.Tensor, gt: torch.Tensor, border: int = 0) -> float:
    """Mean over frames of PSNR on Y; frames are (T, 3, H, W) in [0, 1]."""
    diff = _crop(luma(out.double()) - luma(gt.double()), border)
    mse = diff.pow(2).flatten(1).mean(1)
    per_frame = torch.where(mse > 0, 10 * torch.log10(255**2 / mse), torch.full_like(mse, PSNR_CAP))
    return float(per_frame.clamp(max=PSNR_CAP).mean())


def _gauss_blur(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Valid (unpadded) Gaussian filtering of (N, H, W), separable, as weighted sums of shifted
    slices: on CPU this is much faster than a one-channel conv2d."""
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).tolist()  # python floats: the result keeps x's dtype
    h, w = x.shape[-2] - size + 1, x.shape[-1] - size + 1
    rows = sum(g[i] * x[..., i : i + h, :] for i in range(size))
    return sum(g[i] * rows[..., :, i : i + w] for i in range(size))


def ssim_y(out: torch.Tensor, gt: torch.Tensor, border: int = 0) -> float:
    """Mean SSIM on Y (Wang et al. 2004: 11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03)."""
    if min(out.shape[-2:]) - 2 * border < 11:
        raise UsageError("frames too small for SSIM's 11×11 window")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for o, g in zip(out, gt, strict=True):  # frame by frame: float32 arrays that stay in cache
        # Centred on 128 so the float32 second moments keep their precision; SSIM's means are
        # shifted back, its (co)variances do not change under the shift.
        x, y = _crop(luma(o) - 128, border), _crop(luma(g) - 128, border)
        mx, my = _gauss_blur(x), _gauss_blur(y)
        sxx = _gauss_blur(x * x) - mx**2
        syy = _gauss_blur(y * y) - my**2
        sxy = _gauss_blur(x * y) - mx * my
        mx, my = mx + 128, my + 128
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
        scores.append(float(s.double().mean()))
    return sum(scores) / len(scores)


def flicker(out: torch.Tensor, gt: torch.Tensor, border: int = 0) -> float:
    """Mean |Δout − Δgt| over consecutive frames, on Y in 8-bit units (0 for a single frame)."""
    if out.shape[0] < 2:
        return 0.0
    yo, yg = _crop(luma(out.double()), border), _crop(luma(gt.double()), border)
    return float(((yo[1:] - yo[:-1]) - (yg[1:] - yg[:-1])).abs().mean())


# Inputs and methods -------------------------------------------------------------------------------


def quantize(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def load_hr(source: Path, frames: int, scale: int) -> torch.Tensor:
    """The first `frames` frames of a video/folder as (T, 3, H, W) in [0, 1], H and W cropped to a
    multiple of `scale` so LR × scale matches HR exactly."""
    if not source.exists():
        raise InputError(f"no such video or frame folder: {source}")
    data = np.stack(read_frames(source, max_frames=frames))
    h, w = data.shape[1] // scale * scale, data.shape[2] // scale * scale
    return torch.from_numpy(data[:, :h, :w]).permute(0, 3, 1, 2).float() / 255


def make_lr(hr: torch.Tensor, scale: int, variant: str) -> torch.Tensor:
    if variant == "bicubic":
        return quantize(downscale(hr, scale, "bicubic"))
    if variant == "degraded":
        return quantize(degrade(hr, scale, DEGRADED, np.random.default_rng(0)))
    raise UsageError(f"unknown LR variant {variant!r}; choose bicubic or degraded")


def upscale_clip(
    model, lr: torch.Tensor, window: int | None = None, overlap: int | None = None
) -> torch.Tensor:
    """Run `model` over the clip exactly as `vsrup upscale` does (the same plan, windows, overlaps,
    blending and rounding to 8 bit; only the encode is skipped). `window=1` is per-frame inference
    of the same weights: no window holds a neighbour."""
    if window == 1:
        overlap = 0
    runner = Runner(model, model.device, model.dtype)
    plan = make_plan(model.description, model.device, model.dtype, window, overlap, 0, None)
    images = (lr.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    frames = [Frame(i, i, 1, image) for i, image in enumerate(images)]
    out = [to_image(image, np.uint8) for _, image in upscale_stream(frames, runner, plan)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def lanczos(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """PIL's Lanczos (a = 3) resize of each 8-bit frame."""
    frames = (lr * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    size = (lr.shape[-1] * scale, lr.shape[-2] * scale)
    up = [np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames]
    return torch.from_numpy(np.stack(up)).permute(0, 3, 1, 2).float() / 255


def score(out: torch.Tensor, hr: torch.Tensor, border: int) -> dict[str, float]:
    return {
        "psnr_y": round(psnr_y(out, hr, border), 3),
        "ssim_y": round(ssim_y(out, hr, border), 4),
        "flicker": round(flicker(out, hr, border), 4),
    }


def evaluate(
    sources: list[Path] | None = None,
    model: str = "tiny",
    scale: int = 4,
    frames: int = 30,
    variants: tuple[str, ...] = ("bicubic", "degraded"),
    window: int | None = None,
    device: str = "cpu",
) -> dict:
    """Score `model` (temporal and per-frame), bicubic and Lanczos on each source and variant.
    Returns {"rows": [{source, variant, method, psnr_y, ssim_y, flicker}], "mean": {...}}."""
    from vsrup.models import load_model

    # A name, a converted bundle, or tiny weights (a training checkpoint): the catalogue finds it.
    net = load_model(model, scale, torch.device(device), torch.float32)
    bicubic = load_model("bicubic", scale, torch.device("cpu"), torch.float32)
    methods = {
        model: lambda lr: upscale_clip(net, lr, window),
        f"{model} per-frame": lambda lr: upscale_clip(net, lr, 1),
        "bicubic": lambda lr: upscale_clip(bicubic, lr),
        "lanczos (PIL)": lambda lr: lanczos(lr, scale),
    }
    rows = []
    for source in sources or held_out_sources():
        hr = load_hr(Path(source), frames, scale)
        for variant in variants:
            lr = make_lr(hr, scale, variant)
            for method, run in methods.items():
                row = {"source": Path(source).name, "variant": variant, "method": method}
                rows.append(row | score(run(lr), hr, border=scale))
    return {"model": model, "scale": scale, "frames": frames, "rows": rows, "mean": _means(rows)}


def _means(rows: list[dict]) -> list[dict]:
    keys = sorted(
        {(r["variant"], r["method"]) for r in rows}, key=lambda k: [r["variant"] for r in rows].index(k[0])
    )
    out = []
    for variant, method in dict.fromkeys(keys):
        sel = [r for r in rows if r["variant"] == variant and r["method"] == method]
        mean = {m: round(sum(r[m] for r in sel) / len(sel), 4) for m in ("psnr_y", "ssim_y", "flicker")}
        out.append({"source": "mean", "variant": variant, "method": method} | mean)
    return out


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']} ×{result['scale']}, first {result['frames']} frames")
    for col in ("source", "LR", "method", "PSNR-Y dB", "SSIM-Y", "flicker ↓"):
        table.add_column(col, justify="left" if col in ("source", "LR", "method") else "right")
    for r in result["rows"] + result["mean"]:
        table.add_row(
            r["source"],
            r["variant"],
            r["method"],
            f"{r['psnr_y']:.2f}",
            f"{r['ssim_y']:.4f}",
            f"{r['flicker']:.3f}",
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vsrup eval", description=__doc__.split("\n")[0])
    parser.add_argument(
        "sources", nargs="*", type=Path, metavar="SOURCE",
        help="HR videos or frame folders (default: the held-out set in benchmarks/heldout)",
    )  # fmt: skip
    parser.add_argument(
        "--model", default="tiny", metavar="NAME",
        help="model name (see `vsrup models`), a converted bundle folder, or tiny weights (.safetensors) (default: tiny)",
    )  # fmt: skip
    parser.add_argument(
        "--scale",
        type=int,
        default=4,
        metavar="N",
        help="upscaling factor, one the model offers (default: 4)",
    )
    parser.add_argument(
        "--frames", type=int, default=30, metavar="N", help="first N frames of each source (default: 30)"
    )
    parser.add_argument(
        "--variants", default="bicubic,degraded", metavar="KINDS",
        help="LR kinds, comma-separated: bicubic, degraded (default: both)",
    )  # fmt: skip
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="N",
        help="frames per model window (default: the model's, as in upscale)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, metavar="N", help="torch CPU threads (0 = torch default)"
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the results as JSON here ('-' = stdout)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = evaluate(
            args.sources, args.model, args.scale, args.frames, tuple(args.variants.split(",")), args.window
        )
    except VsrupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json and str(args.json) == "-":
        print(json.dumps(result, indent=2))
        return 0
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
