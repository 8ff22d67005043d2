"""What the split executors (`--devices`, `--ray`) share, written once in `SegmentedExecutor.run`:
each file is cut into segments on the window grid, each segment is one `SegmentTask` for whichever
worker is free, and the finished segment files are joined by packet copy with the input's audio and
subtitles muxed once (`io.concat`), so the result equals a one-process run. An executor only says
how its workers start and stop (`workers`) and how tasks reach them (`WorkerPool.run`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from vsrup.errors import InputDamaged, InputError, VsrupError, rebuild
from vsrup.io.concat import concat_segments
from vsrup.io.files import atomic_output, check_output
from vsrup.io.passthrough import not_carried
from vsrup.io.probe import VideoInfo, probe, video_pts
from vsrup.io.writer import SEGMENT_EXT, EncodeSettings, check_audio, choose_codec, segment_codec
from vsrup.pipeline.span import FrameRange, plan_segments
from vsrup.progress import Reporter
from vsrup.run.executor import Executor
from vsrup.run.jobs import Job, Outcome, failed

SEGMENTS_PER_WORKER = 3  # more segments than workers, so an uneven split still keeps all busy
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentTask:
    """One segment of one file, as a worker receives it."""

    file: int  # index of the file's `FileWork`
    segment: int
    source: Path
    span: FrameRange
    output: Path  # the segment file to write (a worker on another machine writes its own)
    encode: EncodeSettings


@dataclass
class FileWork:
    """One input file's share of a split run: its segments, their files, and its failure."""

    job: Job
    info: VideoInfo
    ranges: list[FrameRange]
    scratch: Path  # hidden folder beside the output for the segment files
    error: VsrupError | None = None
    started: float = field(default_factory=time.perf_counter)
    audio: str = "auto"  # --audio, for the join

    @property
    def frames(self) -> int:
        return self.ranges[-1].stop

    def segment_path(self, index: int) -> Path:
        return self.scratch / f"{index:05d}{SEGMENT_EXT}"

    def fail(self, error: VsrupError) -> None:
        """A segment failed: the file fails with the first error (its other segments are moot)."""
        self.error = self.error or error


def tasks_of(works: list[FileWork], settings) -> list[SegmentTask]:
    """Every segment of every file, in order."""
    tasks = []
    for w, work in enumerate(works):
        encode = segment_codec(work.job.target, settings.encode, work.info)  # segment files are .nut
        for s, span in enumerate(work.ranges):
            tasks.append(SegmentTask(w, s, work.job.source, span, work.segment_path(s), encode))
    return tasks


def plan_work(jobs: list[Job], settings, parts: int, single: bool) -> tuple[list[Outcome], list[FileWork]]:
    """(outcomes so far, works): files that cannot even be planned become outcomes at once (one
    input file raises its error)."""
    outcomes, works = [], []
    for job in jobs:
        try:
            works.append(prepare_file(job, settings, parts))
        except VsrupError as exc:
            if single:
                raise
            outcomes.append(failed(job, exc))
    return outcomes, works


def prepare_file(job: Job, settings, parts: int) -> FileWork:
    """Check the output, count the frames and plan the segments of one file (before any work)."""
    check_output(job.source, job.target, settings.overwrite)
    choose_codec(job.target, settings.encode)
    info = probe(job.source)
    check_audio(info, job.target, settings.audio)  # the join comes last: fail before the work
    frames = len(video_pts(job.source))
    scratch = Path(tempfile.mkdtemp(prefix=f".{job.target.stem}.vsrup-segments-", dir=job.target.parent))
    return FileWork(job, info, segment_ranges(frames, settings, parts), scratch, audio=settings.audio)


def segment_ranges(frames: int, settings, parts: int) -> list[FrameRange]:
    """Segments cut on the window grid when the window is known here (else evenly: any cut is
    exact, a grid cut only saves one window of work)."""
    if settings.window:
        overlap = settings.overlap if settings.overlap is not None else 0
        return plan_segments(frames, parts, settings.window, min(overlap, settings.window - 1))
    return plan_segments(frames, parts, 1, 0)


def run_task(upscaler, task: SegmentTask, reporter: Reporter):
    """A worker's part: frames `task.span` of the input into the segment file `task.output`."""
    worker = upscaler.with_settings(replace(upscaler.settings, encode=task.encode, overwrite=True))
    return worker.upscale_file(task.source, task.output, reporter, task.span)


