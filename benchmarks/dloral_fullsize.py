"""Time the full-size DLoRAL-compatible model with random weights (real SD2.1-base shapes, no download).

Builds the 8-channel SD2.1-base UNet, the SD2.1 VAE and the CFR at their real sizes with random
values, then times `upscale` on a window of 180p frames (the shared REDS LR frames when present,
else noise) to 720p. Prints seconds per frame and peak memory (host RSS on CPU, allocated GPU memory
on CUDA) as one JSON line. `--write-bundle DIR` also saves the random model as a converted bundle,
so `vsrup upscale in.mp4 out.mp4 --model DIR` can run the full-size model end to end.

    python benchmarks/dloral_fullsize.py --threads 1                 # CPU, fp32
    python benchmarks/dloral_fullsize.py --device cuda --dtype fp16  # GPU
    python benchmarks/dloral_fullsize.py --device cuda --dtype fp16 --from-bundle DIR --compile
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vsrup.models.cfr import CrossFrameRetrieval
from vsrup.models.dloral import DLoRAL
from vsrup.models.sd_build import (
    SD21_BASE_UNET_CONFIG,
    SD21_BASE_VAE_CONFIG,
    build_unet,
    build_vae,
    write_bundle,
)

REDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "frames" / "reds_demo_lr"


def frames_180p(count: int, width: int, height: int) -> torch.Tensor:
    paths = sorted(REDS.glob("*.png"))[:count] if REDS.is_dir() else []
    if len(paths) == count:
        from PIL import Image

        arrays = [np.asarray(Image.open(p).convert("RGB").resize((width, height))) for p in paths]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    return torch.rand(count, 3, height, width, generator=torch.Generator().manual_seed(0))


def build(seed: int) -> DLoRAL:
    torch.manual_seed(seed)
    unet = build_unet({**SD21_BASE_UNET_CONFIG, "in_channels": 8})
    return DLoRAL(
        unet, build_vae(SD21_BASE_VAE_CONFIG), CrossFrameRetrieval(), torch.randn(1, 77, 1024) * 0.5
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--frames", type=int, default=2, help="frames in the window (timed together)")
    parser.add_argument("--size", default="320x180", help="input WxH (output is ×4)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--chunk", type=int, default=4, help="pairs per UNet call")
    parser.add_argument("--latent-tile", type=int, default=0, help="latent tile (0: whole frame)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs after one warm-up on CUDA")
    parser.add_argument("--write-bundle", type=Path, help="also save the random model as a bundle here")
    parser.add_argument("--from-bundle", type=Path, help="load a bundle written earlier instead of building")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the heavy modules (as --compile)"
    )
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    width, height = (int(v) for v in args.size.split("x"))

    started = time.perf_counter()
    if args.from_bundle:  # seconds instead of the minutes random initialisation takes
        from vsrup.models import load_bundle

        model = load_bundle(args.from_bundle, 4, "cpu", torch.float32)
    else:
        model = build(0)
    if args.write_bundle:
        tensors = {f"unet.{k}": v.half() for k, v in model.unet.state_dict().items()}
        tensors.update({f"vae.{k}": v.half() for k, v in model.vae.state_dict().items()})
        tensors.update({f"cfr.{k}": v.half() for k, v in model.cfr.state_dict().items()})
        tensors["prompt_embeds"] = model.prompt_embeds.half()
        config = {"model": "dloral", "unet": {**SD21_BASE_UNET_CONFIG, "in_channels": 8}, "vae": SD21_BASE_VAE_CONFIG,
                  "scaling_factor": 0.18215, "timestep": 1, "dtype": "float16", "prompt": "(random)"}  # fmt: skip
        write_bundle(args.write_bundle, tensors, config)
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    model.chunk = args.chunk
    if args.channels_last:
        model.set_channels_last()
    if args.compile:
        from vsrup.tuning import COMPILE_MODE, compile_heavy_modules

        print(f"compiling ({COMPILE_MODE}): {', '.join(compile_heavy_modules(model))}", file=sys.stderr)
    build_s = time.perf_counter() - started

    frames = frames_180p(args.frames, width, height).to(device=device, dtype=dtype)
    cuda = device.type == "cuda"
    warmup_s = None
    with torch.inference_mode():
        if cuda:
            t0 = time.perf_counter()
            model.upscale(frames, args.latent_tile)  # warm-up: cuDNN autotuning, allocator, compiling
            torch.cuda.synchronize(device)
            warmup_s = round(time.perf_counter() - t0, 1)
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.repeat if cuda else 1):
            t0, c0 = time.perf_counter(), time.process_time()
            out = model.upscale(frames, args.latent_tile)
            if cuda:
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    cpu_seconds = time.process_time() - c0  # of the last run; on a shared machine this is the honest figure
    seconds = min(times)
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": args.dtype,
        "frames": args.frames,
        "input": f"{width}x{height}",
        "output": f"{out.shape[-1]}x{out.shape[-2]}",
        "latent_tile": args.latent_tile,
        "chunk": args.chunk,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "build_s": round(build_s, 1),
        "warmup_s": warmup_s,
        "s_per_frame": round(seconds / args.frames, 3),
        "fps": round(args.frames / seconds, 3),
        "cpu_s_per_frame": round(cpu_seconds / args.frames, 3),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "finite": bool(torch.isfinite(out).all()),
    }
    if cuda:
        result["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
