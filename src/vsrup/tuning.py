"""Device-aware choices: tile (and, on a GPU, window) defaults sized from the device's free memory, and the CUDA
speed switches (channels_last, cuDNN autotuning, TF32, `torch.compile`).

Everything CUDA-specific sits behind `device.type == "cuda"`: on the CPU the same calls only decide
sizes (from available host memory) and say what they chose.

The plan itself (a frozen value) is made in `pipeline.plan`. The memory estimate is deliberately simple: a model may say how many bytes of activations one
output pixel of one frame costs at its peak (`bytes_per_output_pixel`, fp32 figure; half precision
halves it) and how many latent pixels one input pixel makes (`latent_per_input`). A window of T
frames at h×w then needs about T·h·w·scale²·bytes; if that does not fit in a share of the free
memory, the latent tile is the largest of `TILE_SIZES` whose tiles fit. On a GPU with room for
twice the model's default window untiled, the window doubles (up to `MAX_GPU_WINDOW`): windows
overlap, so a longer one recomputes a smaller share of its frames. The OOM fallback in the engine
corrects any estimate that was too optimistic. `--max-memory` caps the free memory the plan may
use (per process: each `--devices` worker has its own), and on CUDA makes the allocator enforce it.
"""

from __future__ import annotations

import logging
import os

import torch

from vsrup import hostmem

log = logging.getLogger(__name__)

TILE_SIZES = (256, 192, 128, 96, 64, 48, 32)  # latent pixels, largest first
DEFAULT_BYTES_PER_OUTPUT_PIXEL = 4096  # fp32; a guess fitted to SD-style VAE decoders (conservative)
# Measured peaks (fp32, CPU, window of 8 at 180p→720p) for models that do not declare their own.
KNOWN_BYTES_PER_OUTPUT_PIXEL = {"tiny": 160, "bicubic": 48}
MEMORY_SHARE = {"cuda": 0.7, "cpu": 0.5}  # of the free memory a window may plan to use
COMPILE_MODE = os.environ.get("VSRUP_COMPILE_MODE", "max-autotune-no-cudagraphs")
COMPILE_TARGETS = ("unet", "vae.encoder", "vae.decoder", "encoder", "refiner", "cfr")


