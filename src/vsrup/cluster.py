"""Upscaling on a Ray cluster (`--ray [ADDRESS]`): segments of every input file run as tasks on
Ray actors, one actor per GPU (per CPU where the cluster has no GPU), each loading the model once.

The driver plans the work (files → segments on the window grid), ships each input file once
through Ray's object store (so workers need no shared disk), and gets every finished segment back
as encoded bytes, which it joins into the output with the audio muxed once
(`segments.concat_segments`). An actor whose process dies is restarted and its task retried; a
file whose segment fails with a user error is recorded as failed and the batch goes on.

Ray is an optional extra (`pip install "vsrup[ray]"`) and imported only here, only when used.
Without ADDRESS a local Ray is started (`ray.init(num_cpus=2)`).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from vsrup import segments
from vsrup.errors import UsageError, VsrupError
from vsrup.parallel import CRASH_ONCE_ENV, Meter, maybe_crash
from vsrup.progress import Reporter

LOCAL_CPUS = 2  # a local Ray (no ADDRESS) gets this many CPUs: one actor each
RETRIES = 3  # restarts of a dead actor, and retries of the task it was running
_POLL_S = 0.2
KEEP_INPUTS = 2  # input files an actor keeps on its disk (files are handed out in order)


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError('--ray needs Ray: pip install "vsrup[ray]" (or pip install ray)') from None
    return ray


def connect(address: str | None = None):
    """Join the cluster at `address` (`auto`: the one this machine belongs to; `ray://host:10001`),
    or start a small local Ray (None or `local`); reuse a running connection."""
    ray = import_ray()
    if not ray.is_initialized():
        if address and address != "local":
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=LOCAL_CPUS, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    return ray


class SegmentWorker:
    """A Ray actor: one device, the model loaded once, segments upscaled on request."""

    def __init__(self, settings, device: str, threads: int | None, progress: str | None = None) -> None:
        import torch

        from vsrup.engine import Upscaler

        if threads:
            torch.set_num_threads(threads)
        self.error: VsrupError | None = None  # kept for `ping`: a failed actor constructor is noisy
        try:
            self.upscaler = Upscaler(replace(settings, device=device))
        except VsrupError as exc:
            self.error = exc
        self.folder = Path(tempfile.mkdtemp(prefix="vsrup-ray-"))
        self.inputs: dict[str, Path] = {}
        self.progress_name = progress
        self.progress = None

    def run(self, task: tuple, source_ref: list, first: int, stop: int, encode) -> tuple[int, bytes]:
        """Upscale frames [first, stop) of the input of `task` (file, segment) into a segment; return
        its frame count and bytes. `source_ref` is a one-item list so that Ray fetches the input's
        bytes only when this actor has not cached them yet."""
        maybe_crash()
        key = str(task[0])
        if key not in self.inputs:
            import ray

            if len(self.inputs) >= KEEP_INPUTS:  # the oldest: its segments are all handed out
                self.inputs.pop(next(iter(self.inputs))).unlink(missing_ok=True)
            path = self.folder / f"input{key}"
            path.write_bytes(ray.get(source_ref[0]))
            self.inputs[key] = path
        target = self.folder / f"segment{segments.SEGMENT_EXT}"
        self.upscaler.settings.encode = encode
        if self.progress is None and self.progress_name:
            import ray

            self.progress = ray.get_actor(self.progress_name)
        reporter = _RayReporter(self.progress, task)
        try:
            span = segments.FrameRange(first, stop)
            result = self.upscaler.upscale_file(self.inputs[key], target, reporter, span)
            return result.frames, target.read_bytes()
        finally:
            target.unlink(missing_ok=True)

    def ping(self) -> VsrupError | None:
        """The error that stopped this worker from loading its model, if any."""
        return self.error


class _RayReporter(Reporter):
    """Sends a worker's progress, tagged with its task, to the driver through a Ray queue."""

    def __init__(self, progress, task: tuple) -> None:  # progress: the Ray queue's actor
        super().__init__()
        self.progress, self.task = progress, task

    def advance(self, frames: int, stage: str = "upscale") -> None:
        if self.progress is not None and frames:
            self.progress.put_nowait.remote((self.task, frames))  # fire and forget


