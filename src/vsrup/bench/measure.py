"""The measurements of `vsrup bench`, each run in a child process of its own (`python -m vsrup.bench
--one SPEC`), so that a run's peak memory belongs to that run alone."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from vsrup.errors import UsageError, VsrupError

STEPS = ("prepare", "encode", "temporal_fuse", "denoise", "decode", "finish")

# ---------------------------------------------------------------------------------------------
# Memory readings (child side)


def _proc_status(key: str) -> float | None:
    """A `VmHWM`/`VmRSS` line of /proc/self/status in MiB (Linux); None elsewhere."""
    from vsrup.hostmem import proc_bytes

    value = proc_bytes("/proc/self/status", key)
    return None if value is None else value / 2**20


def peak_rss_mib() -> float:
    """This process's peak resident memory so far."""
    peak = _proc_status("VmHWM")
    if peak is None:  # not Linux: ru_maxrss (kB on Linux/BSD, bytes on macOS)
        import resource

        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = raw / (1024 * 1024) if sys.platform == "darwin" else raw / 1024
    return round(peak, 1)


def rss_mib() -> float | None:
    value = _proc_status("VmRSS")
    return None if value is None else round(value, 1)


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _gpu_peak(device) -> dict:
    if device.type != "cuda":
        return {}
    import torch

    return {
        "gpu_peak_allocated_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
        "gpu_peak_reserved_mib": round(torch.cuda.max_memory_reserved(device) / 2**20, 1),
        "gpu_name": torch.cuda.get_device_name(device),
    }


# ---------------------------------------------------------------------------------------------
# One measurement per child process


def _settings(spec: dict):
    from vsrup.upscale import UpscaleSettings

    return UpscaleSettings(
        scale=spec["scale"],
        model=spec["model"],
        window=spec.get("window"),
        overlap=spec.get("overlap"),
        tile=spec.get("tile"),
        device=spec["device"],
        dtype=spec["dtype"],
        compile=spec.get("compile", False),
        max_memory_gib=spec.get("max_memory_gib"),
        overwrite=True,
    )


def _upscaler(spec: dict):
    from vsrup.upscale import Upscaler

    if spec.get("random_weights"):
        _register_random(spec["model"])
        spec = {**spec, "model": spec["model"] + "@random"}
    return Upscaler(_settings(spec))


def _load_random_tiny(scale, device, dtype, options):
    import json

    from vsrup.models.tiny import TinyConfig, TinyVSR, asset_paths

    # The shipped architecture (its JSON), so the speed is the shipped model's.
    config = TinyConfig.from_dict(json.loads(asset_paths(scale)[1].read_text())["architecture"])
    return TinyVSR(config).to(device=device, dtype=dtype)


def _register_random(name: str) -> None:
    """Register `<name>@random` in this (child) process's catalogue: the model's architecture with
    untrained weights (speed only); bicubic has no weights, so it is bicubic itself."""
    from vsrup import models

    if name not in ("tiny", "bicubic"):
        raise UsageError(f"--random-weights is available for tiny and bicubic, not {name!r}")
    entry = models.find(name)
    loader = _load_random_tiny if name == "tiny" else entry.loader
    models.register(
        f"{name}@random", loader, scales=entry.scales, licence=entry.licence, kind="random weights"
    )


def measure_upscale(spec: dict) -> dict:
    """The whole path on one clip: load, then `upscale_file` (decode ∥ model ∥ encode)."""
    import torch

    started = time.perf_counter()
    upscaler = _upscaler(spec)
    load_s = time.perf_counter() - started
    rss_loaded = rss_mib()
    if upscaler.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(upscaler.device)
    result = upscaler.upscale_file(Path(spec["clip"]), Path(spec["output"]))
    _sync(upscaler.device)
    return {
        "frames": result.frames,
        "seconds": round(result.seconds, 6),
        "fps": round(result.fps, 4),
        "load_s": round(load_s, 3),
        "rss_after_load_mib": rss_loaded,
        "peak_rss_mib": peak_rss_mib(),
        "device": str(upscaler.device),
        "dtype": str(upscaler.dtype).removeprefix("torch."),
        "window": result.plan.window,
        "overlap": result.plan.overlap,
        "tile": result.plan.tile,
        "output_size": list(upscaler.description.output_size(*_clip_size(spec["clip"]))),
        **_gpu_peak(upscaler.device),
    }


def _clip_size(clip: str) -> tuple[int, int]:
    from vsrup.io.probe import probe

    info = probe(Path(clip))
    return info.width, info.height


