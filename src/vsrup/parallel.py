"""Segment-parallel upscaling of one video on several devices of one machine (`--devices`).

The video is cut into a few segments per device (`segments.plan_segments`); one worker process per
device loads the model once and takes segments from a shared queue as it frees up, so a fast GPU
simply does more of them. Workers send their progress to the parent, which drives the one reporter
(one bar, one JSON stream). The segment files are then joined by packet copy and the input's audio
and subtitles muxed once (`segments.concat_segments`), so the result equals a single-device run.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from vsrup import segments
from vsrup.errors import DeviceError, UsageError, VsrupError
from vsrup.progress import Reporter

SEGMENTS_PER_WORKER = 3  # more segments than workers, so an uneven split still keeps all busy
_POLL_S = 0.2


def parse_devices(spec: str) -> list[str]:
    """`cuda:0,cuda:1`, `cpu,cpu` or `all` (every CUDA GPU) → the list of device names."""
    import torch

    spec = spec.strip()
    if spec == "all":
        count = torch.cuda.device_count()
        if count == 0:
            raise DeviceError("--devices all found no CUDA GPU (use --devices cpu,cpu to test on the CPU)")
        return [f"cuda:{i}" for i in range(count)]
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise UsageError("--devices needs a list such as cuda:0,cuda:1 (or all)")
    for name in names:
        if name.split(":")[0] not in ("cpu", "cuda"):
            raise UsageError(f"--devices: unknown device {name!r}; use cpu, cuda:N or all")
    return names


@dataclass
class ParallelResult:
    output: Path
    frames: int
    seconds: float
    segments: int


def upscale_parallel(
    source: Path,
    target: Path,
    settings,
    devices: list[str],
    reporter: Reporter | None = None,
    per_worker: int = SEGMENTS_PER_WORKER,
) -> ParallelResult:
    """Upscale `source` into `target` with one worker process per device; same output as one run."""
    from vsrup.engine import atomic_output, check_output
    from vsrup.video import choose_codec, probe

    reporter = reporter or Reporter()
    source, target = Path(source), Path(target)
    if settings.start or settings.end:
        raise UsageError("--start/--end make one segment; they cannot be combined with --devices")
    check_output(source, target, settings.overwrite)
    choose_codec(target, settings.encode)
    info = probe(source)
    frames = len(segments.video_pts(source))
    ranges = plan_for(frames, settings, len(devices) * per_worker)
    started = time.perf_counter()
    reporter.start(source.name, frames)
    work = scratch_folder(target)
    try:
        paths = [work / f"{i:05d}{segments.SEGMENT_EXT}" for i in range(len(ranges))]
        worker_settings = replace(
            settings, encode=segments.segment_codec(target, settings.encode), overwrite=True
        )
        run_workers(source, worker_settings, devices, list(zip(ranges, paths, strict=True)), reporter)
        with atomic_output(target) as partial:
            written = segments.concat_segments(paths, info, partial)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    reporter.finish("done", output=str(target), seconds=round(seconds, 3), segments=len(ranges))
    return ParallelResult(target, written, seconds, len(ranges))


def plan_for(frames: int, settings, parts: int) -> list[segments.FrameRange]:
    """Segments cut on the window grid when the window is known here (else evenly: any cut is
    exact, a grid cut only saves one window of work)."""
    if settings.window:
        overlap = settings.overlap if settings.overlap is not None else 0
        return segments.plan_segments(frames, parts, settings.window, min(overlap, settings.window - 1))
    return segments.plan_segments(frames, parts, 1, 0)


def scratch_folder(target: Path) -> Path:
    """A hidden folder beside the output for segment files (batch runs never take it as input)."""
    work = target.with_name(f".{target.stem}.vsrup-segments")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def run_workers(source: Path, settings, devices: list[str], tasks: list, reporter: Reporter) -> None:
    """Run every (FrameRange, path) task on a pool of per-device processes; raise the first error."""
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    task_q, event_q = ctx.Queue(), ctx.Queue()
    for index, (span, path) in enumerate(tasks):
        task_q.put((index, span.start, span.stop, str(path)))
    for _ in devices:
        task_q.put(None)
    cpu_threads = max(1, (os.cpu_count() or 1) // max(1, sum(d == "cpu" for d in devices)))
    workers = [
        ctx.Process(
            target=_worker,
            args=(device, settings, str(source), task_q, event_q, cpu_threads),
            name=f"vsrup-{device}",
            daemon=True,
        )
        for device in devices
    ]
    for worker in workers:
        worker.start()
    try:
        _collect(workers, event_q, len(tasks), reporter)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join(timeout=10)


def _collect(workers, event_q, total: int, reporter: Reporter) -> None:
    """Forward worker events to the reporter until every task is done."""
    done = 0
    while done < total:
        try:
            event = event_q.get(timeout=_POLL_S)
        except queue.Empty:
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead or not any(w.is_alive() for w in workers):
                names = ", ".join(f"{w.name} (exit code {w.exitcode})" for w in dead) or "all workers"
                raise DeviceError(f"worker process died: {names}") from None
            continue
        kind = event[0]
        if kind == "advance":
            reporter.advance(event[1])
        elif kind == "message":
            reporter.message(event[1])
        elif kind == "done":
            done += 1
        elif kind == "failed":
            raise _rebuild(event[1], event[2])


def _rebuild(name: str, message: str) -> VsrupError:
    """The worker's error as the same VsrupError subclass (same exit code) in the parent."""
    from vsrup import errors

    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, VsrupError):
        return kind(message)
    return VsrupError(message)


