"""Progress reporting: a rich bar on a terminal, JSON lines for scripts, plain lines for logs.

The engine only emits events (`start`, `advance`, `finish`); reporters decide how they look.
JSON lines go to stdout (one object per line, for machines); everything for people goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Rate:
    """Frames done, frames per second and time left for one file.

    `total` is the container's count where `exact`, else an estimate from the duration (Matroska
    and WebM list no frame count): the total shown never falls below the frames done, and at the
    end it is the frames written."""

    total: int | None
    done: int = 0
    started: float = field(default_factory=time.perf_counter)
    earlier: int = 0  # frames an earlier run finished (--resume): done, but not this run's speed
    exact: bool = True

    @property
    def fps(self) -> float | None:
        """This run's frames per second; None until this run has finished a frame (a resumed job's
        earlier frames say nothing of the speed)."""
        elapsed = time.perf_counter() - self.started
        if self.done <= self.earlier or elapsed <= 0:
            return None
        return (self.done - self.earlier) / elapsed

    @property
    def shown_total(self) -> int | None:
        return None if self.total is None else max(self.total, self.done)

    @property
    def eta_s(self) -> float | None:
        fps = self.fps
        if not self.total or fps is None:
            return None
        return max(0.0, (self.shown_total - self.done) / max(fps, 1e-9))


class Reporter:
    """Base reporter: tracks the rate and says nothing."""

    def __init__(self) -> None:
        self.rate = Rate(None)
        self.file = ""

    def start(self, file: str, total: int | None, exact: bool = True) -> None:
        """A file begins; `total` frames (an estimate unless `exact`)."""
        self.file, self.rate = file, Rate(total, exact=exact)

    def advance(self, frames: int, stage: str = "upscale") -> None:
        self.rate.done += frames

    def resumed(self, frames: int) -> None:
        """`frames` were finished by an earlier run (--resume): done, but they say nothing of speed."""
        self.rate.earlier += frames
        self.advance(frames, "resumed")

    def finish(self, status: str = "done", **extra: object) -> None:
        """A file is written (`extra`: the fields of `finish_event`: output, frames, seconds...)."""

    def failed(self, outcome: dict) -> None:
        """The one input file ended without a clean output (`run.jobs.Outcome.as_dict`); the command
        prints its error line, so only JSON adds its `finish` event."""

    def message(self, text: str) -> None:
        pass

    def outcome(self, outcome: dict) -> None:
        """A file of a batch that was skipped, damaged or failed, said at once (`Outcome.as_dict`)."""
        self.message(f"{outcome['file']}: {outcome['status']}: {outcome['error']}")

    def summary(self, outcomes: list[dict]) -> None:
        """The end of a batch: one line per file and the counts."""
        for o in outcomes:
            detail = f"{o['frames']} frames, {o['seconds']:.1f}s" if o["status"] == "done" else o["error"]
            self.message(f"{o['status']:8} {o['file']} → {o['output']} ({detail})")
        self.message(", ".join(f"{n} {s}" for s, n in _counts(outcomes).items()))

    def close(self) -> None:
        pass


STATUSES = ("done", "skipped", "failed")  # always counted in a summary
LATE_STATUSES = ("damaged", "unfinished", "not started")  # counted when they occur


def _counts(outcomes: list[dict]) -> dict[str, int]:
    counts = {s: sum(o["status"] == s for o in outcomes) for s in STATUSES + LATE_STATUSES}
    return {s: n for s, n in counts.items() if s in STATUSES or n}


def finish_event(
    file: str,
    status: str = "done",
    output: str | None = None,
    frames: int = 0,
    seconds: float = 0.0,
    error: str | None = None,
    exit_code: int = 0,
) -> dict:
    """The one shape of a `finish` event: a single file, a batch's file, a failure alike."""
    return {
        "event": "finish",
        "file": file,
        "output": output,
        "status": status,
        "frames": frames,
        "seconds": round(seconds, 3),
        "error": error or None,
        "exit_code": exit_code,
    }


class QuietReporter(Reporter):
    pass