def _throughput(frames: int, seconds: float) -> dict:
    """The figures every I/O-only measurement reports."""
    return {
        "frames": frames,
        # To the microsecond: a tiny clip's stage takes milliseconds, where 0.1 ms steps would
        # already put the reported seconds 2 % away from the fps derived from them.
        "seconds": round(seconds, 6),
        "fps": _fps(frames, seconds),
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_decode(spec: dict) -> dict:
    """Decode + RGB conversion of every frame, as the engine's reader does it, nothing else."""
    from vsrup.io.probe import probe
    from vsrup.io.reader import read_frames

    info = probe(Path(spec["clip"]))
    started = time.perf_counter()
    frames = sum(1 for _ in read_frames(info))
    seconds = time.perf_counter() - started
    return _throughput(frames, seconds)


def measure_encode(spec: dict) -> dict:
    """Encode (and mux, with the input's audio copied) output-sized frames, nothing else. The
    frames are nearest-neighbour blow-ups of the first few decoded frames, cycled to the clip's
    length, so no model time and no decode time is counted."""
    import numpy as np

    from vsrup.io.probe import probe
    from vsrup.io.reader import read_frames
    from vsrup.io.writer import EncodeSettings, VideoWriter

    info = probe(Path(spec["clip"]))
    out_width, out_height = spec["output_size"]  # the model's, as the upscale measurement reported it
    sources: list = []
    count = 0
    for frame in read_frames(info):
        if len(sources) < 4:
            big = np.repeat(
                np.repeat(frame.image, out_height // info.height, axis=0), out_width // info.width, axis=1
            )
            sources.append((frame.pts, frame.duration, big))
        else:
            sources.append((frame.pts, frame.duration, None))  # timing only; images are cycled
        count += 1
    output = Path(spec["output"])
    writer = VideoWriter(output, info, (out_width, out_height), EncodeSettings(), output.suffix.lower())
    started = time.perf_counter()
    try:
        for i, (pts, duration, _) in enumerate(sources):
            writer.write(pts, duration, sources[i % 4][2])
        writer.close()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - started
    return _throughput(count, seconds)


def measure_stages(spec: dict) -> dict:
    """The model alone on one window (first frames of the clip), after one warm-up run.

    For a `OneStepLatentVSR` each template step is timed by wrapping it on the instance, so the
    model runs its real `upscale` (with its own padding/resizing, counted as `other`). Host↔device
    copies (`to_tensor`/`to_image`) are timed as `transfer`.
    """
    import torch

    from vsrup.io.probe import probe
    from vsrup.io.reader import read_frames
    from vsrup.models.base import OneStepLatentVSR
    from vsrup.pipeline.runner import to_tensor

    upscaler = _upscaler(spec)
    info = probe(Path(spec["clip"]))
    plan = upscaler.plan(info)  # the window and tile the upscale run will use
    model, device = upscaler.model, upscaler.device
    images = []
    for frame in read_frames(info):
        images.append(frame.image)
        if len(images) == plan.window:
            break
    frames = len(images)
    with torch.inference_mode():
        model.upscale(to_tensor(images, device, upscaler.dtype), plan.tile)  # warm-up (and compile, if on)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best: dict[str, float] | None = None
    for _ in range(max(1, spec.get("repeats", 1))):
        times = _time_window(model, images, upscaler, plan.tile, isinstance(model, OneStepLatentVSR))
        if best is None or times["total"] < best["total"]:
            best = times
    assert best is not None
    stride = max(1, plan.stride)
    model_s = best["model"]
    return {
        "frames": frames,
        "window": plan.window,
        "overlap": plan.overlap,
        "seconds": {k: round(v, 6) for k, v in best.items()},
        "ms_per_frame": {k: round(1000 * v / frames, 3) for k, v in best.items()},
        # Overlapping windows run `window` frames to advance `stride`: the model's real output rate.
        "model_fps_in_window": _fps(frames, model_s),
        "model_fps_effective": _fps(min(stride, frames), model_s),
        "peak_rss_mib": peak_rss_mib(),
        **_gpu_peak(device),
    }


def _time_window(model, images, upscaler, tile: int, stepwise: bool) -> dict[str, float]:
    import numpy
    import torch

    from vsrup.pipeline.runner import to_image, to_tensor

    device = upscaler.device
    clock: dict[str, float] = {step: 0.0 for step in STEPS} if stepwise else {}
    originals = {}
    if stepwise:
        for step in STEPS:
            originals[step] = getattr(model, step)
            setattr(model, step, _timed(originals[step], step, clock, device))
    try:
        _sync(device)
        t0 = time.perf_counter()
        batch = to_tensor(images, device, upscaler.dtype)
        _sync(device)
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = model.upscale(batch, tile)
        _sync(device)
        t2 = time.perf_counter()
        for frame in out:
            to_image(frame, numpy.uint8)
        t3 = time.perf_counter()
    finally:
        for step in originals:
            delattr(model, step)  # back to the class's method
    times = dict(clock)
    times["model"] = t2 - t1
    if stepwise:
        times["other"] = max(0.0, times["model"] - sum(clock.values()))
    times["transfer"] = (t1 - t0) + (t3 - t2)
    times["total"] = t3 - t0
    return times


def _timed(fn, name: str, clock: dict[str, float], device):
    def run(*args, **kwargs):
        _sync(device)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        _sync(device)
        clock[name] += time.perf_counter() - start
        return result

    return run


def _fps(frames: int, seconds: float) -> float:
    return round(frames / seconds, 4) if seconds > 0 else 0.0


MEASURES = {
    "upscale": measure_upscale,
    "decode": measure_decode,
    "encode": measure_encode,
    "stages": measure_stages,
}


def child_main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    try:
        result = MEASURES[spec["measure"]](spec)
    except VsrupError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0
