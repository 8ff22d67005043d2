"""Which frames a run produces, on which window grid: `--start/--end` bounds, frame ranges, and the
cutting of a video into segments.

A segment [a, b) is cut from the whole-video window grid (windows start every `window - overlap`
frames from frame 0), never from a grid of its own: the stream loop runs every whole-video window
that touches [a, b) — including those that only share frames with it — and emits frames a … b-1
only. Each emitted frame is therefore blended from the very same window outputs, with the very same
weights, as in a whole-video run, so segment outputs joined together equal that run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vsrup.errors import InputError, UsageError
from vsrup.io.probe import VideoInfo, video_pts

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


@dataclass(frozen=True)
class Bound:
    """A point in a video given by the user: a frame index or a time in seconds."""

    value: float
    is_frame: bool


def parse_bound(text: str) -> Bound:
    """`120f` (frame index), `12.5` (seconds) or `[hh:]mm:ss[.frac]` (clock time)."""
    raw = text.strip()
    try:
        if raw.lower().endswith("f"):
            frame = int(raw[:-1])
            if frame < 0:
                raise ValueError
            return Bound(frame, True)
        clock = _CLOCK.match(raw)
        if clock:
            hours, minutes, seconds = clock.groups()
            value = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            value = float(raw)
        if value < 0 or not math.isfinite(value):
            raise ValueError
        return Bound(value, False)
    except ValueError:
        raise UsageError(
            f"bad time {text!r}: use seconds (12.5), a clock time (00:01:02.5) or a frame index (120f)"
        ) from None


@dataclass(frozen=True)
class FrameRange:
    """Frames [start, stop) of a video by decode index; stop None: to the end."""

    start: int = 0
    stop: int | None = None

    def keeps(self, index: int) -> bool:
        return index >= self.start and (self.stop is None or index < self.stop)

    def is_before(self, window_end: int) -> bool:
        """A window ending at `window_end` lies wholly before the range: it need not run."""
        return window_end <= self.start

    def is_after(self, window_start: int) -> bool:
        """A window starting at `window_start` lies wholly after the range, as do all later ones."""
        return self.stop is not None and window_start >= self.stop

    def count_new(self, first: int, end: int) -> int:
        """How many of the frames [first, end) fall in the range (for progress)."""
        stop = end if self.stop is None else min(end, self.stop)
        return max(0, stop - max(first, self.start))

    def length(self, total: int | None) -> int | None:
        stop = self.stop if total is None else min(self.stop if self.stop is not None else total, total)
        return None if stop is None else max(0, stop - self.start)


WHOLE = FrameRange()


def window_span(first: int, stop: int, size: int, overlap: int) -> tuple[int, int]:
    """The frames a whole-video run decodes and feeds to the model to produce frames [first, stop).

    Windows start every `size - overlap` frames; the result runs from the start of the first window
    that holds `first` to the end of the last window that holds `stop - 1`. (The end may lie beyond
    the video; the stream just ends there.)
    """
    if not 0 <= first < stop:
        raise ValueError(f"empty frame range [{first}, {stop})")
    stride = size - overlap
    k_first = max(0, -(-(first - size + 1) // stride))  # smallest k with k·stride + size > first
    k_last = (stop - 1) // stride  # largest k with k·stride ≤ stop - 1
    return k_first * stride, k_last * stride + size


def plan_segments(frames: int, parts: int, size: int, overlap: int) -> list[FrameRange]:
    """Cut frames [0, frames) into at most `parts` contiguous ranges of near-equal length.

    Cuts fall on window starts, where a cut costs one extra window (the one that ends inside the
    overlap); every range but the last holds at least one window stride.
    """
    if frames <= 0:
        raise InputError("the video has no frames to split")
    stride = size - overlap
    strides = -(-frames // stride)
    parts = max(1, min(parts, strides))
    cuts = [math.floor(i * frames / parts / stride + 0.5) * stride for i in range(parts)] + [frames]
    return [FrameRange(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]


def resolve_range(info: VideoInfo, start: str | None, end: str | None) -> FrameRange:
    """Turn `--start` / `--end` into frame indices. Times count from the first frame's timestamp
    and select the frames shown at or after `start` and before `end`."""
    bounds = [parse_bound(t) if t else None for t in (start, end)]
    pts: list[int] | None = None
    indices = []
    for bound in bounds:
        if bound is None:
            indices.append(None)
        elif bound.is_frame:
            indices.append(int(bound.value))
        else:
            pts = pts if pts is not None else video_pts(info.path)
            indices.append(_index_at(pts, info, bound.value))
    first, stop = indices[0] or 0, indices[1]
    if stop is not None and stop <= first:
        raise UsageError(f"--end ({end}) must come after --start ({start or 0})")
    return FrameRange(first, stop)


def _index_at(pts: list[int], info: VideoInfo, seconds: float) -> int:
    """Index of the first frame shown at or after `seconds` (past the end: the frame count)."""
    if not pts:
        return 0
    origin = pts[0]
    # A tiny tolerance: 0.04 s typed by hand must select the frame whose pts is 0.04 s exactly.
    limit = seconds - 1e-9
    for index, value in enumerate(pts):
        if float((value - origin) * info.time_base) >= limit:
            return index
    return len(pts)
