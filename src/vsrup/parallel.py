"""Segment-parallel upscaling on several devices of one machine (`--devices`).

Every input video is cut into a few segments per device (`segments.plan_segments`); one worker
process per device loads the model once and takes segments — of every file of a batch — from a
shared queue as it frees up, so a fast GPU simply does more of them. Workers send their progress
to the parent, which drives the one reporter (one bar, one JSON stream). Each file's segments are
then joined by packet copy with the input's audio and subtitles muxed once
(`segments.concat_segments`), so the result equals a single-device run.

`prepare_file` and `finish_file` (plan a file, join its segments) serve the Ray runner too.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
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
class FileWork:
    """One input file's share of a parallel run: its segments, their files, and its failure."""

    job: object  # batch.Job
    info: object  # video.VideoInfo
    ranges: list[segments.FrameRange]
    scratch: Path  # hidden folder beside the output for the segment files
    error: VsrupError | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def frames(self) -> int:
        return self.ranges[-1].stop

    def segment_path(self, index: int) -> Path:
        return self.scratch / f"{index:05d}{segments.SEGMENT_EXT}"


def plan_for(frames: int, settings, parts: int) -> list[segments.FrameRange]:
    """Segments cut on the window grid when the window is known here (else evenly: any cut is
    exact, a grid cut only saves one window of work)."""
    if settings.window:
        overlap = settings.overlap if settings.overlap is not None else 0
        return segments.plan_segments(frames, parts, settings.window, min(overlap, settings.window - 1))
    return segments.plan_segments(frames, parts, 1, 0)


def prepare_file(job, settings, parts: int) -> FileWork:
    """Check the output, count the frames and plan the segments of one file (before any work)."""
    from vsrup.engine import check_output
    from vsrup.video import choose_codec, probe

    if settings.start or settings.end:
        raise UsageError("--start/--end make one segment; they cannot be combined with --devices or --ray")
    if settings.resume:
        raise UsageError("--resume is for one-device runs; --devices and --ray runs start over")
    check_output(job.source, job.target, settings.overwrite)
    choose_codec(job.target, settings.encode)
    info = probe(job.source)
    frames = len(segments.video_pts(job.source))
    scratch = Path(tempfile.mkdtemp(prefix=f".{job.target.stem}.vsrup-segments-", dir=job.target.parent))
    return FileWork(job, info, plan_for(frames, settings, parts), scratch)


def segment_settings(settings, target: Path):
    """Worker settings: the final output's codec named explicitly (segment files are .nut)."""
    return replace(settings, encode=segments.segment_codec(target, settings.encode), overwrite=True)


def finish_file(work: FileWork):
    """Join a file's segments into its output (atomically) and drop them; or record its failure."""
    from vsrup import batch
    from vsrup.engine import atomic_output

    job = work.job
    try:
        if work.error is None:
            with atomic_output(job.target) as partial:
                paths = [work.segment_path(i) for i in range(len(work.ranges))]
                frames = segments.concat_segments(paths, work.info, partial)
            seconds = time.perf_counter() - work.started
            return batch.Outcome(job.source, job.target, "done", frames=frames, seconds=seconds)
    except VsrupError as exc:
        work.error = exc
    finally:
        shutil.rmtree(work.scratch, ignore_errors=True)
    return batch.Outcome(
        job.source, job.target, "failed", error=str(work.error), exit_code=work.error.exit_code
    )


def upscale_devices(
    paths: list[Path],
    settings,
    devices: str | list[str],
    reporter: Reporter | None = None,
    suffix: str = "",
    skip_existing: bool = False,
    per_worker: int = SEGMENTS_PER_WORKER,
) -> list:
    """The `upscale --devices` command: like `batch.upscale_paths`, spread over the devices."""
    from vsrup.cluster import batch_jobs

    reporter = reporter or Reporter()
    names = parse_devices(devices) if isinstance(devices, str) else devices
    jobs, single = batch_jobs(paths, suffix)
    outcomes, works = plan_files(jobs, settings, len(names) * per_worker, single, skip_existing)
    reporter.start(jobs[0].source.name if single else f"{len(works)} files", sum(w.frames for w in works))
    started = time.perf_counter()
    try:
        if works:
            run_workers(settings, names, works, reporter)
    except BaseException:
        discard(works)
        raise
    outcomes += [finish_file(work) for work in works]
    return conclude(outcomes, single, reporter, started)


def discard(works: list[FileWork]) -> None:
    """Remove the segment files of an interrupted run (no output was written)."""
    for work in works:
        shutil.rmtree(work.scratch, ignore_errors=True)


def plan_files(jobs, settings, parts: int, single: bool, skip_existing: bool):
    """(outcomes so far, works): skipped and unplannable files become outcomes at once."""
    from vsrup import batch

    outcomes, works = [], []
    for job in jobs:
        if skip_existing and job.target.exists():
            outcomes.append(batch.Outcome(job.source, job.target, "skipped", error="output exists"))
            continue
        try:
            works.append(prepare_file(job, settings, parts))
        except VsrupError as exc:
            if single:
                raise
            outcomes.append(
                batch.Outcome(job.source, job.target, "failed", error=str(exc), exit_code=exc.exit_code)
            )
    return outcomes, works


