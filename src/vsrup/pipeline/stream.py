"""The data path, in one place: decoded frames → overlapping windows → model → blended frames.

`upscale_stream` is the loop every command that runs a model goes through: `upscale` (whole files,
segments, resume, `--devices`, Ray), `preview`, `eval`, the `--dry-run` estimate and `bench`. It
takes frames that carry their own index and pts (from `io.reader.read_frames`, or made in memory
by `eval`) and yields each frame of `span` once, with its upscaled image, in order.

Windows sit on the whole-video grid (they start every `window - overlap` frames from frame 0), also
when the frames start later (a segment or a resumed job decodes from the first window that touches
it): so every frame is blended from the very same window outputs, with the very same weights, as in
an uninterrupted run of the whole video.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

import torch

from vsrup.io.reader import Frame
from vsrup.pipeline.plan import Plan
from vsrup.pipeline.runner import Runner
from vsrup.pipeline.span import WHOLE, FrameRange, window_span
from vsrup.pipeline.windows import TemporalBlender, sliding_windows
from vsrup.threads import prefetch


def first_needed(span: FrameRange, plan: Plan) -> int:
    """The first frame to decode for `span`: the start of the first window that touches it."""
    if span.start == 0:
        return 0
    return window_span(span.start, span.start + 1, plan.window, plan.overlap)[0]


def upscale_stream(
    frames: Iterable[Frame],
    runner: Runner,
    plan: Plan,
    span: FrameRange = WHOLE,
    advance: Callable[[int], None] | None = None,
    replanned: Callable[[Plan], None] | None = None,
) -> Iterator[tuple[Frame, torch.Tensor]]:
    """Yield (frame, upscaled image (3, H, W) on the device) for every frame of `span`, in order.

    `frames` must start at `first_needed(span, plan)`. Only the windows that touch `span` run.
    `advance(n)` is told after each window how many new frames of the span it finished (progress);
    `replanned(plan)` hears of a plan changed on the way (a smaller tile after CUDA out-of-memory),
    which the frames after it are made with.
    """
    decoded = prefetch(frames, depth=plan.window + 2)  # decoding runs beside the model
    blender = TemporalBlender()
    waiting: dict[int, Frame] = {}  # frames in a window whose output is not final yet
    with contextlib.closing(decoded):  # stops the decode thread at once, also on errors
        for window in sliding_windows(decoded, plan.window, plan.overlap):
            window = _on_grid(window, plan.overlap)
            if span.is_before(window.end):
                continue
            if span.is_after(window.start):
                break
            waiting.update((f.index, f) for f in window.items)
            upscaled, used = runner.run([f.image for f in window.items], plan)
            if used != plan:
                plan = used
                if replanned is not None:
                    replanned(plan)
            for index, image in blender.add(window, upscaled):
                frame = waiting.pop(index)
                if span.keeps(index):
                    yield frame, image
            if advance is not None:
                advance(span.count_new(window.start + window.shared_before, window.end))
    for index, image in blender.flush():
        frame = waiting.pop(index)
        if span.keeps(index):
            yield frame, image


def _on_grid(window, overlap: int):
    """A window placed on the whole-video grid by its first frame's index: after frame 0 it shares
    `overlap` frames with the window before, whether that one was decoded in this run or not."""
    start = window.items[0].index
    return replace(window, start=start, shared_before=overlap if start else 0)
