"""Device-aware choices: tile (and, on a GPU, window) defaults sized from the device's free memory, and the CUDA
speed switches (channels_last, cuDNN autotuning, TF32, `torch.compile`).

Everything CUDA-specific sits behind `device.type == "cuda"`: on the CPU the same calls only decide
sizes (from available host memory) and say what they chose.

The plan itself (a frozen value) is made in `pipeline.plan`. The memory estimate is deliberately
simple and comes from the model's description (`models.base.ModelDescription`): how many bytes of
activations one output pixel of one frame costs at its peak (`bytes_per_output_pixel`, fp32 figure;
half precision halves it) and how its tiles relate to the frame (`tiling`: its space, overlap and
tiling pixels per input pixel). A window of T frames at h×w then needs about T·h·w·scale²·bytes; if
that does not fit in a share of the free memory, the tile is the largest of `TILE_SIZES` whose
tiles fit (a model that takes whole frames only is never tiled). On a GPU with room for
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
from vsrup.models.base import ModelDescription, VSRModel

log = logging.getLogger(__name__)

TILE_SIZES = (256, 192, 128, 96, 64, 48, 32)  # in the model's tiling space, largest first
MEMORY_SHARE = {"cuda": 0.7, "cpu": 0.5}  # of the free memory a window may plan to use
COMPILE_MODE = os.environ.get("VSRUP_COMPILE_MODE", "max-autotune-no-cudagraphs")


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


def estimate_bytes(model: ModelDescription, frames: int, height: int, width: int, dtype: torch.dtype) -> int:
    """Peak activation bytes of the described model's `upscale` on `frames` frames of h×w (untiled).
    Per output pixel of one upscaled frame (a `--compare` description declares both of its parts)."""
    per_pixel = model.bytes_per_output_pixel
    if dtype in (torch.float16, torch.bfloat16):
        per_pixel //= 2
    return int(frames * height * width * model.scale**2 * per_pixel)


def choose_tile(
    model: ModelDescription, frames: int, height: int, width: int, dtype: torch.dtype, free: int | None,
    share: float,
) -> tuple[int, int, str]:  # fmt: skip
    """(tile, estimate_bytes, reason): 0 when the whole window fits in `share` of `free` memory (or
    the model takes whole frames only), else the largest tile of `TILE_SIZES` (at least the model's
    smallest) whose tiles fit, else the smallest one."""
    need = estimate_bytes(model, frames, height, width, dtype)
    if model.tiling.space == "none":
        return 0, need, f"the {model.name} model takes whole frames"
    if free is None:
        return 0, need, "free memory unknown: no tiling"
    budget = free * share
    if need <= budget:
        return 0, need, f"whole frames fit ({need / 2**20:.0f} MiB ≤ {budget / 2**20:.0f} MiB budget)"
    smallest = model.tiling.smallest
    tiled_h, tiled_w = height * model.tiling.per_input, width * model.tiling.per_input
    for tile in TILE_SIZES:
        if tile < smallest or (tile >= tiled_h and tile >= tiled_w):
            continue
        # A tile (plus the neighbours' overlap it recomputes) as a share of the frame.
        fraction = min(1.0, (min(tile, tiled_h) * min(tile, tiled_w)) / (tiled_h * tiled_w))
        if need * fraction <= budget:
            return tile, need, f"tiled to fit the {budget / 2**20:.0f} MiB budget"
    fallback = min((t for t in TILE_SIZES if t >= smallest), default=smallest)
    return fallback, need, "smallest tile: even it may not fit; the OOM fallback will shrink it"


def accelerate(
    model: VSRModel, device: torch.device, compile: bool = False, dtype: torch.dtype = torch.float32
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
    model.set_channels_last(True)
    notes.append("channels_last + cuDNN autotune")
    if compile:
        compiled = compile_heavy_modules(model)
        notes.append(f"torch.compile ({COMPILE_MODE}): {', '.join(compiled) or 'nothing to compile'}")
    return notes


def compile_heavy_modules(model: VSRModel) -> list[str]:
    """Replace the model's heavy submodules (its `compile_targets`) by their `torch.compile`d
    versions; return their names."""
    done = []
    for path in model.compile_targets:
        parent_path, _, name = path.rpartition(".")
        try:
            parent = model.get_submodule(parent_path) if parent_path else model
            module = model.get_submodule(path)
        except AttributeError:
            continue  # e.g. an optional part this instance was built without
        # dynamic=False: windows and tiles have a few fixed shapes; each compiles once.
        setattr(parent, name, torch.compile(module, mode=COMPILE_MODE, dynamic=False))
        done.append(path)
    return done
