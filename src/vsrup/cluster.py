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
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from vsrup import segments
from vsrup.errors import UsageError, VsrupError
from vsrup.progress import Reporter

LOCAL_CPUS = 2  # a local Ray (no ADDRESS) gets this many CPUs: one actor each
RETRIES = 3  # restarts of a dead actor, and retries of the task it was running
# Testing hook: an actor whose first task finds this variable set to a path that does not exist
# yet creates it and kills its own process, to prove that a lost worker is retried.
CRASH_ONCE_ENV = "VSRUP_TEST_CRASH_ONCE"


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


@dataclass
class _FileWork:
    """One input file's share of the run: its segments and where their bytes land."""

    job: object  # batch.Job
    info: object  # video.VideoInfo
    ranges: list
    scratch: Path
    done: dict = field(default_factory=dict)  # segment index → segment path
    error: VsrupError | None = None


class SegmentWorker:
    """A Ray actor: one device, the model loaded once, segments upscaled on request."""

    def __init__(self, settings, device: str, threads: int | None) -> None:
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

    def run(self, key: str, name: str, source_ref: list, first: int, stop: int) -> tuple[int, bytes]:
        """Upscale frames [first, stop) of the input `key` into a segment; return its frame count and
        bytes. `source_ref` is a one-item list so Ray fetches the input bytes only when not cached."""
        _maybe_crash()
        if key not in self.inputs:
            import ray

            path = self.folder / f"{len(self.inputs)}-{name}"
            path.write_bytes(ray.get(source_ref[0]))
            self.inputs[key] = path
        target = self.folder / f"segment{segments.SEGMENT_EXT}"
        try:
            result = self.upscaler.upscale_file(
                self.inputs[key], target, None, segments.FrameRange(first, stop)
            )
            return result.frames, target.read_bytes()
        finally:
            target.unlink(missing_ok=True)

    def ping(self) -> VsrupError | None:
        """The error that stopped this worker from loading its model, if any."""
        return self.error


def _maybe_crash() -> None:
    marker = os.environ.get(CRASH_ONCE_ENV)
    if marker and not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)


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
    from vsrup import batch

    reporter = reporter or Reporter()
    if settings.start or settings.end:
        raise UsageError("--start/--end make one segment; they cannot be combined with --ray")
    jobs, single = batch_jobs(paths, suffix)
    ray = connect(address)
    actors = start_actors(ray, settings)
    outcomes, works = [], []
    for job in jobs:
        if skip_existing and job.target.exists():
            outcomes.append(batch.Outcome(job.source, job.target, "skipped", error="output exists"))
            continue
        try:
            works.append(_prepare(job, settings, len(actors) * per_worker))
        except VsrupError as exc:
            if single:
                raise
            outcomes.append(
                batch.Outcome(job.source, job.target, "failed", error=str(exc), exit_code=exc.exit_code)
            )
    started = time.perf_counter()
    total = sum(w.ranges[-1].stop for w in works)
    reporter.start(jobs[0].source.name if single else f"{len(works)} files", total)
    try:
        _run(ray, actors, works, settings, reporter)
        outcomes += [_finish(work, started) for work in works]
    finally:
        for work in works:
            shutil.rmtree(work.scratch, ignore_errors=True)
        for actor in actors:
            ray.kill(actor)
    reporter.finish("done", seconds=round(time.perf_counter() - started, 3))
    if single:
        if outcomes[0].status == "failed":
            raise works[0].error
        return outcomes
    batch.report_summary(outcomes, reporter)
    batch.raise_if_failed(outcomes)
    return outcomes


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


def start_actors(ray, settings) -> list:
    """One actor per GPU of the cluster, else one per CPU (each with one torch thread)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    options = {"max_restarts": RETRIES, "max_task_retries": RETRIES}
    if CRASH_ONCE_ENV in os.environ:  # forward the testing hook into the actors' processes
        options["runtime_env"] = {"env_vars": {CRASH_ONCE_ENV: os.environ[CRASH_ONCE_ENV]}}
    remote = ray.remote(SegmentWorker)
    if gpus:
        make = remote.options(num_gpus=1, num_cpus=1, **options)
        actors = [make.remote(settings, "cuda", None) for _ in range(gpus)]
    else:
        make = remote.options(num_cpus=1, **options)
        actors = [make.remote(settings, "cpu", 1) for _ in range(max(1, cpus))]
    # Fail early and once for what every worker would hit (unknown model, missing weights).
    errors = [e for e in ray.get([a.ping.remote() for a in actors]) if e is not None]
    if errors:
        for actor in actors:
            ray.kill(actor)
        raise errors[0]
    return actors


def _prepare(job, settings, parts: int) -> _FileWork:
    from vsrup.engine import check_output
    from vsrup.parallel import plan_for
    from vsrup.video import choose_codec, probe

    check_output(job.source, job.target, settings.overwrite)
    choose_codec(job.target, settings.encode)
    info = probe(job.source)
    frames = len(segments.video_pts(job.source))
    scratch = Path(tempfile.mkdtemp(prefix=".vsrup-ray-", dir=job.target.parent))
    return _FileWork(job, info, plan_for(frames, settings, parts), scratch)


def _run(ray, actors: list, works: list[_FileWork], settings, reporter: Reporter) -> None:
    """Hand segments to idle actors until all are done; each file ships to the cluster once."""
    tasks = []
    for w_index, work in enumerate(works):
        ref = ray.put(work.job.source.read_bytes())
        key = f"{w_index}:{work.job.source}"
        tasks += [(w_index, s_index, key, ref) for s_index in range(len(work.ranges))]
    tasks.reverse()  # pop() from the end: files and segments in order
    idle, running = list(actors), {}
    while tasks or running:
        while tasks and idle:
            w_index, s_index, key, ref = tasks.pop()
            work, actor = works[w_index], idle.pop()
            span = work.ranges[s_index]
            future = actor.run.remote(key, work.job.source.name, [ref], span.start, span.stop)
            running[future] = (actor, w_index, s_index)
        ready, _ = ray.wait(list(running), num_returns=1)
        actor, w_index, s_index = running.pop(ready[0])
        idle.append(actor)
        work = works[w_index]
        try:
            frames, data = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - the file fails; the others go on
            work.error = work.error or _as_vsrup_error(exc)
            tasks = [t for t in tasks if t[0] != w_index]  # its other segments are pointless now
            continue
        path = work.scratch / f"{s_index:05d}{segments.SEGMENT_EXT}"
        path.write_bytes(data)
        work.done[s_index] = path
        reporter.advance(frames)


def _finish(work: _FileWork, started: float):
    """Join a file's segments into its output (atomically), or record why it failed."""
    from vsrup import batch
    from vsrup.engine import atomic_output

    job = work.job
    if work.error is None:
        try:
            with atomic_output(job.target) as partial:
                paths = [work.done[i] for i in range(len(work.ranges))]
                frames = segments.concat_segments(paths, work.info, partial)
            return batch.Outcome(
                job.source, job.target, "done", frames=frames, seconds=time.perf_counter() - started
            )
        except VsrupError as exc:
            work.error = exc
    return batch.Outcome(
        job.source, job.target, "failed", error=str(work.error), exit_code=work.error.exit_code
    )


def _as_vsrup_error(exc: Exception) -> VsrupError:
    """A task's failure as the VsrupError the worker raised (Ray wraps it), else a generic one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, VsrupError):
        return cause
    if isinstance(exc, VsrupError):
        return exc
    return VsrupError(
        f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    )
