"""The data path, in one place: decoded frames → overlapping windows → model → joined frames.

`upscale_stream` is the loop every command that runs a model goes through: `upscale` (whole files,
segments, resume, `--devices`, Ray), `preview`, `eval`, the `--dry-run` estimate and `bench`. It
takes frames that carry their own index and pts (from `io.reader.read_frames`, or made in memory
by `eval`) and yields each frame of `span` once, with its upscaled image, in order.

Windows never cross a shot change (`pipeline.cuts`, when the plan asks for it): each shot is its
own sequence, with its own window grid starting at its first frame. Within a shot, windows start
every `window - overlap` frames, also when decoding starts later (a segment or a resumed job decodes
from the first window that touches it), so a frame is always made from the very same window
outputs as in an uninterrupted run of the whole video. Those outputs are joined in one of two ways:

- blended (most models): a frame two windows share gets the mean of both outputs, with weights
  that ramp across the overlap (`TemporalBlender`);
- exact (a model that declares the neighbourhood its output depends on, `Plan.context`): the
  windows overlap by exactly that neighbourhood, and each frame is taken from the one window that
  holds all of it — never an output computed without its context, never a mean of several.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch

from vsrup.io.reader import Frame
from vsrup.pipeline.cuts import is_cut, thumbnail
from vsrup.pipeline.plan import Plan
from vsrup.pipeline.runner import Runner
from vsrup.pipeline.span import WHOLE, FrameRange, window_span
from vsrup.pipeline.windows import TemporalBlender, Window
from vsrup.threads import prefetch


def first_needed(span: FrameRange, plan: Plan, shot_start: int = 0) -> int:
    """The first frame to decode for `span` (which begins in the shot starting at `shot_start`):
    the start of the first window that touches it, or in exact mode its first context frame."""
    if span.start == shot_start:
        return shot_start
    if plan.context is not None:
        return max(shot_start, span.start - plan.context[0])
    return (
        shot_start
        + window_span(span.start - shot_start, span.start - shot_start + 1, plan.window, plan.overlap)[0]
    )


def upscale_stream(
    frames: Iterable[Frame],
    runner: Runner,
    plan: Plan,
    span: FrameRange = WHOLE,
    advance: Callable[[int], None] | None = None,
    replanned: Callable[[Plan], None] | None = None,
    shot_start: int = 0,
) -> Iterator[tuple[Frame, torch.Tensor]]:
    """Yield (frame, upscaled image (3, H, W) on the device) for every frame of `span`, in order.

    `frames` must start at `first_needed(span, plan, shot_start)`, where `shot_start` is the first
    frame of the shot it lies in. Only the windows that touch `span` run. `advance(n)` is told after
    each window how many new frames of the span it finished (progress); `replanned(plan)` hears of
    a plan changed on the way (a smaller tile after CUDA out-of-memory), used for the frames after.
    """
    decoded = prefetch(frames, depth=plan.window + 2)  # decoding runs beside the model
    joiner = ExactJoin(plan.context) if plan.context is not None else BlendJoin()
    waiting: dict[int, Frame] = {}  # frames in a window whose output is not final yet
    with contextlib.closing(decoded):  # stops the decode thread at once, also on errors
        for window in shot_windows(decoded, plan, shot_start, joiner.tail):
            if window is SHOT_END:  # what the last shot's windows still hold is final now
                for index, image in joiner.flush():
                    if span.keeps(index):
                        yield waiting[index], image
                continue
            touched_from, touched_to = joiner.touches(window)
            if span.is_before(touched_to):
                continue
            if span.is_after(touched_from):
                break
            waiting.update((f.index, f) for f in window.items)
            upscaled, used = runner.run([f.image for f in window.items], plan)
            if used != plan:
                plan = used
                if replanned is not None:
                    replanned(plan)
            for index, image in joiner.add(window, upscaled):
                if span.keeps(index):
                    yield waiting[index], image
            for index in [i for i in waiting if i < window.end - window.shared_after]:
                del waiting[index]
            if advance is not None:
                advance(span.count_new(*joiner.finishes(window)))
    for index, image in joiner.flush():
        if span.keeps(index):
            yield waiting.pop(index), image


SHOT_END = None  # between the windows of two shots


def shot_windows(
    frames: Iterable[Frame], plan: Plan, shot_start: int, tail: int
) -> Iterator[Window[Frame] | None]:
    """Overlapping windows on each shot's own grid, with `SHOT_END` after each shot but the last.
    A window after the first of its shot shares `plan.overlap` frames with the one before (decoded
    in this run or not); a shot's last window holds what is left, and is made whenever more than
    `overlap - tail` of its frames are new."""
    size, overlap, stride = plan.window, plan.overlap, plan.stride
    buffer: list[Frame] = []
    shared_before, previous = 0, None
    for frame in frames:
        thumb = thumbnail(frame.image) if plan.cuts else None
        if previous is None:  # the first frame decoded: a shot start, or within the shot's grid
            shared_before = overlap if frame.index > shot_start else 0
        elif thumb is not None and is_cut(previous, thumb):
            if len(buffer) > shared_before - tail:  # the shot ends: its last window
                yield Window(buffer[0].index, buffer, shared_before, 0)
            yield SHOT_END
            buffer, shared_before = [], 0
        previous = thumb if thumb is not None else frame
        buffer.append(frame)
        if len(buffer) == size:
            yield Window(buffer[0].index, buffer, shared_before, overlap)
            buffer, shared_before = buffer[stride:], overlap
    if buffer and len(buffer) > shared_before - tail:
        yield Window(buffer[0].index, buffer, shared_before, 0)


class BlendJoin:
    """Window outputs blended across overlaps (the model's output depends on its whole window)."""

    tail = 0

    def __init__(self) -> None:
        self.blender = TemporalBlender()

    @staticmethod
    def touches(window: Window) -> tuple[int, int]:
        return window.start, window.end

    @staticmethod
    def finishes(window: Window) -> tuple[int, int]:
        return window.start + window.shared_before, window.end

    def add(self, window: Window, outputs: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        return self.blender.add(window, outputs)

    def flush(self) -> list[tuple[int, torch.Tensor]]:
        return self.blender.flush()


class ExactJoin:
    """Each frame from the one window that holds its whole neighbourhood (`before`, `after` frames):
    the first `before` frames of a window that does not start its shot are context only, and so are
    the last `after` frames of a window that does not end it."""

    def __init__(self, context: tuple[int, int]) -> None:
        self.before, self.after = context
        self.tail = self.after

    def touches(self, window: Window) -> tuple[int, int]:
        return self.finishes(window)

    def finishes(self, window: Window) -> tuple[int, int]:
        first = window.start + (self.before if window.shared_before else 0)
        return first, window.end - (self.after if window.shared_after else 0)

    def add(self, window: Window, outputs: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        first, stop = self.finishes(window)
        return [(index, outputs[index - window.start]) for index in range(first, stop)]

    @staticmethod
    def flush() -> list[tuple[int, torch.Tensor]]:
        return []
