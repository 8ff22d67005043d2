"""How close is `upscale --dry-run`'s time estimate to a real run? (issue 10 wants within 2×.)

For each model: load it once, run the dry-run estimate, then upscale the same clip for real with
the same loaded model, and print estimate / real. Run on an idle-ish machine; the figure is a
benchmark, not a unit test.

    python benchmarks/dryrun_accuracy.py                          # bicubic and tiny, sample clip
    python benchmarks/dryrun_accuracy.py --clip in.mp4 --model tiny --scale 2

`tiny-untrained` is the tiny architecture with random weights: the same compute as the shipped
model, so it stands in for it when its weights are not built yet (timing does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from vsrup import models
from vsrup.errors import VsrupError
from vsrup.estimate import estimate
from vsrup.upscale import Upscaler, UpscaleSettings

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dog_320x180.mp4"


def _untrained_tiny(scale: int, device: torch.device, dtype: torch.dtype, options) -> models.VSRModel:
    from vsrup.models.tiny import TinyConfig, TinyVSR

    torch.manual_seed(0)
    return TinyVSR(TinyConfig(scale=scale)).to(device=device, dtype=dtype)


models.register("tiny-untrained", _untrained_tiny, scales=(2, 4), kind="random weights")


def measure(clip: Path, model: str, scale: int, device: str) -> dict:
    upscaler = Upscaler(UpscaleSettings(scale=scale, model=model, device=device))
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "out.mp4"
        est = estimate(upscaler, clip, target)
        started = time.perf_counter()
        result = upscaler.upscale_file(clip, target)
        real = time.perf_counter() - started
    return {
        "model": model,
        "clip": clip.name,
        "scale": scale,
        "device": est.device,
        "frames": result.frames,
        "calibration_frames": est.calibration_frames,
        "calibration_s": est.calibration_s,
        "estimated_s": est.estimated_s,
        "real_s": round(real, 2),
        "ratio": round(est.estimated_s / real, 3) if est.estimated_s else None,
        "peak_host_mb": est.peak_host_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SAMPLE)
    parser.add_argument("--model", action="append", help="repeatable (default: bicubic and tiny)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    names = args.model or ["bicubic", "tiny" if _loads("tiny", args.scale) else "tiny-untrained"]
    for name in names:
        print(json.dumps(measure(args.clip, name, args.scale, args.device)), flush=True)


def _loads(name: str, scale: int) -> bool:
    try:
        models.load_model(name, scale, torch.device("cpu"), torch.float32)
    except VsrupError:  # weights not built yet: use the stand-in
        return False
    return True


if __name__ == "__main__":
    main()
