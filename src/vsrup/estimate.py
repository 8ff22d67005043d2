"""`vsrup upscale --dry-run`: the settings a run would use, and how long and how much memory it
would take, measured on a short calibration run instead of guessed.

The calibration is a real run of the real engine on the first few windows of the input: their
packets are copied (not re-encoded) into a temporary file, upscaled into another temporary file,
and both are deleted. So decoding, the model, blending, encoding and the threads that overlap them
are all timed as they will be. The first window also pays one-off costs (warm-up, pipeline fill),
so it is timed apart: estimate = first window + remaining frames × seconds per frame between
window reports + all frames × seconds per frame of the final flush (see `_rates` for why).

Peak memory: GPU, the peak allocated by torch during calibration (a window is the unit of work, so
it does not grow with the video). Host: what the process held before the calibration (the model
loaded), plus the calibration's growth above that scaled by `heap_growth` (up to `HEAP_GROWTH`
for a job of `HEAP_SETTLED_FRAMES` frames or more, less for a shorter one), plus room for the frames
an x264/x265 encoder holds in its lookahead, which a short calibration never fills. The scaling is
there because the heap keeps growing for ~60-100 frames before it settles (`hostmem`: windows reuse
freed heap buffers, and the heap fragments), far longer than a calibration of two windows runs.
"""

from __future__ import annotations

import dataclasses
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import torch

from vsrup.errors import InputError
from vsrup.io.probe import open_input, probe
from vsrup.io.writer import choose_codec, choose_pix_fmt
from vsrup.pipeline.plan import Plan
from vsrup.pipeline.span import resolve_range
from vsrup.progress import Reporter
from vsrup.upscale import Upscaler

CALIBRATION_MIN_FRAMES = 8
# Steady host heap growth over a calibration's, above the RSS with the model loaded. Measured with
# benchmarks/host_memory_growth.py (tiny ×4, 320×180 → 1280×720, 289 frames, 2-core CPU): RSS 244 MB
# loaded, 1392 MB after two windows, flat at 1745 MB from frame 68 on (×1.31 in that process). The
# CLI's peak is higher (1768 MB, /usr/bin/time -v; ×1.40 over that dry-run's calibration), and the
# factor is that: the estimate aims at the peak, the calibration's own noise (±150 MB on a shared
# machine) is the error bar. The dry-run of that job says 1773 MB (1380 MB before this factor).
HEAP_GROWTH = 1.40
# ... reached once this many frames have gone through; a shorter job stops part way. Linear in
# between, as measured: +7 MB a frame from the calibration's 1392 MB to 1745 MB at frame 68. A
# 45-frame job charged the whole growth was estimated 1.3× its peak (issue 25: the sample clip,
# 2382-2499 MB said, 1826-1939 MB measured; now 1878-2015).
HEAP_SETTLED_FRAMES = 70
LOOKAHEAD_FRAMES = {"libx264": 50, "libx265": 50}  # rc-lookahead 40 + B-frames + threads, roughly


@dataclass
class Estimate:
    input: str
    output: str
    model: str
    scale: int
    device: str
    dtype: str
    window: int
    overlap: int
    tile: int
    tile_space: str  # the model's tiling space: latent or pixel (input px), or none
    codec: str
    pix_fmt: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    frames: int | None
    calibration_frames: int
    calibration_s: float
    first_window_s: float
    window_s_per_frame: float  # decode + model + blend, between window reports
    flush_s_per_frame: float  # after the last window (mostly the encoder's backlog), per frame
    seconds_per_frame: float  # the sum: the steady cost of one frame
    estimated_s: float | None
    peak_host_mb: float
    peak_gpu_mb: float | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"event": "estimate", **asdict(self)}


