"""`vsrup bench`: frames per second and peak memory of the upscale path, of each of its stages, and
of the bicubic I/O floor — side by side, from one command.

Every measurement runs in a fresh child process (`python -m vsrup.bench --one SPEC`) that reports
its own numbers as one JSON line: a run's peak memory then belongs to that run alone, not to
whatever an earlier run left allocated. Peak host memory is the child's `VmHWM` (the high-water
mark of its resident set, which starts afresh at exec; `ru_maxrss` would inherit the parent's).

Measurements (each in its own child):
- `upscale`: the whole `Upscaler.upscale_file` path (decode ∥ model ∥ encode), for the model and
  for `bicubic` (the floor: what decode + resize + encode cost with no model at all);
- `decode`: reading and converting every frame to RGB, nothing else;
- `encode`: encoding output-sized frames (made by a nearest-neighbour blow-up of decoded frames);
- `stages`: the model on one window; for a `OneStepLatentVSR` each template step is timed inside
  the model's own `upscale` (so the model's padding/resizing around the steps is counted as `other`);
- memory vs length: `upscale` on a clip of N frames and on one of 8·N frames at the same size.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from vsrup.errors import InputError, UsageError, VsrupError

SAMPLE_CLIP = Path(__file__).resolve().parents[2] / "examples" / "dog_320x180.mp4"
STEPS = ("prepare", "encode", "temporal_fuse", "denoise", "decode", "finish")


@dataclass
class BenchOptions:
    model: str = "tiny"
    scale: int = 4
    device: str = "auto"
    dtype: str = "auto"
    clip: Path | None = None  # None: the shipped sample clip
    size: tuple[int, int] | None = None  # (width, height): make a clip of this size from `clip`
    frames: int | None = None  # with `size` (or alone): length of the made clip
    window: int | None = None
    overlap: int | None = None
    tile: int | None = None
    compile: bool = False
    max_memory_gib: float | None = None  # --max-memory: e.g. 24 to check that a job fits a 24 GB card
    random_weights: bool = False  # the model's architecture with untrained weights (speed only)
    repeats: int = 2  # timed repetitions of the per-stage measurement (the best one is kept)
    length_frames: int = 96  # N of the memory-vs-length check (0: skip it); see benchmarks/README.md
    length_factor: int = 8
    skip: tuple[str, ...] = ()  # any of: floor, decode, encode, stages, length
    timeout_s: float = 1800.0
    keep_dir: Path | None = None  # keep the made clips and outputs here (default: a temp dir)

    def validate(self) -> None:
        if self.scale not in (2, 4):
            raise UsageError(f"--scale must be 2 or 4 (got {self.scale})")
        if self.frames is not None and self.frames < 1:
            raise UsageError(f"--frames must be at least 1 (got {self.frames})")
        if self.size is not None and (min(self.size) < 8 or any(v % 2 for v in self.size)):
            raise UsageError(f"--size must be even and at least 8×8 (got {self.size[0]}x{self.size[1]})")
        if self.length_frames < 0 or self.length_factor < 2:
            raise UsageError("--length-frames must be ≥ 0 and --length-factor ≥ 2")
        unknown = set(self.skip) - {"floor", "decode", "encode", "stages", "length"}
        if unknown:
            raise UsageError(f"unknown --skip part(s): {', '.join(sorted(unknown))}")


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' → (640, 360)."""
    try:
        width, height = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise UsageError(f"--size must look like 640x360 (got {text!r})") from None
    return width, height


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
    from vsrup.engine import UpscaleSettings

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
    from vsrup.engine import Upscaler

    if spec.get("random_weights"):
        _register_random(spec["model"])
        spec = {**spec, "model": spec["model"] + "@random"}
    return Upscaler(_settings(spec))


