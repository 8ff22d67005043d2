"""Folder and multi-file upscaling: which files to do, where each output goes, and a run over all of
them that survives a bad file.

`plan_jobs` turns the command line's paths into (input, output) pairs before any work starts, so
name clashes and our own outputs are caught up front. `run_batch` upscales them with one loaded
`Upscaler`, records each file as done, skipped or failed, and `BatchError` ends a run with failures.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vsrup.errors import BatchError, InputError, Interrupted, UsageError, VsrupError
from vsrup.progress import JsonReporter, Reporter, RichReporter
from vsrup.video import writable_extension

log = logging.getLogger(__name__)

# Files are picked by extension only: probing every file of a big folder would be slow, and a file
# with a video extension that is not a video should fail loudly, not vanish from the batch.
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .webm .avi .mpg .mpeg .ts .m2ts .mts .flv .wmv .3gp .ogv .nut .y4m".split()
)
# Our own temporaries (atomic partial files, resume folders) must never become inputs.
_OWN_MARKERS = (".vsrup-partial", ".vsrup-resume")


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class Outcome:
    source: Path
    target: Path
    status: str  # "done", "skipped" or "failed"
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    exit_code: int = 0


def is_video_name(path: Path) -> bool:
    """A file we would upscale: a video extension, not hidden, not one of our temporaries."""
    name = path.name
    if name.startswith(".") or any(marker in name for marker in _OWN_MARKERS):
        return False
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _walk_videos(root: Path, exclude: Path | None) -> Iterator[Path]:
    """Video files under `root`, sorted, skipping hidden folders and the output folder."""
    for folder, subdirs, files in os.walk(root):
        here = Path(folder)
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        for name in sorted(files):
            if is_video_name(here / name):
                yield here / name


def output_name(source: Path, suffix: str) -> str:
    """`clip.mp4` → `clip{suffix}.mp4`; inputs we cannot write in their own container get `.mkv`."""
    return f"{source.stem}{suffix}{writable_extension(source.suffix.lower())}"


def upscale_paths(
    paths: list[Path], settings, reporter: Reporter, suffix: str = "", skip_existing: bool = False
) -> list[Outcome]:
    """The `upscale` command: the last path is the output, a file for one input file, else a folder.

    One input file raises its own error (with its own exit code); a batch records failures, prints
    a summary and raises `BatchError` at the end if any file failed.
    """
    from vsrup.engine import Upscaler  # torch is heavy: only once the paths make sense

    if len(paths) < 2:
        raise UsageError("give an input (file, folder or glob) and then the output")
    if skip_existing and settings.overwrite:
        raise UsageError("--skip-existing and --overwrite contradict each other; pick one")
    *inputs, output = (Path(p) for p in paths)
    single = len(inputs) == 1 and not inputs[0].is_dir() and not _has_glob(str(inputs[0]))
    if single:
        target = output / output_name(inputs[0], suffix) if output.is_dir() else output
        if skip_existing and target.exists():  # outputs are atomic: an existing one is complete
            reporter.message(f"{target} exists; skipped")
            return [Outcome(inputs[0], target, "skipped", error="output exists")]
        jobs = [Job(inputs[0], target)]
    else:
        jobs = plan_jobs(inputs, output, suffix)
    upscaler = Upscaler(settings)  # the model loads once for every file
    if single:
        result = upscaler.upscale_file(inputs[0], target, reporter)
        return [Outcome(inputs[0], target, "done", frames=result.frames, seconds=result.seconds)]
    outcomes: list[Outcome] = []
    try:
        run_batch(upscaler, jobs, reporter, skip_existing, outcomes)
    except KeyboardInterrupt:
        report_summary(outcomes, reporter)  # what the batch finished before it was stopped
        raise
    report_summary(outcomes, reporter)
    raise_if_failed(outcomes)
    return outcomes


def plan_jobs(inputs: Iterable[Path], output: Path, suffix: str = "") -> list[Job]:
    """(input, output) pairs for folders, globs and several files; outputs go under `output`.

    Folders keep their inner structure below `output`. Files that are another job's output (a rerun
    with `--suffix` into the input folder) are left out, as is the output folder itself.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"output must be a folder when upscaling a folder or several files: {output}")
    out_resolved = output.resolve()
    jobs: list[Job] = []
    for raw in inputs:
        raw = Path(raw)
        if raw.is_dir():
            for source in _walk_videos(raw, exclude=out_resolved):
                rel = source.relative_to(raw)
                jobs.append(Job(source, output / rel.parent / output_name(source, suffix)))
        elif _has_glob(str(raw)) and not raw.exists():
            matches = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True))]
            videos = [m for m in matches if m.is_file() and is_video_name(m)]
            if not videos:
                raise InputError(f"no video files match {raw}")
            jobs.extend(Job(m, output / output_name(m, suffix)) for m in videos)
        else:  # a plain file: missing or not a video is reported as that file's failure
            jobs.append(Job(raw, output / output_name(raw, suffix)))
    if not jobs:
        raise InputError(f"no video files found in {', '.join(str(Path(i)) for i in inputs)}")
    return _drop_own_outputs(jobs)


