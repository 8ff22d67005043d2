"""Temporal context never crosses a shot change, and a model that declares its neighbourhood gets
the same output whatever the windowing (exact join)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SHARED_DATA, pattern, write_rgb

from vsrup import models
from vsrup.io.probe import probe
from vsrup.io.reader import read_frames
from vsrup.models import catalogue
from vsrup.models.base import ModelDescription, VSRModel
from vsrup.pipeline import cuts
from vsrup.pipeline.span import FrameRange
from vsrup.upscale import Upscaler, UpscaleSettings


class WindowMean(VSRModel):
    """Each output mixes in the mean of its whole window: it changes with any window boundary."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.weight = torch.nn.Parameter(torch.tensor(0.5))

    @property
    def description(self) -> ModelDescription:
        return ModelDescription("window-mean", self.scale, (self.scale,), neighbourhood=None, context=1)

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        mixed = frames + self.weight * (frames.mean(0, keepdim=True) - frames)
        return F.interpolate(mixed, scale_factor=self.scale, mode="bilinear", align_corners=False).clamp(0, 1)


class PairModel(VSRModel):
    """DLoRAL's shape: output t from frames t-1 and t; a window's first frame is paired with itself."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.weight = torch.nn.Parameter(torch.tensor(0.3))

    @property
    def description(self) -> ModelDescription:
        return ModelDescription("pair", self.scale, (self.scale,), neighbourhood=(1, 0))

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        previous = torch.cat([frames[:1], frames[:-1]])
        mixed = (1 - self.weight) * frames + self.weight * previous
        return F.interpolate(mixed, scale_factor=self.scale, mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture(autouse=True)
def _test_models():
    """Registered for this module's tests only (see test_segments)."""
    models.register("window-mean", lambda scale, device, dtype, _: WindowMean(scale).to(device, dtype))
    models.register("pair", lambda scale, device, dtype, _: PairModel(scale).to(device, dtype))
    yield
    for name in ("window-mean", "pair"):
        catalogue.ENTRIES.pop(name, None)


def shot_a(i: int) -> np.ndarray:
    return pattern(i, 48, 32)


def shot_b(i: int) -> np.ndarray:
    """Another shot: dark, other texture, moving the other way."""
    y, x = np.mgrid[0:32, 0:48]
    return np.stack([(x * 3 + 5 * i) % 60, (y * 7) % 50, ((x + y + 2 * i) // 4 % 2) * 40 + 10], -1).astype(
        np.uint8
    )


def outputs(model: str, clip: Path, span: FrameRange | None = None, **settings) -> dict[int, torch.Tensor]:
    upscaler = Upscaler(UpscaleSettings(scale=2, model=model, device="cpu", dtype="fp32", **settings))
    info = probe(clip)
    plan = upscaler.plan(info)
    return {f.index: image for f, image in upscaler.stream(info, plan, span or FrameRange())}


def test_the_detector_finds_the_cut_and_nothing_else():
    images = [shot_a(i) for i in range(7)] + [shot_b(i) for i in range(6)]
    assert cuts.cuts(images) == [7]
    assert cuts.cuts([shot_a(i) for i in range(20)]) == []


@pytest.mark.skipif(not (SHARED_DATA / "clips").is_dir(), reason="shared data not present")
def test_real_clips_have_no_false_cuts_and_their_joins_are_found():
    clips = sorted((SHARED_DATA / "clips").glob("*.mp4"))
    thumbs = {}
    for clip in clips:
        frames = itertools.islice(read_frames(probe(clip)), 40)
        thumbs[clip.name] = [cuts.thumbnail(f.image) for f in frames]
        assert cuts.last_cut(thumbs[clip.name]) == 0, clip.name  # one shot each
    for a, b in itertools.permutations(thumbs, 2):
        assert cuts.is_cut(thumbs[a][-1], thumbs[b][0]), (a, b)


@pytest.mark.parametrize("window,overlap", [(4, 2), (5, 1), (8, 2)])
def test_frames_after_a_cut_equal_the_second_shot_upscaled_alone(tmp_path, window, overlap):
    a, b = [shot_a(i) for i in range(9)], [shot_b(i) for i in range(10)]
    joined = outputs("window-mean", write_rgb(tmp_path / "ab.mkv", a + b), window=window, overlap=overlap)
    alone = outputs("window-mean", write_rgb(tmp_path / "b.mkv", b), window=window, overlap=overlap)
    first_a = outputs("window-mean", write_rgb(tmp_path / "a.mkv", a), window=window, overlap=overlap)
    assert len(joined) == 19
    for i in range(10):
        torch.testing.assert_close(joined[9 + i], alone[i], rtol=0, atol=1e-6)
    for i in range(9):
        torch.testing.assert_close(joined[i], first_a[i], rtol=0, atol=1e-6)
    # The check can fail: without cut detection the windows straddle the cut and mix the shots.
    mixed = outputs("window-mean", tmp_path / "ab.mkv", window=window, overlap=overlap, scene_cuts=False)
    assert not torch.allclose(mixed[9], alone[0], atol=1e-3)


def test_a_late_span_after_a_cut_is_the_same_as_in_the_whole_run(tmp_path):
    """A run that starts mid-shot (a segment, a resumed job) finds that shot's start and its grid."""
    clip = write_rgb(tmp_path / "ab.mkv", [shot_a(i) for i in range(7)] + [shot_b(i) for i in range(12)])
    whole = outputs("window-mean", clip, window=4, overlap=2)
    for start in (8, 10, 13):
        part = outputs("window-mean", clip, FrameRange(start, 17), window=4, overlap=2)
        assert sorted(part) == list(range(start, 17))
        for index, image in part.items():
            assert torch.equal(image, whole[index]), (start, index)


def test_exact_join_gives_the_same_frames_for_every_window_and_span(tmp_path):
    """A model that declares its neighbourhood (frame t from t-1 and t) is never blended and never
    uses a window's self-paired first frame after the video's start: every windowing, any
    --overlap and any span give bit-identical frames, each equal to the pair made directly."""
    images = [shot_a(i) for i in range(13)]
    clip = write_rgb(tmp_path / "a.mkv", images)
    model = PairModel(2)
    frames = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        direct = [model.upscale(frames[max(0, t - 1) : t + 1])[-1] for t in range(13)]
    reference = outputs("pair", clip, window=2)
    for t in range(13):
        assert torch.equal(reference[t], direct[t]), t
    for window in range(2, 9):
        for overlap in (0, 1, window - 1):
            got = outputs("pair", clip, window=window, overlap=overlap)
            assert all(torch.equal(got[t], reference[t]) for t in range(13)), (window, overlap)
    for start, stop in ((0, 5), (5, 9), (9, 13), (1, 2)):
        part = outputs("pair", clip, FrameRange(start, stop), window=5)
        assert sorted(part) == list(range(start, stop))
        assert all(torch.equal(image, reference[t]) for t, image in part.items())