class JsonReporter(Reporter):
    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stdout

    def _emit(self, **event: object) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def start(self, file: str, total: int | None, exact: bool = True) -> None:
        super().start(file, total, exact)
        event = {"event": "start", "file": file, "frames_total": total}
        self._emit(**(event if exact else event | {"frames_total_estimated": True}))

    def advance(self, frames: int, stage: str = "upscale") -> None:
        super().advance(frames, stage)
        eta, fps = self.rate.eta_s, self.rate.fps
        self._emit(
            event="progress",
            file=self.file,
            stage=stage,
            frames_done=self.rate.done,
            frames_total=self.rate.shown_total,
            fps=None if fps is None else round(fps, 3),
            eta_s=None if eta is None else round(eta, 1),
        )

    def finish(self, status: str = "done", **extra: object) -> None:
        self._emit(
            **finish_event(**({"file": self.file, "status": status, "frames": self.rate.done} | extra))
        )

    def failed(self, outcome: dict) -> None:
        self._emit(**finish_event(**outcome))

    def message(self, text: str) -> None:
        self._emit(event="message", file=self.file, text=text)

    def outcome(self, outcome: dict) -> None:
        self._emit(**finish_event(**outcome))

    def summary(self, outcomes: list[dict]) -> None:
        counts = {s: sum(o["status"] == s for o in outcomes) for s in STATUSES + LATE_STATUSES}
        self._emit(event="summary", **{s.replace(" ", "_"): n for s, n in counts.items()}, files=outcomes)


class LineReporter(Reporter):
    """Plain progress lines on stderr, at most every `interval` seconds (for logs, not terminals)."""

    def __init__(self, interval: float = 5.0, stream: TextIO | None = None) -> None:
        super().__init__()
        self.interval, self.stream, self._last = interval, stream or sys.stderr, 0.0

    def advance(self, frames: int, stage: str = "upscale") -> None:
        super().advance(frames, stage)
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            total = self.rate.shown_total
            total = "?" if total is None else f"{total}" if self.rate.exact else f"~{total}"
            fps, eta = self.rate.fps, self.rate.eta_s
            speed = "" if fps is None else f", {fps:.2f} fps"  # a resumed job's first line has none yet
            eta_text = f", ETA {eta:.0f}s" if eta is not None else ""
            self.stream.write(f"{self.file}: {self.rate.done}/{total} frames{speed}{eta_text}\n")

    def finish(self, status: str = "done", **extra: object) -> None:
        frames = extra.get("frames", self.rate.done)
        fps = self.rate.fps
        speed = "" if fps is None else f" at {fps:.2f} fps"
        self.stream.write(f"{self.file}: {status}, {frames} frames{speed}\n")

    def message(self, text: str) -> None:
        self.stream.write(text + "\n")


class RichReporter(Reporter):
    """A live progress bar with frames, fps and ETA (terminal only)."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.start()
        self.task = None

    def start(self, file: str, total: int | None, exact: bool = True) -> None:
        super().start(file, total, exact)
        self.file = Path(file).name  # a bar has room for the name only
        self.task = self.progress.add_task(self.file, total=total, fps="")

    def advance(self, frames: int, stage: str = "upscale") -> None:
        super().advance(frames, stage)
        fps = self.rate.fps
        speed = "" if fps is None else f"{fps:.2f} fps"
        self.progress.update(self.task, advance=frames, total=self.rate.shown_total, fps=speed)

    def finish(self, status: str = "done", **extra: object) -> None:
        if self.task is not None:  # the bar ends at the frames written, whatever was estimated
            frames = extra.get("frames", self.rate.done)
            self.progress.update(
                self.task, completed=frames, total=frames, description=f"{self.file} [{status}]"
            )

    def message(self, text: str) -> None:
        self.console.print(text)

    def summary(self, outcomes: list[dict]) -> None:
        self.console.print(_rich_table(outcomes))

    def close(self) -> None:
        self.progress.stop()


def _rich_table(outcomes: list[dict]):
    from rich.table import Table

    colour = {"done": "green", "skipped": "yellow", "failed": "red", "damaged": "magenta"}
    colour |= {"unfinished": "red", "not started": "dim"}
    table = Table(title=", ".join(f"{n} {s}" for s, n in _counts(outcomes).items()))
    for column in ("status", "input", "output", "frames", "time", "error"):
        table.add_column(column)
    for o in outcomes:
        done = o["status"] in ("done", "damaged")  # a damaged input's output holds its frames
        table.add_row(
            f"[{colour[o['status']]}]{o['status']}[/]",
            o["file"],
            o["output"],
            str(o["frames"]) if done else "",
            f"{o['seconds']:.1f}s" if done else "",
            o["error"] or "",
        )
    return table


class DownloadBars:
    """One byte-progress bar per downloaded file, on stderr (a terminal) — silent otherwise."""

    def __enter__(self) -> DownloadBars:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._tasks: dict[str, int] = {}
        self._progress.start()
        return self

    def update(self, name: str, done: int, total: int | None) -> None:
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=total)
        self._progress.update(self._tasks[name], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def make_reporter(mode: str) -> Reporter:
    """`auto` picks the rich bar on a terminal and plain lines otherwise."""
    if mode == "json":
        return JsonReporter()
    if mode == "quiet":
        return QuietReporter()
    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        return RichReporter()
    return LineReporter()
