"""Temporal windows and the blender: every frame exactly once, overlaps faded, not switched."""

from __future__ import annotations

import pytest
import torch

from vsrup.errors import UsageError
from vsrup.pipeline.windows import TemporalBlender, sliding_windows


def run(n: int, size: int, overlap: int, per_window=None):
    """Blend windows whose 'model' outputs a constant per window (or the frame index)."""
    blender, out = TemporalBlender(), []
    for k, window in enumerate(sliding_windows(range(n), size, overlap)):
        values = [float(per_window(k) if per_window else i) for i in window.items]
        out += blender.add(window, torch.tensor(values))
    out += blender.flush()
    return out


@pytest.mark.parametrize(
    ("n", "size", "overlap"), [(1, 8, 2), (5, 8, 2), (8, 8, 2), (9, 8, 2), (22, 8, 2), (30, 4, 3), (7, 1, 0)]
)
def test_every_frame_comes_out_once_in_order(n, size, overlap):
    out = run(n, size, overlap)
    assert [i for i, _ in out] == list(range(n))
    # A model that returns the frame's own value must come out unchanged, overlaps included.
    assert [v.item() for _, v in out] == pytest.approx(list(range(n)))


def test_windows_share_the_overlap():
    windows = list(sliding_windows(range(20), 8, 3))
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.end - b.start == 3 == b.shared_before
    assert windows[-1].end == 20


def test_overlap_fades_from_one_window_to_the_next():
    out = dict(run(12, 8, 4, per_window=lambda k: k))  # window 0 says 0, window 1 says 1
    shared = [out[i].item() for i in range(4, 8)]
    assert shared == sorted(shared) and 0 < shared[0] < shared[-1] < 1  # a ramp, not a switch
    assert out[3].item() == 0 and out[8].item() == 1


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (4, 4), (4, -1)])
def test_bad_window_settings_are_usage_errors(size, overlap):
    with pytest.raises(UsageError):
        list(sliding_windows(range(3), size, overlap))


def test_only_the_overlap_is_held_back():
    blender = TemporalBlender()
    windows = sliding_windows(range(100), 10, 2)
    first = next(windows)
    ready = blender.add(first, torch.zeros(10, 3, 4, 4))
    assert len(ready) == 8 and len(blender._pending) == 2
