"""Running `vsrup upscale` over its paths: one job list, one of three executors behind one interface.

`upscale_paths` reads the command line once (`jobs.read_paths`), leaves out what is done already
(`--skip-existing`), hands the rest to an executor — `LocalExecutor` (this process), `DevicesExecutor`
(one process per device, `--devices`) or `RayExecutor` (actors on a Ray cluster, `--ray`) — and
reports the outcomes. Every executor implements `run.executor.Executor`: `run(jobs, reporter, single)
-> list[Outcome]`, where one input file raises its own error (with its own exit code) and a batch
records failures and goes on.
"""

from __future__ import annotations

from pathlib import Path

from vsrup.errors import UsageError
from vsrup.io.files import check_writable, output_exists
from vsrup.io.sequence import is_pattern
from vsrup.progress import Reporter
from vsrup.run.executor import Executor
from vsrup.run.jobs import Outcome, raise_if_failed, read_paths, skipped, unfinished


def upscale_paths(
    paths: list[Path],
    settings,
    reporter: Reporter,
    suffix: str = "",
    skip_existing: bool = False,
    devices: str | list[str] | None = None,
    ray_address: str | None = None,
) -> list[Outcome]:
    """The `upscale` command: the last path is the output, a file for one input file, else a folder."""
    if skip_existing and settings.overwrite:
        raise UsageError("--skip-existing and --overwrite contradict each other; pick one")
    jobs, single = read_paths(paths, suffix, settings.output_format)
    if (devices or ray_address) and any(is_pattern(j.source) or is_pattern(j.target) for j in jobs):
        raise UsageError("image sequences are upscaled by one process: leave out --devices and --ray")
    executor = make_executor(settings, devices, ray_address)
    outcomes, todo = [], []
    for job in jobs:
        if skip_existing and output_exists(job.target):  # outputs are atomic: an existing one is complete
            outcomes.append(skipped(job))
            if single:
                reporter.message(f"{job.target} exists; skipped")
            else:
                reporter.outcome(outcomes[-1].as_dict())
        else:
            todo.append(job)
    if not todo and single:
        return outcomes
    if not single:  # one exit 4 up front, not one failure per file after the model has loaded
        for folder in sorted({job.target.parent for job in todo}):
            check_writable(folder)
    try:
        outcomes += executor.run(todo, reporter, single) if todo else []
    except KeyboardInterrupt:
        if not single:  # what the batch finished before it was stopped, and what it did not
            ended = outcomes + executor.finished
            ended += unfinished(todo, ended, in_order=executor.in_order)
            reporter.summary([o.as_dict() for o in ended])
        raise
    if not single:
        reporter.summary([o.as_dict() for o in outcomes])
        raise_if_failed(outcomes)
    return outcomes


def make_executor(settings, devices: str | list[str] | None, ray_address: str | None) -> Executor:
    """The executor for these options; split runs refuse what only a one-process run can do."""
    if devices or ray_address:
        if settings.start or settings.end:
            raise UsageError(
                "--start/--end make one segment; they cannot be combined with --devices or --ray"
            )
        if settings.resume:
            raise UsageError("--resume is for one-device runs; --devices and --ray runs start over")
    if ray_address:
        from vsrup.run.ray import RayExecutor

        return RayExecutor(settings, ray_address)
    if devices:
        from vsrup.run.devices import DevicesExecutor, parse_devices

        return DevicesExecutor(settings, parse_devices(devices) if isinstance(devices, str) else devices)
    from vsrup.run.local import LocalExecutor

    return LocalExecutor(settings)