def _drop_own_outputs(jobs: list[Job]) -> list[Job]:
    for job in jobs:
        if job.target.resolve() == job.source.resolve():
            raise UsageError(
                f"the output would replace its input {job.source}: use --suffix or another folder"
            )
    targets = {job.target.resolve() for job in jobs}
    kept = [job for job in jobs if job.source.resolve() not in targets]
    seen: dict[Path, Path] = {}
    for job in kept:
        key = job.target.resolve()
        if key in seen:
            raise UsageError(f"{seen[key]} and {job.source} would both be written to {job.target}")
        seen[key] = job.source
    return kept


def run_batch(
    upscaler,
    jobs: list[Job],
    reporter: Reporter,
    skip_existing: bool = False,
    outcomes: list[Outcome] | None = None,
) -> list[Outcome]:
    """Upscale every job with one loaded model; a failed file is recorded and the batch goes on.

    Each outcome is appended to `outcomes` as it happens, so a caller still has them when Ctrl-C
    stops the whole batch (the file in progress leaves nothing behind, as always).
    """
    outcomes = [] if outcomes is None else outcomes
    for job in jobs:
        if skip_existing and job.target.exists():
            outcome = Outcome(job.source, job.target, "skipped", error="output exists")
        else:
            outcome = _run_one(upscaler, job, reporter)
        outcomes.append(outcome)
        _tell(reporter, outcome)
    return outcomes


def _run_one(upscaler, job: Job, reporter: Reporter) -> Outcome:
    started = time.perf_counter()
    try:
        result = upscaler.upscale_file(job.source, job.target, reporter)
    except VsrupError as exc:
        return Outcome(job.source, job.target, "failed", error=str(exc), exit_code=exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - one odd file must not end an overnight batch
        log.debug("unexpected failure on %s", job.source, exc_info=True)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return Outcome(job.source, job.target, "failed", error=message, exit_code=1)
    seconds = time.perf_counter() - started
    return Outcome(job.source, job.target, "done", frames=result.frames, seconds=seconds)


def _tell(reporter: Reporter, outcome: Outcome) -> None:
    """Say at once when a file fails or is skipped (the summary comes only at the very end)."""
    if outcome.status == "done":
        return
    if isinstance(reporter, JsonReporter):
        _emit(reporter, event="finish", **_as_dict(outcome))
    else:
        reporter.message(f"{outcome.source}: {outcome.status}: {outcome.error}")


def _as_dict(outcome: Outcome) -> dict:
    return {
        "file": str(outcome.source),
        "output": str(outcome.target),
        "status": outcome.status,
        "frames": outcome.frames,
        "seconds": round(outcome.seconds, 3),
        "error": outcome.error or None,
        "exit_code": outcome.exit_code,
    }


def _emit(reporter: JsonReporter, **event: object) -> None:
    reporter.stream.write(json.dumps(event) + "\n")
    reporter.stream.flush()


def report_summary(outcomes: list[Outcome], reporter: Reporter) -> None:
    """The end-of-batch summary: a table on a terminal, one JSON event for scripts, else lines."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    if isinstance(reporter, JsonReporter):
        _emit(reporter, event="summary", **counts, files=[_as_dict(o) for o in outcomes])
    elif isinstance(reporter, RichReporter):
        reporter.console.print(_rich_table(outcomes, counts))
    else:
        for o in outcomes:
            detail = f"{o.frames} frames, {o.seconds:.1f}s" if o.status == "done" else o.error
            reporter.message(f"{o.status:8} {o.source} → {o.target} ({detail})")
        reporter.message(", ".join(f"{n} {s}" for s, n in counts.items()))


def _rich_table(outcomes: list[Outcome], counts: dict[str, int]):
    from rich.table import Table

    colour = {"done": "green", "skipped": "yellow", "failed": "red"}
    table = Table(title=", ".join(f"{n} {s}" for s, n in counts.items()))
    for column in ("status", "input", "output", "frames", "time", "error"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(
            f"[{colour[o.status]}]{o.status}[/]",
            str(o.source),
            str(o.target),
            str(o.frames) if o.status == "done" else "",
            f"{o.seconds:.1f}s" if o.status == "done" else "",
            o.error,
        )
    return table


def raise_if_failed(outcomes: list[Outcome]) -> None:
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        names = ", ".join(o.source.name for o in failed[:3]) + (", ..." if len(failed) > 3 else "")
        raise BatchError(f"{len(failed)} of {len(outcomes)} files failed ({names})")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a service stop, `timeout`), raised like Ctrl-C so the same cleanup runs."""


def treat_sigterm_as_interrupt() -> None:
    """Let SIGTERM unwind like Ctrl-C: temporaries are removed and finished segments kept, instead
    of the process vanishing mid-write."""

    def handler(signum, frame):
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def interrupted(exc: KeyboardInterrupt, resume: bool) -> Interrupted:
    """The one-line error for Ctrl-C (exit 130) or SIGTERM (exit 143, as the shell reports it)."""
    what = "terminated" if isinstance(exc, Terminated) else "interrupted"
    kept = "; finished segments are kept: rerun with --resume to continue" if resume else ""
    error = Interrupted(f"{what}; no partial output was left behind{kept}")
    if isinstance(exc, Terminated):
        error.exit_code = 128 + signal.SIGTERM
    return error
