"""Overlapping temporal windows over a frame stream, and the blender that joins their outputs.

Windows hold `size` frames and start every `size - overlap` frames; the last one holds whatever is
left after the previous window's overlap, so it may be shorter. Only one window is held at a time
and only the `overlap` frames shared with the next window wait in the blender, so memory does not
grow with the length of the video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from vsrup.errors import UsageError
from vsrup.models.tiling import ramp

T = TypeVar("T")


@dataclass
class Window(Generic[T]):
    start: int  # index of the first item in the whole stream
    items: list[T]
    shared_before: int  # items shared with the previous window: fade in over them
    shared_after: int  # items the next window may share: fade out over them, hold them back

    @property
    def end(self) -> int:
        return self.start + len(self.items)

    @property
    def weights(self) -> torch.Tensor:
        return ramp(len(self.items), self.shared_before, self.shared_after)


def check_window(size: int, overlap: int) -> None:
    if size < 1:
        raise UsageError(f"--window must be at least 1 (got {size})")
    if not 0 <= overlap < size:
        raise UsageError(f"--overlap must be in [0, {size - 1}] for --window {size} (got {overlap})")


def sliding_windows(items: Iterable[T], size: int, overlap: int) -> Iterator[Window[T]]:
    """Yield overlapping windows over `items` as they stream in."""
    check_window(size, overlap)
    stride = size - overlap
    buffer: list[T] = []
    start = shared_before = 0
    for item in items:
        buffer.append(item)
        if len(buffer) == size:
            yield Window(start, buffer, shared_before, overlap)
            buffer = buffer[stride:]
            start, shared_before = start + stride, overlap
    if len(buffer) > shared_before:  # items no window has covered yet
        yield Window(start, buffer, shared_before, 0)


class TemporalBlender:
    """Joins window outputs into one output per input frame.

    A frame covered by two windows gets the weighted mean of both outputs, with weights that ramp
    across the overlap (`Window.weights`), so consecutive windows fade into each other. Frames no
    later window can touch are released at once; the shared tail waits for the next window.
    """

    def __init__(self) -> None:
        self._pending: dict[int, tuple[torch.Tensor, float]] = {}

    def add(self, window: Window, outputs: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """Add a window's outputs (T, ...); return the (index, frame) pairs that are final."""
        weights = window.weights
        ready = []
        held_from = len(window.items) - window.shared_after
        for t, weight in enumerate(weights.tolist()):
            index = window.start + t
            total, weight_sum = self._pending.pop(index, (0.0, 0.0))
            total = outputs[t].float() * weight + total
            weight_sum += weight
            if t < held_from:
                ready.append((index, total / weight_sum))
            else:
                self._pending[index] = (total, weight_sum)
        return ready

    def flush(self) -> list[tuple[int, torch.Tensor]]:
        """Release the held frames once the stream has ended."""
        ready = [(i, total / w) for i, (total, w) in sorted(self._pending.items())]
        self._pending.clear()
        return ready