class _QueueReporter(Reporter):
    """Sends a worker's progress to the parent process."""

    def __init__(self, events) -> None:
        super().__init__()
        self.events = events

    def advance(self, frames: int, stage: str = "upscale") -> None:
        if frames:
            self.events.put(("advance", frames))

    def message(self, text: str) -> None:
        self.events.put(("message", text))


def _worker(device: str, settings, source: str, task_q, event_q, cpu_threads: int) -> None:
    """One device: load the model once, then upscale segments until the queue says stop."""
    import torch

    from vsrup.engine import Upscaler

    if device == "cpu":
        torch.set_num_threads(cpu_threads)  # CPU workers share the cores instead of fighting
    try:
        upscaler = Upscaler(replace(settings, device=device))
        reporter = _QueueReporter(event_q)
        while (task := task_q.get()) is not None:
            index, first, stop, path = task
            upscaler.upscale_file(Path(source), Path(path), reporter, segments.FrameRange(first, stop))
            event_q.put(("done", index))
    except VsrupError as exc:
        event_q.put(("failed", type(exc).__name__, f"{device}: {exc}"))
    except Exception as exc:  # noqa: BLE001 - reported in the parent, which exits cleanly
        event_q.put(("failed", "VsrupError", f"{device}: internal error: {type(exc).__name__}: {exc}"))
    with contextlib.suppress(Exception):
        event_q.close()
        event_q.join_thread()


def upscale_devices(
    paths: list[Path],
    settings,
    devices: str,
    reporter: Reporter | None = None,
    suffix: str = "",
    skip_existing: bool = False,
) -> list:
    """The `upscale --devices` command: each input file in turn, split over the devices."""
    from vsrup import batch
    from vsrup.cluster import batch_jobs

    reporter = reporter or Reporter()
    names = parse_devices(devices)
    jobs, single = batch_jobs(paths, suffix)
    if single:
        result = upscale_parallel(jobs[0].source, jobs[0].target, settings, names, reporter)
        return [batch.Outcome(jobs[0].source, jobs[0].target, "done", result.frames, result.seconds)]
    outcomes = []
    for job in jobs:
        if skip_existing and job.target.exists():
            outcomes.append(batch.Outcome(job.source, job.target, "skipped", error="output exists"))
            continue
        try:
            result = upscale_parallel(job.source, job.target, settings, names, reporter)
            outcomes.append(batch.Outcome(job.source, job.target, "done", result.frames, result.seconds))
        except VsrupError as exc:
            outcomes.append(
                batch.Outcome(job.source, job.target, "failed", error=str(exc), exit_code=exc.exit_code)
            )
    batch.report_summary(outcomes, reporter)
    batch.raise_if_failed(outcomes)
    return outcomes