class _Clock(Reporter):
    """Records when each window's frames were reported done."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[float, int]] = []

    def advance(self, frames: int, stage: str = "upscale") -> None:
        super().advance(frames, stage)
        self.marks.append((time.perf_counter(), self.rate.done))


def calibration_length(plan: Plan) -> int:
    """Two windows: the first pays the one-off costs, the second shows the steady rate."""
    return max(CALIBRATION_MIN_FRAMES, 2 * plan.window - plan.overlap)


def estimate(upscaler: Upscaler, source: Path | str, target: Path | str) -> Estimate:
    """Probe `source`, run the calibration, and estimate the whole run. Writes nothing at `target`."""
    source, target = Path(source), Path(target)
    info = probe(source)
    settings = upscaler.settings
    codec = choose_codec(target, settings.encode, info)
    pix_fmt = choose_pix_fmt(av.codec.Codec(codec, "w"), info, settings.encode, target.suffix)
    out_size = upscaler.description.output_size(info.width, info.height)
    notes = []
    if target.exists() and not settings.overwrite:
        notes.append(f"{target} exists: the real run needs --overwrite")
    total = info.frames_estimate
    if settings.start or settings.end:  # only that part will be upscaled
        total = resolve_range(info, settings.start, settings.end).length(total)
    plan = upscaler.plan(info)  # the window may grow on a GPU: calibrate on the real one
    loaded_mb = resident_mb()  # the model and libraries, before any frame
    if upscaler.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(upscaler.device)
    # The calibration is a plain run of the cut: a range or resume folder would not fit it.
    calibrator = upscaler.with_settings(
        dataclasses.replace(settings, start=None, end=None, resume=False, overwrite=True)
    )
    with tempfile.TemporaryDirectory(prefix="vsrup-dry-run-") as folder:
        cut = copy_first_frames(source, Path(folder) / "cut.nut", calibration_length(plan))
        clock = _Clock()
        started = time.perf_counter()
        result = calibrator.upscale_file(cut, Path(folder) / f"out{target.suffix.lower()}", clock)
        calibration_s = time.perf_counter() - started
    first_s, per_window_frame, per_flush_frame = _rates(clock, started, calibration_s, result.frames)
    first_frames = clock.marks[0][1] if clock.marks else result.frames
    estimated = None
    if total is not None:
        estimated = first_s + max(0, total - first_frames) * per_window_frame + total * per_flush_frame
    if total is None:
        notes.append("the input does not say how many frames it has: no total time estimate")
    lookahead = LOOKAHEAD_FRAMES.get(codec, 0)
    bytes_per_pixel = 1.5 * (2 if "10" in pix_fmt or "12" in pix_fmt else 1)  # 4:2:0 planes
    held = min(lookahead, total) if total is not None else lookahead  # a short video fills less of it
    lookahead_mb = max(0, held - result.frames) * out_size[0] * out_size[1] * bytes_per_pixel / 2**20
    gpu_mb = None
    if upscaler.device.type == "cuda":
        gpu_mb = torch.cuda.max_memory_allocated(upscaler.device) / 2**20
    return Estimate(
        input=str(source),
        output=str(target),
        model=settings.model,
        scale=settings.scale,
        device=str(upscaler.device),
        dtype=str(upscaler.dtype).removeprefix("torch."),
        window=plan.window,
        overlap=plan.overlap,
        tile=plan.tile,
        tile_space=upscaler.description.tiling.space,
        codec=codec,
        pix_fmt=pix_fmt,
        input_size=(info.width, info.height),
        output_size=out_size,
        frames=total,
        calibration_frames=result.frames,
        calibration_s=round(calibration_s, 3),
        first_window_s=round(first_s, 3),
        window_s_per_frame=round(per_window_frame, 4),
        flush_s_per_frame=round(per_flush_frame, 4),
        seconds_per_frame=round(per_window_frame + per_flush_frame, 4),
        estimated_s=None if estimated is None else round(estimated, 1),
        peak_host_mb=round(steady_host_mb(loaded_mb, peak_rss_mb(), result.frames, total) + lookahead_mb, 1),
        peak_gpu_mb=None if gpu_mb is None else round(gpu_mb, 1),
        notes=notes,
    )


def _rates(clock: _Clock, started: float, elapsed: float, frames: int) -> tuple[float, float, float]:
    """(seconds to the first window's report, seconds per frame between window reports, seconds
    per frame after the last report).

    Encoders with lookahead (x264: ~40 frames) hold frames back, so in a short calibration most of
    the encoding happens after the last window, while the file is closed; in a long run it happens
    all along. So that part is charged to every frame of the video, the rest to the frames after
    the first window (which pays the one-off costs itself).
    """
    if len(clock.marks) < 2:  # one window: no steady part to measure
        return elapsed, elapsed / max(frames, 1), 0.0
    (first_time, first_frames), (last_time, last_frames) = clock.marks[0], clock.marks[-1]
    per_window_frame = (last_time - first_time) / max(last_frames - first_frames, 1)
    return first_time - started, per_window_frame, (started + elapsed - last_time) / max(frames, 1)


def steady_host_mb(
    loaded_mb: float, calibration_peak_mb: float, calibration_frames: int = 0, total: int | None = None
) -> float:
    """The host peak of the whole run: the calibration's growth above the loaded process, scaled
    by the heap growth of a run of `total` frames (see the module docstring); never below the
    peak already seen."""
    growth = heap_growth(calibration_frames, total)
    return max(calibration_peak_mb, loaded_mb + growth * (calibration_peak_mb - loaded_mb))


def heap_growth(calibration_frames: int, total: int | None) -> float:
    """How much more the heap grows in a run of `total` frames than in the calibration: up to
    HEAP_GROWTH at HEAP_SETTLED_FRAMES, in proportion before; the whole of it for an unknown
    length."""
    if total is None:
        return HEAP_GROWTH
    reached = (total - calibration_frames) / max(HEAP_SETTLED_FRAMES - calibration_frames, 1)
    return 1 + (HEAP_GROWTH - 1) * min(1.0, max(0.0, reached))


def resident_mb() -> float:
    """This process's resident memory now (Linux); elsewhere its peak so far, which errs high."""
    from vsrup.hostmem import proc_bytes

    now = proc_bytes("/proc/self/status", "VmRSS")
    return now / 2**20 if now is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def copy_first_frames(source: Path, cut: Path, frames: int) -> Path:
    """Copy the video packets of roughly the first `frames` frames into `cut`, without re-encoding.

    A few packets more than asked are copied, since a decoder holds back reordered (B) frames.
    NUT holds any codec and, unlike Matroska here, keeps the frame rate of a copied stream.
    """
    with open_input(source) as inp, av.open(str(cut), "w", format="nut") as out:
        video = inp.streams.video[0]
        stream = out.add_stream_from_template(video)
        copied = 0
        for packet in inp.demux(video):
            if packet.dts is None and packet.size == 0:
                continue  # end-of-stream marker
            packet.stream = stream
            out.mux(packet)
            copied += 1
            if copied >= frames + 4:
                break
    if copied == 0:
        raise InputError(f"no video packets in {source}")
    return cut


