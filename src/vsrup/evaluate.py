"""Quality benchmark: PSNR-Y, SSIM-Y and temporal flicker of named models against bicubic and Lanczos.

Given HR videos or frame folders, the LR input is made from the HR frames by one fixed recipe per
variant (`LR_VARIANTS`): clean antialiased bicubic ÷scale, or that LR compressed as H.264 CRF 26
4:2:0 and decoded again (the input users have). Each method's output is rounded to 8 bit like a
written video, then compared with the HR frames (`vsrup.metrics`):

- PSNR-Y / SSIM-Y: on BT.601 luma (the usual SR convention), `scale` border pixels cropped; each
  row also carries its PSNR-Y gain over bicubic on the same source and LR.
- flicker: mean |(out_t − out_{t−1}) − (gt_t − gt_{t−1})| on Y (8-bit units): how much the
  frame-to-frame change of the output departs from the true change. Lower is steadier.

Methods: each named model over temporal windows (optionally again per frame, windows of one frame),
bicubic, and Lanczos (PIL's LANCZOS filter); every source gets its own rows. Run
`python -m vsrup.evaluate --help`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vsrup.errors import InputError, UsageError, VsrupError, WeightsError
from vsrup.io.reader import Frame
from vsrup.metrics import PSNR_CAP, flicker, psnr_y, ssim_y  # noqa: F401 (PSNR_CAP: re-exported)
from vsrup.models.base import VSRModel
from vsrup.pipeline.plan import make_plan
from vsrup.pipeline.runner import Runner, to_image
from vsrup.pipeline.stream import upscale_stream
from vsrup.train.data import read_frames
from vsrup.train.degrade import Recipe, degrade, downscale, from_uint8, h264, to_uint8

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


# The LR kinds: each one fixed, so every run and every method sees the same input.
H264_CRF = 26
LR_VARIANTS = {
    "bicubic": "antialiased bicubic ÷scale, rounded to 8 bit (clean, lossless)",
    "h264": f"that bicubic LR encoded with libx264 CRF {H264_CRF} yuv420p (preset veryfast, no "
    "macroblock tree) and decoded (what users have)",
    "degraded": f"blur σ 0.8, noise 2/255, then H.264 CRF {H264_CRF} (a harder, synthetic mix)",
}
# x264's macroblock tree made the same LR encode to different bytes from run to run here (0.01 dB
# apart); without it every run and every method sees the same input.
H264_PARAMS = "mbtree=0"
DEGRADED = Recipe(blur_sigma=(0.8, 0.8), noise_sigma=2 / 255, h264_crf=H264_CRF)


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
    """The LR input of one kind (see `LR_VARIANTS`), 8-bit values, (T, 3, H/scale, W/scale)."""
    clean = quantize(downscale(hr, scale, "bicubic"))
    if variant == "bicubic":
        return clean
    if variant == "h264":  # the whole clip is one H.264 stream, as in a real file
        return from_uint8(h264(to_uint8(clean), H264_CRF, H264_PARAMS))
    if variant == "degraded":
        return quantize(degrade(hr, scale, DEGRADED, np.random.default_rng(0)))
    raise UsageError(f"unknown LR variant {variant!r}; choose from {', '.join(LR_VARIANTS)}")


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
    # The metrics are many small element-wise ops: on one thread they never wait for a second one
    # (with a 2-thread pool on a busy 2-core machine SSIM took 20x longer), so score on one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            "psnr_y": round(psnr_y(out, hr, border), 3),
            "ssim_y": round(ssim_y(out, hr, border), 4),
            "flicker": round(flicker(out, hr, border), 4),
        }
    finally:
        torch.set_num_threads(threads)


def load_models(
    names: tuple[str, ...], scale: int, device: str, skip_missing: bool = False
) -> tuple[dict[str, VSRModel], dict[str, str]]:
    """Each named model, loaded at `scale`: a registered name, a converted bundle folder, or tiny
    weights (.safetensors). With `skip_missing` a model that cannot be loaded (unknown name, weights
    not downloaded) is returned in the second dict with the reason instead of stopping the run."""
    from vsrup.models import load_model

    loaded, missing = {}, {}
    for name in dict.fromkeys(names):
        try:  # a name, a converted bundle, or tiny weights (a training checkpoint): the catalogue finds it
            loaded[name] = load_model(name, scale, torch.device(device), torch.float32)
        except (WeightsError, UsageError) as exc:
            if not skip_missing:
                raise
            missing[name] = str(exc)
    return loaded, missing


def evaluate(
    sources: list[Path] | None = None,
    models: tuple[str, ...] = ("tiny",),
    scale: int = 4,
    frames: int = 30,
    variants: tuple[str, ...] = ("bicubic", "h264"),
    window: int | None = None,
    device: str = "cpu",
    per_frame: bool = False,
    skip_missing: bool = False,
) -> dict:
    """Score each named model, bicubic and Lanczos on every source and LR variant; `per_frame` adds
    each model again with windows of one frame (no neighbours). Returns {"rows": [{source, variant,
    method, psnr_y, gain_db, ssim_y, flicker}], "mean": [...], "unavailable": {name: reason}}: one
    row per source, always, and the means beside them, never instead."""
    for variant in variants:
        if variant not in LR_VARIANTS:
            raise UsageError(f"unknown LR variant {variant!r}; choose from {', '.join(LR_VARIANTS)}")
    nets, unavailable = load_models(tuple(m for m in models if m != "bicubic"), scale, device, skip_missing)
    bicubic = _bicubic(scale)  # the baseline every gain is measured from
    methods = {
        "bicubic": lambda lr: upscale_clip(bicubic, lr),
        "lanczos (PIL)": lambda lr: lanczos(lr, scale),
    }
    for name, net in nets.items():  # each row is named after the model that made it, and only that one
        methods[name] = lambda lr, net=net: upscale_clip(net, lr, window)
        if per_frame:
            methods[f"{name} per-frame"] = lambda lr, net=net: upscale_clip(net, lr, 1)
    rows = []
    for source in sources or held_out_sources():
        hr = load_hr(Path(source), frames, scale)
        for variant in variants:
            lr = make_lr(hr, scale, variant)
            group = [{"method": method} | _run(run, lr, hr, scale) for method, run in methods.items()]
            base = group[0]["psnr_y"]  # bicubic, first by construction
            rows += [
                {"source": Path(source).name, "variant": variant}
                | r
                | {"gain_db": round(r["psnr_y"] - base, 3)}
                for r in group
            ]
    return {
        "models": list(nets),
        "unavailable": unavailable,
        "scale": scale,
        "frames": frames,
        "variants": {v: LR_VARIANTS[v] for v in variants},
        "rows": rows,
        "mean": _means(rows),
    }


def _run(method, lr: torch.Tensor, hr: torch.Tensor, scale: int) -> dict:
    start = time.perf_counter()
    out = method(lr)
    seconds = time.perf_counter() - start  # the upscale only, not the scoring
    return score(out, hr, scale) | {"seconds": round(seconds, 2)}


def _bicubic(scale: int) -> VSRModel:
    from vsrup.models import load_model

    return load_model("bicubic", scale, torch.device("cpu"), torch.float32)


METRICS = ("psnr_y", "gain_db", "ssim_y", "flicker")


def _means(rows: list[dict]) -> list[dict]:
    out = []
    for variant, method in dict.fromkeys((r["variant"], r["method"]) for r in rows):
        sel = [r for r in rows if r["variant"] == variant and r["method"] == method]
        mean = {m: round(sum(r[m] for r in sel) / len(sel), 4) for m in METRICS}
        out.append({"source": "mean", "variant": variant, "method": method} | mean)
    return out


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    names = ", ".join(result["models"]) or "baselines only"
    table = Table(title=f"{names} ×{result['scale']}, first {result['frames']} frames")
    for col in ("source", "LR", "method", "PSNR-Y dB", "gain dB", "SSIM-Y", "flicker ↓"):
        table.add_column(col, justify="left" if col in ("source", "LR", "method") else "right")
    for r in result["rows"] + result["mean"]:
        table.add_row(
            r["source"],
            r["variant"],
            r["method"],
            f"{r['psnr_y']:.2f}",
            f"{r['gain_db']:+.2f}",
            f"{r['ssim_y']:.4f}",
            f"{r['flicker']:.3f}",
        )
    console = Console()
    console.print(table)
    for name, reason in result["unavailable"].items():
        console.print(f"{name}: not available ({reason})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vsrup eval", description=__doc__.split("\n")[0])
    parser.add_argument(
        "sources", nargs="*", type=Path, metavar="SOURCE",
        help="HR videos or frame folders (default: the held-out set in benchmarks/heldout)",
    )  # fmt: skip
    parser.add_argument(
        "--model", default="tiny", metavar="NAME[,NAME...]",
        help="models to score, comma-separated: names (see `vsrup models`), converted bundle folders, "
        "or tiny weights (.safetensors); bicubic and Lanczos are always scored (default: tiny)",
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
        "--variants", default="bicubic,h264", metavar="KINDS",
        help="LR kinds, comma-separated: bicubic (clean), h264 (bicubic then H.264 CRF 26 4:2:0), "
        "degraded (blur, noise, H.264) (default: bicubic,h264)",
    )  # fmt: skip
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="N",
        help="frames per model window (default: the model's, as in upscale)",
    )
    parser.add_argument(
        "--per-frame", action="store_true", help="also score each model with windows of one frame"
    )
    parser.add_argument(
        "--skip-missing", action="store_true",
        help="report a model that cannot be loaded (weights absent) as not available instead of failing",
    )  # fmt: skip
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
            args.sources,
            tuple(args.model.split(",")),
            args.scale,
            args.frames,
            tuple(args.variants.split(",")),
            args.window,
            per_frame=args.per_frame,
            skip_missing=args.skip_missing,
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