def finish_file(work: FileWork) -> Outcome:
    """Join a file's segments into its output (atomically) and drop them; or record its failure."""
    job = work.job
    try:
        if work.error is None:
            with atomic_output(job.target) as partial:
                paths = [work.segment_path(i) for i in range(len(work.ranges))]
                frames = concat_segments(paths, work.info, partial, work.audio)
            if left := not_carried(work.info, job.target.suffix.lower()):
                log.warning("%s", left)
            seconds = time.perf_counter() - work.started
            return Outcome(job.source, job.target, "done", frames=frames, seconds=seconds)
    except VsrupError as exc:
        work.error = exc
    finally:
        shutil.rmtree(work.scratch, ignore_errors=True)
    if isinstance(work.error, InputDamaged):  # a segment cannot hand on what its neighbours lost
        work.error = InputError(
            f"input is damaged: {job.source}: --devices and --ray cannot recover it; run without "
            "them to keep every frame that can be decoded"
        )
    return failed(job, work.error)


def discard(works: list[FileWork]) -> None:
    """Remove the segment files of an interrupted run (no output was written)."""
    for work in works:
        shutil.rmtree(work.scratch, ignore_errors=True)


def conclude(outcomes: list[Outcome], single: bool, reporter: Reporter, started: float) -> list[Outcome]:
    """Finish the report; one file raises its own error (the batch summary is the caller's)."""
    seconds = round(time.perf_counter() - started, 3)
    if single:
        [outcome] = outcomes
        if outcome.status == "failed":
            reporter.failed(outcome.as_dict() | {"seconds": seconds})
            raise rebuild_by_code(outcome.exit_code, outcome.error)
        reporter.finish(outcome.status, output=str(outcome.target), frames=outcome.frames, seconds=seconds)
        return outcomes
    reporter.finish("done", frames=sum(o.frames for o in outcomes), seconds=seconds)
    return outcomes


def rebuild_by_code(exit_code: int, message: str) -> VsrupError:
    from vsrup import errors

    for kind in vars(errors).values():
        if isinstance(kind, type) and issubclass(kind, VsrupError) and kind.exit_code == exit_code:
            return rebuild(kind.__name__, message)
    return VsrupError(message)


class Meter:
    """Turns per-task progress (keyed by the task's index) into reporter advances, counting no frame
    twice: a task retried after its worker died reports its frames again."""

    def __init__(self, lengths: dict, reporter: Reporter) -> None:
        self.reporter = reporter
        self.limit = dict(lengths)
        self.counted = dict.fromkeys(self.limit, 0)

    def add(self, task, frames: int) -> None:
        step = min(frames, self.limit[task] - self.counted[task])
        if step > 0:
            self.counted[task] += step
            self.reporter.advance(step)

    def complete(self, task) -> None:
        """A task is done: whatever it did not report (yet) counts now."""
        self.add(task, self.limit[task])


# What a worker does with one segment: `run_task(upscaler, task, reporter)`. It travels to the
# worker processes, so it must pickle (a module-level function, or a functools.partial of one); a
# test passes its own to make a worker die mid-run.
SegmentRunner = Callable[[Any, SegmentTask, Reporter], object]


class WorkerPool(Protocol):
    """The workers of one split run, started by `SegmentedExecutor.workers`."""

    size: int  # how many: the files are cut into `size * per_worker` segments

    def run(self, tasks: list[SegmentTask], works: list[FileWork], meter: Meter, reporter: Reporter) -> None:
        """Run every task on whichever worker is free. A task that fails marks its file failed
        (`FileWork.fail`) and the rest goes on; what would fail every task (no model) raises."""


class SegmentedExecutor(Executor):
    """The flow `--devices` and `--ray` share: plan every file's segments, run them on the workers,
    join each file's segments into its output, report. Subclasses start and stop the workers."""

    in_order = False  # files run side by side: after Ctrl-C every unfinished one was in progress

    def __init__(
        self, settings, *, per_worker: int = SEGMENTS_PER_WORKER, run_segment: SegmentRunner = run_task
    ) -> None:
        super().__init__(settings)
        self.per_worker, self.run_segment = per_worker, run_segment

    @abstractmethod
    def workers(self) -> AbstractContextManager[WorkerPool]:
        """The workers for one run (their model loaded, or to be loaded); stopped when the block ends."""

    def run(self, jobs: list[Job], reporter: Reporter, single: bool) -> list[Outcome]:
        works: list[FileWork] = []
        try:
            with self.workers() as pool:
                outcomes, works = plan_work(jobs, self.settings, pool.size * self.per_worker, single)
                label = str(jobs[0].source) if single else f"{len(works)} files"
                reporter.start(label, sum(w.frames for w in works))
                started = time.perf_counter()
                if works:
                    tasks = tasks_of(works, self.settings)
                    meter = Meter({i: t.span.stop - t.span.start for i, t in enumerate(tasks)}, reporter)
                    pool.run(tasks, works, meter, reporter)
        except BaseException:
            discard(works)  # only now that the workers have stopped: none writes a segment any more
            raise
        outcomes += [finish_file(work) for work in works]
        return conclude(outcomes, single, reporter, started)