def free_memory_bytes(device: torch.device, limit: int | None = None) -> int | None:
    """Free memory on the device: CUDA's free bytes, or the host's MemAvailable; None if unknown.
    With a `limit` (bytes, `--max-memory`) no more than what this process may still use under it."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # The caching allocator's idle blocks are this process's to reuse, though the driver counts
        # them as taken: without them a second file (or segment) would plan a smaller tile.
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        in_use = torch.cuda.memory_allocated(device)
    else:
        free = hostmem.proc_bytes("/proc/meminfo", "MemAvailable")
        in_use = hostmem.proc_bytes("/proc/self/status", "VmRSS")
    if limit is not None:
        room = max(limit - (in_use or 0), 0)
        free = room if free is None else min(int(free), room)
    return None if free is None else int(free)


def limit_device_memory(device: torch.device, limit: int | None) -> list[str]:
    """`--max-memory`: plan within `limit` bytes, and on CUDA make the allocator enforce it, so a
    window that would need more hits the OOM fallback (smaller tiles) instead of the whole card."""
    if limit is None:
        return []
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        total = torch.cuda.get_device_properties(index).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), index)
        return [f"GPU memory capped at {limit / 2**30:.1f} GiB of {total / 2**30:.1f}"]
    return [f"host memory plan capped at {limit / 2**30:.1f} GiB"]


def device_name(device: torch.device) -> str:
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def estimate_bytes(model, frames: int, height: int, width: int, dtype: torch.dtype) -> int:
    """Peak activation bytes of `model.upscale` on `frames` frames of h×w (untiled)."""
    per_pixel = getattr(model, "bytes_per_output_pixel", None) or KNOWN_BYTES_PER_OUTPUT_PIXEL.get(
        getattr(model, "name", ""), DEFAULT_BYTES_PER_OUTPUT_PIXEL
    )
    if dtype in (torch.float16, torch.bfloat16):
        per_pixel //= 2
    return int(frames * height * width * model.scale**2 * per_pixel)


def choose_tile(
    model, frames: int, height: int, width: int, dtype: torch.dtype, free: int | None, share: float
) -> tuple[int, int, str]:
    """(tile, estimate_bytes, reason): 0 when the whole window fits in `share` of `free` memory,
    else the largest latent tile of `TILE_SIZES` whose tiles fit, else the smallest one."""
    need = estimate_bytes(model, frames, height, width, dtype)
    if free is None:
        return 0, need, "free memory unknown: no tiling"
    budget = free * share
    if need <= budget:
        return 0, need, f"whole frames fit ({need / 2**20:.0f} MiB ≤ {budget / 2**20:.0f} MiB budget)"
    latent_per_input = getattr(model, "latent_per_input", 1.0)
    overlap = model.tiles.latent_overlap
    latent_h, latent_w = height * latent_per_input, width * latent_per_input
    for tile in TILE_SIZES:
        if tile < 2 * overlap or (tile >= latent_h and tile >= latent_w):
            continue
        # A tile (plus the neighbours' overlap it recomputes) as a share of the frame.
        fraction = min(1.0, (min(tile, latent_h) * min(tile, latent_w)) / (latent_h * latent_w))
        if need * fraction <= budget:
            return tile, need, f"tiled to fit the {budget / 2**20:.0f} MiB budget"
    smallest = min((t for t in TILE_SIZES if t >= 2 * overlap), default=0)
    return smallest, need, "smallest tile: even it may not fit; the OOM fallback will shrink it"


def accelerate(
    model, device: torch.device, compile: bool = False, dtype: torch.dtype = torch.float32
) -> list[str]:
    """Switch on the speed features that pay off on this device, and set the host heap up for
    reuse; return what was done (for `--verbose`). On CPU `compile` is accepted but ignored, with a
    warning."""
    notes: list[str] = []
    if hostmem.reuse_host_memory():
        notes.append("host heap: buffers reused across windows")
    if device.type != "cuda":
        if compile:
            log.warning("--compile is used on CUDA only; running uncompiled on %s", device)
            notes.append("compile requested but ignored on CPU")
        return notes
    torch.backends.cudnn.benchmark = True  # fixed window/tile shapes: autotuned convolutions pay off
    if dtype == torch.float32:
        # TF32 matmuls for fp32 runs only: a half run's matmuls kept in fp32 on purpose (the CFR
        # attention's upcast) want full fp32. (cuDNN convolutions use TF32 by torch's default.)
        torch.backends.cuda.matmul.allow_tf32 = True
        notes.append("TF32 matmul")
    if hasattr(model, "set_channels_last"):
        model.set_channels_last(True)
    else:
        model.to(memory_format=torch.channels_last)
    notes.append("channels_last + cuDNN autotune")
    if compile:
        compiled = compile_heavy_modules(model)
        notes.append(f"torch.compile ({COMPILE_MODE}): {', '.join(compiled) or 'nothing to compile'}")
    return notes


def compile_heavy_modules(model) -> list[str]:
    """Replace the model's heavy submodules (`COMPILE_TARGETS`, or the model's own
    `compile_targets`) by their `torch.compile`d versions; return their names."""
    targets = getattr(model, "compile_targets", COMPILE_TARGETS)
    done = []
    for path in targets:
        parent_path, _, name = path.rpartition(".")
        try:
            parent = model.get_submodule(parent_path) if parent_path else model
        except AttributeError:
            continue
        module = getattr(parent, name, None)
        if not isinstance(module, torch.nn.Module):
            continue
        # dynamic=False: windows and tiles have a few fixed shapes; each compiles once.
        setattr(parent, name, torch.compile(module, mode=COMPILE_MODE, dynamic=False))
        done.append(path)
    return done