def _register_random(name: str) -> None:
    """Register `<name>@random`: the model's architecture with untrained weights (speed only)."""
    from vsrup import models

    if name == "tiny":

        def load(scale, device, dtype):
            from vsrup.models.tiny import TinyConfig, TinyVSR

            return TinyVSR(TinyConfig(scale=scale)).to(device=device, dtype=dtype)

        models.register(name + "@random")(load)
    elif name == "bicubic":
        models.register(name + "@random")(models._LOADERS["bicubic"])
    else:
        raise UsageError(f"--random-weights is available for tiny and bicubic, not {name!r}")


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
        "seconds": round(result.seconds, 4),
        "fps": round(result.fps, 4),
        "load_s": round(load_s, 3),
        "rss_after_load_mib": rss_loaded,
        "peak_rss_mib": peak_rss_mib(),
        "device": str(upscaler.device),
        "dtype": str(upscaler.dtype).removeprefix("torch."),
        "window": upscaler.window,
        "overlap": upscaler.overlap,
        "tile": upscaler.model.tiles.latent_tile,
        **_gpu_peak(upscaler.device),
    }


def _throughput(frames: int, seconds: float) -> dict:
    """The figures every I/O-only measurement reports."""
    return {
        "frames": frames,
        "seconds": round(seconds, 4),
        "fps": _fps(frames, seconds),
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_decode(spec: dict) -> dict:
    """Decode + RGB conversion of every frame, as the engine's reader does it, nothing else."""
    from vsrup.video import probe, read_frames

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

    from vsrup.video import EncodeSettings, VideoWriter, probe, read_frames

    info = probe(Path(spec["clip"]))
    scale = spec["scale"]
    sources: list = []
    count = 0
    for frame in read_frames(info):
        if len(sources) < 4:
            big = np.repeat(np.repeat(frame.image, scale, axis=0), scale, axis=1)
            sources.append((frame.pts, frame.duration, big))
        else:
            sources.append((frame.pts, frame.duration, None))  # timing only; images are cycled
        count += 1
    output = Path(spec["output"])
    writer = VideoWriter(output, info, scale, EncodeSettings(), output.suffix.lower())
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

    from vsrup.engine import to_tensor
    from vsrup.models.base import OneStepLatentVSR
    from vsrup.progress import Reporter
    from vsrup.video import probe, read_frames

    upscaler = _upscaler(spec)
    info = probe(Path(spec["clip"]))
    upscaler.plan_video(info, Reporter())  # the window and tile the upscale run will use
    model, device = upscaler.model, upscaler.device
    images = []
    for frame in read_frames(info):
        images.append(frame.image)
        if len(images) == upscaler.window:
            break
    frames = len(images)
    with torch.inference_mode():
        model.upscale(to_tensor(images, device, upscaler.dtype))  # warm-up (and compile, if on)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    best: dict[str, float] | None = None
    for _ in range(max(1, spec.get("repeats", 1))):
        times = _time_window(model, images, upscaler, isinstance(model, OneStepLatentVSR))
        if best is None or times["total"] < best["total"]:
            best = times
    assert best is not None
    stride = max(1, upscaler.window - upscaler.overlap)
    model_s = best["model"]
    return {
        "frames": frames,
        "window": upscaler.window,
        "overlap": upscaler.overlap,
        "seconds": {k: round(v, 5) for k, v in best.items()},
        "ms_per_frame": {k: round(1000 * v / frames, 3) for k, v in best.items()},
        # Overlapping windows run `window` frames to advance `stride`: the model's real output rate.
        "model_fps_in_window": _fps(frames, model_s),
        "model_fps_effective": _fps(min(stride, frames), model_s),
        "peak_rss_mib": peak_rss_mib(),
        **_gpu_peak(device),
    }


def _time_window(model, images, upscaler, stepwise: bool) -> dict[str, float]:
    import numpy
    import torch

    from vsrup.engine import to_image, to_tensor

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
            out = model.upscale(batch)
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


# ---------------------------------------------------------------------------------------------
# Parent side: clips, children, the report


def run_child(spec: dict, timeout_s: float) -> dict:
    """Run one measurement in a fresh interpreter; return its JSON (raise with its stderr if it failed)."""
    command = [sys.executable, "-m", "vsrup.bench", "--one", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise VsrupError(f"benchmark step {spec['measure']} took longer than {timeout_s:.0f} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    if "error" in result:  # a VsrupError in the child: its one-line message
        raise VsrupError(f"benchmark step {spec['measure']}: {result['error']}")
    if done.returncode != 0 or not result:
        tail = done.stderr.strip().splitlines()[-3:]
        raise VsrupError(f"benchmark step {spec['measure']} failed: {' / '.join(tail) or 'no output'}")
    return result


def _frames_of(path: Path) -> Iterator:
    import av

    with av.open(str(path)) as container:
        yield from container.decode(video=0)


def make_clip(path: Path, frames: int, size: tuple[int, int] | None, source: Path | None) -> Path:
    """Write an H.264 clip of `frames` frames at `size`: `source`'s frames, resized and looped
    (so the content is real video), or a moving synthetic pattern when there is no source."""
    import av
    import numpy

    if source is not None and not source.exists():
        raise InputError(f"benchmark clip not found: {source}")
    rate = Fraction(25)
    if source is not None:
        with av.open(str(source)) as probe_container:
            stream = probe_container.streams.video[0]
            rate = stream.average_rate or rate
            width, height = size or (stream.codec_context.width, stream.codec_context.height)
    else:
        width, height = size or (320, 180)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18"}
        written = 0
        while written < frames:
            if source is not None:
                pictures = (
                    f.reformat(width=width, height=height, format="yuv420p") for f in _frames_of(source)
                )
            else:
                pictures = (_pattern(i, width, height, numpy) for i in range(frames))
            for picture in pictures:
                if written == frames:
                    break
                # One tick per frame in the new stream's own time base: a source frame still carries
                # its old time base, and mixing them made duplicate timestamps after ~500 frames.
                picture.pts, picture.time_base = written, 1 / rate
                for packet in stream.encode(picture):
                    out.mux(packet)
                written += 1
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _pattern(index: int, width: int, height: int, numpy):
    import av

    y, x = numpy.mgrid[0:height, 0:width].astype(numpy.float32)
    image = numpy.stack(
        [((x + 3 * index) / width) % 1.0, y / height, (((x + 2 * index) // 6 + y // 6) % 2) * 0.6 + 0.2], -1
    )
    rgb = (image * 255).round().astype(numpy.uint8)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def _clip_size(path: Path) -> tuple[int, int, int]:
    from vsrup.video import probe

    info = probe(path)
    return info.width, info.height, info.frames_estimate or 0


def run_bench(options: BenchOptions, log=None) -> dict:
    """Run every measurement in its own child process and return the report (see module docstring)."""
    options.validate()
    say = log or (lambda text: None)
    work = options.keep_dir or Path(tempfile.mkdtemp(prefix="vsrup-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(options, work, say)
    finally:
        if options.keep_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _run(options: BenchOptions, work: Path, say) -> dict:
    if options.clip is not None and not Path(options.clip).is_file():
        raise InputError(f"benchmark clip not found: {options.clip}")
    # Without the sample clip (an installed package has no examples/) a synthetic one is made.
    source = Path(options.clip or SAMPLE_CLIP)
    if options.size is not None or options.frames is not None or not source.exists():
        frames = options.frames or (_clip_size(source)[2] if source.exists() else 24)
        say(
            f"making a {frames}-frame clip"
            + (f" at {options.size[0]}x{options.size[1]}" if options.size else "")
        )
        clip = make_clip(work / "clip.mp4", frames, options.size, source if source.exists() else None)
    else:
        clip = source
    width, height, frame_count = _clip_size(clip)
    base = {
        "model": options.model,
        "scale": options.scale,
        "device": options.device,
        "dtype": options.dtype,
        "window": options.window,
        "overlap": options.overlap,
        "tile": options.tile,
        "compile": options.compile,
        "max_memory_gib": options.max_memory_gib,
        "random_weights": options.random_weights,
        "repeats": options.repeats,
    }

    def child(measure: str, what: str, **extra) -> dict:
        say(f"measuring {what}")
        spec = {**base, "measure": measure, "clip": str(clip), **extra}
        spec.setdefault("output", str(work / f"out-{measure}-{extra.get('model', base['model'])}.mp4"))
        return run_child(spec, options.timeout_s)

    report: dict = {
        "machine": machine(),
        "input": {"clip": str(clip), "width": width, "height": height, "frames": frame_count},
        "output": {"width": width * options.scale, "height": height * options.scale},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "upscale": child("upscale", f"{options.model} upscale"),
    }
    if "floor" not in options.skip:
        report["floor"] = child(
            "upscale", "bicubic upscale (floor)", model="bicubic", compile=False, random_weights=False
        )
    if "decode" not in options.skip:
        report["decode"] = child("decode", "decode only")
    if "encode" not in options.skip:
        report["encode"] = child("encode", "encode only")
    if "stages" not in options.skip:
        report["stages"] = child("stages", f"{options.model} stages")
    if "length" not in options.skip and options.length_frames:
        report["length"] = _memory_vs_length(options, work, (width, height), clip, child)
    report["ratios"] = ratios(report)
    if hasattr(os, "getloadavg"):  # other work on the machine skews every figure: record it
        report["machine"]["load_avg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return report


def _memory_vs_length(options: BenchOptions, work: Path, size, clip: Path, child) -> dict:
    """Peak RSS of `upscale` on N and on factor·N frames at the same size (flat memory ⇒ ratio ≈ 1)."""
    short_n = options.length_frames
    long_n = short_n * options.length_factor
    runs = {}
    for name, n in (("short", short_n), ("long", long_n)):
        path = make_clip(work / f"length-{n}.mp4", n, size, clip)
        runs[name] = child("upscale", f"{options.model} upscale on {n} frames", clip=str(path),
                           output=str(work / f"length-{n}-out.mp4"))  # fmt: skip
    short, long = runs["short"], runs["long"]
    return {
        "short_frames": short["frames"],
        "long_frames": long["frames"],
        "short_peak_rss_mib": short["peak_rss_mib"],
        "long_peak_rss_mib": long["peak_rss_mib"],
        "peak_rss_ratio": round(long["peak_rss_mib"] / short["peak_rss_mib"], 4),
        # Memory the run itself added on top of the loaded model and libraries.
        "short_working_mib": round(short["peak_rss_mib"] - (short["rss_after_load_mib"] or 0), 1),
        "long_working_mib": round(long["peak_rss_mib"] - (long["rss_after_load_mib"] or 0), 1),
        "short_fps": short["fps"],
        "long_fps": long["fps"],
    }


def ratios(report: dict) -> dict:
    """Model vs floor, and the pipeline's efficiency against its slowest stage."""
    out = {}
    fps = report["upscale"]["fps"]
    if "floor" in report and report["floor"]["fps"]:
        out["model_fps_over_floor_fps"] = round(fps / report["floor"]["fps"], 4)
        out["model_peak_rss_over_floor"] = round(
            report["upscale"]["peak_rss_mib"] / report["floor"]["peak_rss_mib"], 4
        )
    stage_fps = {
        "decode": report.get("decode", {}).get("fps"),
        "model": report.get("stages", {}).get("model_fps_effective"),
        "encode": report.get("encode", {}).get("fps"),
    }
    known = {k: v for k, v in stage_fps.items() if v}
    if known:
        slowest = min(known, key=known.get)
        out["slowest_stage"] = slowest
        # On a GPU the stages run on different hardware, so the pipeline's ideal is its slowest
        # stage; on a CPU they share the cores, so the ideal is the sum of the per-frame times.
        out["pipeline_fps_over_slowest_stage"] = round(fps / known[slowest], 4)
        if len(known) == 3:
            serial = 1 / sum(1 / v for v in known.values())
            out["serial_fps"] = round(serial, 4)
            out["pipeline_fps_over_serial_fps"] = round(fps / serial, 4)
    if "length" in report:
        out["long_over_short_peak_rss"] = report["length"]["peak_rss_ratio"]
    return out


def machine() -> dict:
    """What ran the benchmark: CPU, cores, load, and the GPU if any."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "load_avg_1m_5m_15m": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------------------------
# Presentation


def render(report: dict, console=None) -> None:
    """Print the report as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    inp, out = report["input"], report["output"]
    title = (
        f"{report['options']['model']} ×{report['options']['scale']}: {inp['width']}x{inp['height']} → "
        f"{out['width']}x{out['height']}, {inp['frames']} frames on {report['upscale']['device']} "
        f"({report['upscale']['dtype']})"
    )
    table = Table(title=title)
    for column in ("run", "frames", "fps", "peak RSS MiB", "peak GPU MiB", "vs floor"):
        table.add_column(column, justify="right" if column != "run" else "left")
    floor_fps = report.get("floor", {}).get("fps")
    rows = [("upscale (model)", report["upscale"]), ("upscale (bicubic floor)", report.get("floor"))]
    rows += [("decode only", report.get("decode")), ("encode only", report.get("encode"))]
    for name, run in rows:
        if not run:
            continue
        gpu = run.get("gpu_peak_allocated_mib")
        vs = f"{run['fps'] / floor_fps:.3f}×" if floor_fps and "upscale" in name else ""
        table.add_row(name, str(run["frames"]), f"{run['fps']:.2f}", f"{run['peak_rss_mib']:.0f}",
                      "" if gpu is None else f"{gpu:.0f}", vs)  # fmt: skip
    console.print(table)
    if "stages" in report:
        stages = report["stages"]
        st = Table(title=f"model stages on one window of {stages['frames']} frames (best of repeats)")
        st.add_column("stage")
        st.add_column("ms/frame", justify="right")
        st.add_column("share of model", justify="right")
        model_ms = stages["ms_per_frame"]["model"]
        for name, ms in stages["ms_per_frame"].items():
            if name in ("total",):
                continue
            share = f"{100 * ms / model_ms:.1f} %" if model_ms and name not in ("model", "transfer") else ""
            st.add_row(name, f"{ms:.2f}", share)
        st.add_row(
            "model fps (window / effective)",
            f"{stages['model_fps_in_window']:.2f} / {stages['model_fps_effective']:.2f}",
            "",
        )
        console.print(st)
    if "length" in report:
        ln = report["length"]
        console.print(
            f"memory vs length: {ln['short_frames']} frames → {ln['short_peak_rss_mib']:.0f} MiB, "
            f"{ln['long_frames']} frames → {ln['long_peak_rss_mib']:.0f} MiB (×{ln['peak_rss_ratio']:.3f})"
        )
    if report.get("ratios"):
        console.print("ratios: " + ", ".join(f"{k}={v}" for k, v in report["ratios"].items()))


# ---------------------------------------------------------------------------------------------
# Child entry point: python -m vsrup.bench --one '{"measure": ...}'


def _child_main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    try:
        result = MEASURES[spec["measure"]](spec)
    except VsrupError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        sys.exit(_child_main(sys.argv[2]))
    print(
        "usage: python -m vsrup.bench --one SPEC_JSON  (use `vsrup bench` for the benchmark)", file=sys.stderr
    )
    sys.exit(2)


def to_markdown(report: dict) -> str:
    """A short markdown summary of one report (for benchmarks/results/)."""
    inp, out, up = report["input"], report["output"], report["upscale"]
    machine = report["machine"]
    lines = [
        f"**{report['options']['model']} ×{report['options']['scale']}**, {inp['width']}x{inp['height']} → "
        f"{out['width']}x{out['height']}, {inp['frames']} frames, {up['device']} {up['dtype']}, "
        f"window {up['window']} / overlap {up['overlap']} / tile {up['tile']}; {machine['cpu']}, "
        f"{machine['cores']} cores, load average (1/5/15 min) {machine['load_avg_1m_5m_15m']} at the start "
        f"({machine['time_utc']}), {machine.get('load_avg_at_end', '?')} at the end",
        "",
        "| run | frames | fps | peak RSS MiB | vs floor |",
        "|---|---:|---:|---:|---:|",
    ]
    floor_fps = report.get("floor", {}).get("fps")
    for name, key in (("upscale (model)", "upscale"), ("upscale (bicubic floor)", "floor"),
                      ("decode only", "decode"), ("encode only", "encode")):  # fmt: skip
        run = report.get(key)
        if run:
            vs = f"{run['fps'] / floor_fps:.3f}×" if floor_fps and key in ("upscale", "floor") else ""
            lines.append(
                f"| {name} | {run['frames']} | {run['fps']:.3f} | {run['peak_rss_mib']:.0f} | {vs} |"
            )
    if "stages" in report:
        ms = report["stages"]["ms_per_frame"]
        steps = ", ".join(f"{k} {v:.1f}" for k, v in ms.items() if k not in ("total",))
        lines += ["", f"Model stages, ms per frame on one window of {report['stages']['frames']}: {steps}."]
    if "length" in report:
        ln = report["length"]
        lines += [
            "",
            f"Memory vs length: {ln['short_frames']} frames → {ln['short_peak_rss_mib']:.0f} MiB peak RSS, "
            f"{ln['long_frames']} frames → {ln['long_peak_rss_mib']:.0f} MiB (×{ln['peak_rss_ratio']:.3f}).",
        ]
    return "\n".join(lines) + "\n"