def conclude(outcomes: list, single: bool, reporter: Reporter, started: float) -> list:
    """Finish the report; one file raises its own error, a batch prints a summary (and fails)."""
    from vsrup import batch

    seconds = round(time.perf_counter() - started, 3)
    if single:
        [outcome] = outcomes
        if outcome.status == "failed":
            reporter.finish("failed", seconds=seconds)
            raise _rebuild_error(outcome.exit_code, outcome.error)
        reporter.finish(outcome.status, output=str(outcome.target), seconds=seconds)
        return outcomes
    reporter.finish("done", seconds=seconds)
    batch.report_summary(outcomes, reporter)
    batch.raise_if_failed(outcomes)
    return outcomes


def upscale_parallel(source: Path, target: Path, settings, devices: list[str], reporter=None):
    """One file on several devices; returns its `batch.Outcome`."""
    [outcome] = upscale_devices([Path(source), Path(target)], settings, devices, reporter)
    return outcome


def run_workers(settings, devices: list[str], works: list[FileWork], reporter: Reporter) -> None:
    """Run every segment of `works` on a pool of per-device processes, fed by one queue. A failed
    segment marks its file failed; a worker that cannot start or dies fails the run."""
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    task_q, event_q = ctx.Queue(), ctx.Queue()
    tasks = []
    for w_index, work in enumerate(works):
        encode = segment_settings(settings, work.job.target).encode
        for s_index, span in enumerate(work.ranges):
            tasks.append(
                (
                    w_index,
                    str(work.job.source),
                    span.start,
                    span.stop,
                    str(work.segment_path(s_index)),
                    encode,
                )
            )
    for task in tasks:
        task_q.put(task)
    for _ in devices:
        task_q.put(None)
    cpu_threads = max(1, (os.cpu_count() or 1) // max(1, sum(d == "cpu" for d in devices)))
    workers = [
        ctx.Process(
            target=_worker,
            args=(device, replace(settings, overwrite=True), task_q, event_q, cpu_threads),
            name=f"vsrup-{device}",
            daemon=True,
        )
        for device in devices
    ]
    for worker in workers:
        worker.start()
    try:
        _collect(workers, event_q, works, len(tasks), reporter)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join(timeout=10)


def _collect(workers, event_q, works: list[FileWork], total: int, reporter: Reporter) -> None:
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
        elif kind == "failed":  # one segment: its file fails, the rest goes on
            done += 1
            work = works[event[1]]
            work.error = work.error or _rebuild(event[2], event[3])
        elif kind == "fatal":  # a worker could not load its model: every worker would fail alike
            raise _rebuild(event[1], event[2])


def _rebuild(name: str, message: str) -> VsrupError:
    """The worker's error as the same VsrupError subclass (same exit code) in the parent."""
    from vsrup import errors

    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, VsrupError):
        return kind(message)
    return VsrupError(message)


def _rebuild_error(exit_code: int, message: str) -> VsrupError:
    from vsrup import errors

    for kind in vars(errors).values():
        if isinstance(kind, type) and issubclass(kind, VsrupError) and kind.exit_code == exit_code:
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


def _worker(device: str, settings, task_q, event_q, cpu_threads: int) -> None:
    """One device: load the model once, then upscale segments until the queue says stop."""
    import signal

    import torch

    # Ctrl-C reaches the whole process group: the parent alone handles it (it stops the workers and
    # removes their segment files), so a worker does not print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from vsrup.engine import Upscaler

    if device == "cpu":
        torch.set_num_threads(cpu_threads)  # CPU workers share the cores instead of fighting
    try:
        upscaler = Upscaler(replace(settings, device=device))
    except Exception as exc:  # noqa: BLE001 - reported in the parent, which exits cleanly
        event_q.put(("fatal", *_describe(exc, device)))
        _drain(event_q)
        return
    reporter = _QueueReporter(event_q)
    while (task := task_q.get()) is not None:
        w_index, source, first, stop, path, encode = task
        upscaler.settings.encode = encode
        try:
            upscaler.upscale_file(Path(source), Path(path), reporter, segments.FrameRange(first, stop))
            event_q.put(("done", w_index))
        except Exception as exc:  # noqa: BLE001 - this file fails, the next may be fine
            event_q.put(("failed", w_index, *_describe(exc, device)))
    _drain(event_q)


def _describe(exc: BaseException, device: str) -> tuple[str, str]:
    if isinstance(exc, VsrupError):
        return type(exc).__name__, f"{device}: {exc}"
    return "VsrupError", f"{device}: internal error: {type(exc).__name__}: {exc}"


def _drain(event_q) -> None:
    """Make sure every event reached the parent before this process exits."""
    with contextlib.suppress(Exception):
        event_q.close()
        event_q.join_thread()
