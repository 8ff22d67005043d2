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

import collections
import contextlib
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from vsrup import segments
from vsrup.errors import DeviceError, UsageError, VsrupError
from vsrup.progress import Reporter

SEGMENTS_PER_WORKER = 3  # more segments than workers, so an uneven split still keeps all busy
RETRIES = 3  # restarts of a dead worker (per device), each retrying the segment it held
_POLL_S = 0.2
# Testing hook: a worker task that finds this variable set to a path that does not exist yet
# creates it and kills its own process, to prove that a lost worker is replaced and its segment
# retried (--devices and --ray alike).
CRASH_ONCE_ENV = "VSRUP_TEST_CRASH_ONCE"


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
    reporter.start(str(jobs[0].source) if single else f"{len(works)} files", sum(w.frames for w in works))
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
    """Run every segment of `works` on one process per device, handing each worker its next segment
    when it asks. A failed segment marks its file failed; a worker that dies is started again and
    its segment retried (up to RETRIES times per device); one that cannot load the model ends the run."""
    tasks = []
    for w_index, work in enumerate(works):
        encode = segment_settings(settings, work.job.target).encode
        for s_index, span in enumerate(work.ranges):
            path = str(work.segment_path(s_index))
            tasks.append((w_index, str(work.job.source), span.start, span.stop, path, encode))
    meter = Meter([t[3] - t[2] for t in tasks], reporter)
    pool = _Pool(replace(settings, overwrite=True), devices)
    try:
        pending, done = collections.deque(range(len(tasks))), 0
        while done < len(tasks):
            event = pool.next_event()
            if event is None:  # nothing to read: a good moment to look for dead workers
                for task_id in pool.restart_dead(reporter):
                    pending.appendleft(task_id)
                continue
            kind, slot = event[0], event[1]
            if kind == "ready" and pending:
                task_id = pending.popleft()
                pool.send(slot, task_id, tasks[task_id])
            elif kind == "advance":
                meter.add(event[2], event[3])
            elif kind in ("done", "failed"):
                done += 1
                pool.current[slot] = None
                meter.complete(event[2])
                if kind == "failed":  # one segment: its file fails, the rest goes on
                    work = works[tasks[event[2]][0]]
                    work.error = work.error or _rebuild(event[3], event[4])
            elif kind == "message":
                reporter.message(event[2])
            elif kind == "fatal":  # could not load the model: every worker would fail alike
                raise _rebuild(event[2], event[3])
    finally:
        pool.stop()


class Meter:
    """Turns per-task progress into reporter advances, counting no frame twice: a task retried
    after its worker died reports its frames again."""

    def __init__(self, lengths: list[int] | dict, reporter: Reporter) -> None:
        self.reporter = reporter
        self.limit = dict(enumerate(lengths)) if isinstance(lengths, list) else dict(lengths)
        self.counted = dict.fromkeys(self.limit, 0)

    def add(self, task, frames: int) -> None:
        step = min(frames, self.limit[task] - self.counted[task])
        if step > 0:
            self.counted[task] += step
            self.reporter.advance(step)

    def complete(self, task) -> None:
        """A task is done: whatever it did not report (yet) counts now."""
        self.add(task, self.limit[task])


class _Pool:
    """One worker process per device. Each has its own inbox, so the parent always knows which
    segment a worker holds; all share one event queue back. Both are SimpleQueues: a put is
    written at once, so nothing a worker said before dying is lost."""

    def __init__(self, settings, devices: list[str]) -> None:
        self.ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
        self.settings, self.devices = settings, devices
        self.events = self.ctx.SimpleQueue()
        self.cpu_threads = max(1, (os.cpu_count() or 1) // max(1, devices.count("cpu")))
        self.procs: list = [None] * len(devices)
        self.inboxes: list = [None] * len(devices)
        self.current: list[int | None] = [None] * len(devices)  # the task each worker holds
        self.restarts = [0] * len(devices)
        for slot in range(len(devices)):
            self._start(slot)

    def _start(self, slot: int) -> None:
        inbox = self.ctx.SimpleQueue()
        args = (slot, self.devices[slot], self.settings, inbox, self.events, self.cpu_threads)
        proc = self.ctx.Process(target=_worker, args=args, name=f"vsrup-{self.devices[slot]}", daemon=True)
        proc.start()
        self.procs[slot], self.inboxes[slot], self.current[slot] = proc, inbox, None

    def next_event(self):
        if self.events.empty():
            time.sleep(_POLL_S / 4)
            return None
        return self.events.get()

    def send(self, slot: int, task_id: int, task: tuple) -> None:
        self.current[slot] = task_id
        self.inboxes[slot].put((task_id, task))

    def restart_dead(self, reporter: Reporter) -> list[int]:
        """Start dead workers again; return the tasks they held, to be handed out again."""
        lost = []
        for slot, proc in enumerate(self.procs):
            if proc.exitcode is None:
                continue
            device = self.devices[slot]
            if self.restarts[slot] >= RETRIES:
                raise DeviceError(f"the {device} worker died {RETRIES + 1} times (exit code {proc.exitcode})")
            self.restarts[slot] += 1
            reporter.message(f"{device}: worker died (exit code {proc.exitcode}); starting it again")
            if self.current[slot] is not None:
                lost.append(self.current[slot])
            self._start(slot)
        return lost

    def stop(self) -> None:
        for slot, proc in enumerate(self.procs):
            if proc.is_alive():
                with contextlib.suppress(Exception):
                    self.inboxes[slot].put(None)
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


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
    """Sends a worker's progress, tagged with its task, to the parent process."""

    def __init__(self, events, slot: int) -> None:
        super().__init__()
        self.events, self.slot, self.task = events, slot, None

    def advance(self, frames: int, stage: str = "upscale") -> None:
        if frames:
            self.events.put(("advance", self.slot, self.task, frames))

    def message(self, text: str) -> None:
        self.events.put(("message", self.slot, text))


def maybe_crash() -> None:
    """The testing hook behind CRASH_ONCE_ENV: the first worker task to find the marker file
    missing creates it and kills its own process."""
    marker = os.environ.get(CRASH_ONCE_ENV)
    if marker and not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)


def _worker(slot: int, device: str, settings, inbox, events, cpu_threads: int) -> None:
    """One device: load the model once, then upscale the segments the parent sends until None."""
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
        if upscaler.device.type == "cuda" and upscaler.device.index is not None:
            torch.cuda.set_device(upscaler.device)  # compile/Triton contexts go to this GPU, not GPU 0
    except Exception as exc:  # noqa: BLE001 - reported in the parent, which exits cleanly
        events.put(("fatal", slot, *_describe(exc, device)))
        return
    reporter = _QueueReporter(events, slot)
    while True:
        events.put(("ready", slot))
        item = inbox.get()
        if item is None:
            return
        task_id, (w_index, source, first, stop, path, encode) = item
        maybe_crash()
        reporter.task = task_id
        upscaler.settings.encode = encode
        try:
            upscaler.upscale_file(Path(source), Path(path), reporter, segments.FrameRange(first, stop))
            events.put(("done", slot, task_id))
        except Exception as exc:  # noqa: BLE001 - this file fails, the next may be fine
            events.put(("failed", slot, task_id, *_describe(exc, device)))


def _describe(exc: BaseException, device: str) -> tuple[str, str]:
    if isinstance(exc, VsrupError):
        return type(exc).__name__, f"{device}: {exc}"
    return "VsrupError", f"{device}: internal error: {type(exc).__name__}: {exc}"
