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
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from vsrup.bench.clip import clip_size, make_clip
from vsrup.bench.report import machine, ratios, render, to_markdown
from vsrup.errors import InputError, UsageError, VsrupError

__all__ = ["BenchOptions", "parse_size", "render", "run_bench", "to_markdown"]

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_CLIP = PROJECT_ROOT / "examples" / "dog_320x180.mp4"


def _shown(clip: Path) -> str:
    """The clip as a report names it: relative to the project when it is in it, so a committed
    result does not carry one machine's layout."""
    return str(clip.relative_to(PROJECT_ROOT)) if clip.is_relative_to(PROJECT_ROOT) else str(clip)


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
        from vsrup.models import find

        find(self.model).check_scale(self.scale)  # the model is known and offers the scale
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
        frames = options.frames or (clip_size(source)[2] if source.exists() else 24)
        say(
            f"making a {frames}-frame clip"
            + (f" at {options.size[0]}x{options.size[1]}" if options.size else "")
        )
        clip = make_clip(work / "clip.mp4", frames, options.size, source if source.exists() else None)
    else:
        clip = source
    width, height, frame_count = clip_size(clip)
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
        "input": {"clip": _shown(clip), "width": width, "height": height, "frames": frame_count},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "upscale": child("upscale", f"{options.model} upscale"),
    }
    # The output size is the model's own (its description), as the upscale child reported it.
    out_width, out_height = report["upscale"]["output_size"]
    report["output"] = {"width": out_width, "height": out_height}
    base["output_size"] = [out_width, out_height]
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
