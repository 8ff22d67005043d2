"""Upscaling on a Ray cluster (`--ray [ADDRESS]`): segments of every input file run as tasks on
Ray actors, one actor per GPU (per CPU where the cluster has no GPU), each loading the model once.

The driver plans the work (files → segments on the window grid), ships each input file once
through Ray's object store (so workers need no shared disk), and gets every finished segment back
as encoded bytes, which it joins into the output with the audio muxed once
(`io.concat`). An actor whose process dies is restarted and its task retried; a
file whose segment fails with a user error is recorded as failed and the batch goes on.

Ray is an optional extra (`pip install "vsrup[ray]"`) and imported only here, only when used.
Without ADDRESS a local Ray is started (`ray.init(num_cpus=2)`).
"""

from __future__ import annotations

import collections
import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from vsrup.errors import UsageError, VsrupError
from vsrup.io.writer import SEGMENT_EXT
from vsrup.progress import Reporter
from vsrup.run.segmented import (
    FileWork,
    Meter,
    SegmentedExecutor,
    SegmentRunner,
    SegmentTask,
    run_task,
)

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

    def __init__(
        self,
        settings,
        device: str,
        threads: int | None,
        progress: str | None = None,
        run_segment: SegmentRunner = run_task,
    ) -> None:
        import torch

        from vsrup.upscale import Upscaler

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
        self.run_segment = run_segment

    def run(self, task_id: int, task: SegmentTask, source_ref: list) -> tuple[int, bytes]:
        """Upscale one segment into a file here; return its frame count and bytes. `source_ref` is a
        one-item list so that Ray fetches the input's bytes only when this actor has not cached them.
        Progress goes to the driver tagged with `task_id`."""
        key = str(task.file)
        if key not in self.inputs:
            import ray

            if len(self.inputs) >= KEEP_INPUTS:  # the oldest: its segments are all handed out
                self.inputs.pop(next(iter(self.inputs))).unlink(missing_ok=True)
            path = self.folder / f"input{key}"
            path.write_bytes(ray.get(source_ref[0]))
            self.inputs[key] = path
        if self.progress is None and self.progress_name:
            import ray

            self.progress = ray.get_actor(self.progress_name)
        here = replace(task, source=self.inputs[key], output=self.folder / f"segment{SEGMENT_EXT}")
        try:
            result = self.run_segment(self.upscaler, here, _RayReporter(self.progress, task_id))
            return result.frames, here.output.read_bytes()
        finally:
            here.output.unlink(missing_ok=True)

    def ping(self) -> VsrupError | None:
        """The error that stopped this worker from loading its model, if any."""
        return self.error


class _RayReporter(Reporter):
    """Sends a worker's progress, tagged with its task, to the driver through a Ray queue."""

    def __init__(self, progress, task: int) -> None:  # progress: the Ray queue's actor
        super().__init__()
        self.progress, self.task = progress, task

    def advance(self, frames: int, stage: str = "upscale") -> None:
        if self.progress is not None and frames:
            self.progress.put_nowait.remote((self.task, frames))  # fire and forget


class RayExecutor(SegmentedExecutor):
    def __init__(self, settings, address: str | None = None, **options) -> None:
        """`options`: SegmentedExecutor's (`per_worker`, `run_segment`)."""
        super().__init__(settings, **options)
        self.address = address

    @contextlib.contextmanager
    def workers(self) -> Iterator[_Cluster]:
        ray = connect(self.address)
        from ray.util.queue import Queue

        # Workers find the progress queue by name: an actor handle as a constructor argument lives in
        # the object store, and Ray warns that a restarted actor could lose it.
        progress_name = f"vsrup-progress-{uuid.uuid4().hex}"
        progress = Queue(actor_options={"num_cpus": 0, "name": progress_name})  # no CPU a worker needs
        actors = []
        try:
            actors = start_actors(ray, self.settings, progress_name, self.run_segment)
            yield _Cluster(ray, actors, progress)
        finally:
            for actor in actors:
                ray.kill(actor)
            progress.shutdown()


def start_actors(ray, settings, progress=None, run_segment: SegmentRunner = run_task) -> list:
    """One actor per GPU of the cluster, else one per CPU (each with one torch thread)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    options = {"max_restarts": RETRIES, "max_task_retries": RETRIES}
    remote = ray.remote(SegmentWorker)
    if gpus:
        make = remote.options(num_gpus=1, num_cpus=1, **options)
        actors = [make.remote(settings, "cuda", None, progress, run_segment) for _ in range(gpus)]
    else:
        make = remote.options(num_cpus=1, **options)
        actors = [make.remote(settings, "cpu", 1, progress, run_segment) for _ in range(max(1, cpus))]
    # Fail early and once for what every worker would hit (unknown model, missing weights).
    errors = [e for e in ray.get([a.ping.remote() for a in actors]) if e is not None]
    if errors:
        for actor in actors:
            ray.kill(actor)
        raise errors[0]
    return actors


class _Cluster:
    """The actors of one run; the driver hands each idle one its next segment."""

    def __init__(self, ray, actors: list, progress) -> None:
        self.ray, self.actors, self.progress = ray, actors, progress
        self.size = len(actors)

    def run(self, tasks: list[SegmentTask], works: list[FileWork], meter: Meter, reporter: Reporter) -> None:
        """Hand segments to idle actors until all are done; each file ships to the cluster once.
        A failed segment fails its file, and its file's segments not yet handed out are dropped."""
        ray, pending = self.ray, collections.deque(range(len(tasks)))  # files and segments in order
        # A file enters the object store when its first segment is handed out and leaves it when its
        # last one is back, so a big batch never holds more than a few files there at once.
        refs, left = {}, collections.Counter(task.file for task in tasks)
        idle, running = list(self.actors), {}
        while pending or running:
            while pending and idle:
                task_id, actor = pending.popleft(), idle.pop()
                task = tasks[task_id]
                if task.file not in refs:
                    refs[task.file] = ray.put(task.source.read_bytes())
                running[actor.run.remote(task_id, task, [refs[task.file]])] = (actor, task_id)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
            _drain(self.progress, meter)
            if not ready:
                continue
            actor, task_id = running.pop(ready[0])
            idle.append(actor)
            task = tasks[task_id]
            left[task.file] -= 1
            try:
                _, data = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - the file fails; the others go on
                works[task.file].fail(_as_vsrup_error(exc))
                dropped = [i for i in pending if tasks[i].file == task.file]  # pointless now
                pending = collections.deque(i for i in pending if tasks[i].file != task.file)
                left[task.file] -= len(dropped)
            else:
                task.output.write_bytes(data)
                meter.complete(task_id)
            if left[task.file] == 0:
                refs.pop(task.file, None)


def _drain(progress, meter) -> None:
    """Forward the progress the workers queued since the last look."""
    while not progress.empty():
        task_id, frames = progress.get_nowait()
        meter.add(task_id, frames)


def _as_vsrup_error(exc: Exception) -> VsrupError:
    """A task's failure as the VsrupError the worker raised (Ray wraps it), else a generic one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, VsrupError):
        return cause
    if isinstance(exc, VsrupError):
        return exc
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return VsrupError(f"Ray task failed: {type(exc).__name__}: {first_line}")