def render(est: Estimate) -> object:
    """A rich table for people."""
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False, title="dry run: nothing was written")
    table.add_column(style="bold")
    table.add_column()
    w, h = est.input_size
    ow, oh = est.output_size
    rows = [
        ("input", f"{est.input}: {w}×{h}, {est.frames if est.frames is not None else '?'} frames"),
        ("output", f"{est.output}: {ow}×{oh}, {est.codec} {est.pix_fmt}"),
        ("model", f"{est.model} ×{est.scale} on {est.device} ({est.dtype})"),
        ("windows", f"{est.window} frames, overlap {est.overlap}"),
        ("tiles", f"{est.tile} {est.tile_space} px" if est.tile else "off (whole frame)"),
        ("calibration", f"{est.calibration_frames} frames in {est.calibration_s:.1f} s"),
        ("speed", f"{est.seconds_per_frame:.3f} s/frame ({1 / max(est.seconds_per_frame, 1e-9):.2f} fps)"),
        ("estimated time", _clock_time(est.estimated_s)),
        ("peak memory", f"host {est.peak_host_mb:.0f} MB" + _gpu(est.peak_gpu_mb)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    for note in est.notes:
        table.add_row("note", note)
    return table


def _gpu(mb: float | None) -> str:
    return "" if mb is None else f", GPU {mb:.0f} MB"


def _clock_time(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d} ({seconds:.0f} s)"


def dry_run(paths: list[Path], settings, compare: str | None = None, as_json: bool = False) -> Estimate:
    """The `upscale --dry-run` command: load the model, calibrate, print the estimate."""
    import json

    from vsrup.run.jobs import single_job

    source, target = single_job(paths, "--dry-run")
    probe(source)  # a bad input fails before the model loads
    upscaler = Upscaler(dataclasses.replace(settings, compare=compare))
    est = estimate(upscaler, source, target)
    if as_json:
        print(json.dumps(est.as_dict()), flush=True)
    else:
        from rich.console import Console

        Console().print(render(est))
    return est