def upscale_ray(
    paths: list[Path],
    settings,
    reporter: Reporter | None = None,
    address: str | None = None,
    suffix: str = "",
    skip_existing: bool = False,
    per_worker: int = 3,
) -> list:
    """The `upscale --ray` command: like `batch.upscale_paths`, with the work spread over Ray."""
    from vsrup.parallel import conclude, discard, finish_file, plan_files

    reporter = reporter or Reporter()
    jobs, single = batch_jobs(paths, suffix)
    if settings.start or settings.end:
        raise UsageError("--start/--end make one segment; they cannot be combined with --devices or --ray")
    ray = connect(address)
    from ray.util.queue import Queue

    # Workers find the progress queue by name: an actor handle as a constructor argument lives in
    # the object store, and Ray warns that a restarted actor could lose it.
    progress_name = f"vsrup-progress-{uuid.uuid4().hex}"
    progress = Queue(actor_options={"num_cpus": 0, "name": progress_name})  # no CPU a worker needs
    actors = []
    try:
        actors = start_actors(ray, settings, progress_name)
        outcomes, works = plan_files(jobs, settings, len(actors) * per_worker, single, skip_existing)
        reporter.start(str(jobs[0].source) if single else f"{len(works)} files", sum(w.frames for w in works))
        started = time.perf_counter()
        try:
            _run(ray, actors, works, settings, reporter, progress)
        except BaseException:
            discard(works)
            raise
    finally:
        for actor in actors:
            ray.kill(actor)
        progress.shutdown()
    outcomes += [finish_file(work) for work in works]
    return conclude(outcomes, single, reporter, started)


def batch_jobs(paths: list[Path], suffix: str):
    """(jobs, single): the same reading of the command line as `batch.upscale_paths`."""
    from vsrup import batch

    if len(paths) < 2:
        raise UsageError("give an input (file, folder or glob) and then the output")
    *inputs, output = (Path(p) for p in paths)
    single = len(inputs) == 1 and not inputs[0].is_dir() and not any(c in str(inputs[0]) for c in "*?[")
    if single:
        target = output / batch.output_name(inputs[0], suffix) if output.is_dir() else output
        return [batch.Job(inputs[0], target)], True
    return batch.plan_jobs(inputs, output, suffix), False


def start_actors(ray, settings, progress=None) -> list:
    """One actor per GPU of the cluster, else one per CPU (each with one torch thread)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    options = {"max_restarts": RETRIES, "max_task_retries": RETRIES}
    if CRASH_ONCE_ENV in os.environ:  # forward the testing hook into the actors' processes
        options["runtime_env"] = {"env_vars": {CRASH_ONCE_ENV: os.environ[CRASH_ONCE_ENV]}}
    remote = ray.remote(SegmentWorker)
    if gpus:
        make = remote.options(num_gpus=1, num_cpus=1, **options)
        actors = [make.remote(settings, "cuda", None, progress) for _ in range(gpus)]
    else:
        make = remote.options(num_cpus=1, **options)
        actors = [make.remote(settings, "cpu", 1, progress) for _ in range(max(1, cpus))]
    # Fail early and once for what every worker would hit (unknown model, missing weights).
    errors = [e for e in ray.get([a.ping.remote() for a in actors]) if e is not None]
    if errors:
        for actor in actors:
            ray.kill(actor)
        raise errors[0]
    return actors


def _run(ray, actors: list, works: list, settings, reporter: Reporter, progress) -> None:
    """Hand segments to idle actors until all are done; each file ships to the cluster once."""
    from vsrup.parallel import segment_settings

    tasks = [(w, s) for w, work in enumerate(works) for s in range(len(work.ranges))]
    tasks.reverse()  # pop() from the end: files and segments in order
    # A file enters the object store when its first segment is handed out and leaves it when its
    # last one is back, so a big batch never holds more than a few files there at once.
    refs, left = {}, {w: len(work.ranges) for w, work in enumerate(works)}
    meter = Meter(
        {(w, s): r.stop - r.start for w, work in enumerate(works) for s, r in enumerate(work.ranges)},
        reporter,
    )
    idle, running = list(actors), {}
    while tasks or running:
        while tasks and idle:
            task, actor = tasks.pop(), idle.pop()
            work = works[task[0]]
            if task[0] not in refs:
                refs[task[0]] = ray.put(work.job.source.read_bytes())
            span, encode = work.ranges[task[1]], segment_settings(settings, work.job.target).encode
            future = actor.run.remote(task, [refs[task[0]]], span.start, span.stop, encode)
            running[future] = (actor, task)
        ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
        _drain(progress, meter)
        if not ready:
            continue
        actor, task = running.pop(ready[0])
        idle.append(actor)
        work = works[task[0]]
        left[task[0]] -= 1
        try:
            _, data = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - the file fails; the others go on
            work.error = work.error or _as_vsrup_error(exc)
            dropped = [t for t in tasks if t[0] == task[0]]  # its other segments are pointless now
            tasks = [t for t in tasks if t[0] != task[0]]
            left[task[0]] -= len(dropped)
        else:
            work.segment_path(task[1]).write_bytes(data)
            meter.complete(task)
        if left[task[0]] == 0:
            refs.pop(task[0], None)


def _drain(progress, meter) -> None:
    """Forward the progress the workers queued since the last look."""
    while not progress.empty():
        task, frames = progress.get_nowait()
        meter.add(tuple(task), frames)


def _as_vsrup_error(exc: Exception) -> VsrupError:
    """A task's failure as the VsrupError the worker raised (Ray wraps it), else a generic one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, VsrupError):
        return cause
    if isinstance(exc, VsrupError):
        return exc
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return VsrupError(f"Ray task failed: {type(exc).__name__}: {first_line}")
