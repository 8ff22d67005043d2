"""The out-of-memory fallback: on OOM the engine halves the latent tile and retries the same window,
so every input frame still comes out exactly once, in order, with its timestamp.

CUDA is not needed: the model raises `torch.OutOfMemoryError` itself, and the engine's device check
(`Runner.recoverable`) is patched to accept it on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsrup.devices import is_out_of_memory
from vsrup.errors import DeviceError
from vsrup.models.base import ModelDescription, Tiling, VSRModel
from vsrup.models.catalogue import ENTRIES, CatalogueEntry
from vsrup.models.tiling import tiled_apply
from vsrup.pipeline.runner import Runner
from vsrup.upscale import Upscaler, UpscaleSettings

LEVELS = [20 + 20 * i for i in range(11)]  # one flat grey level per frame: identifies each frame


class FlakyNearest(VSRModel):
    """Nearest-neighbour ×scale through `tiled_apply` (so the tile setting is really used), raising
    CUDA's out-of-memory error on the calls numbered in `fail_on` (1-based)."""

    def __init__(self, scale: int, fail_on: set[int]) -> None:
        super().__init__()
        self.scale, self.fail_on, self.calls = scale, fail_on, 0
        self.tiles_seen: list[int] = []
        self.frames_seen: list[int] = []
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def description(self) -> ModelDescription:
        # Tiles of input pixels overlapping by 16 each side: the smallest tile is 32.
        tiling = Tiling("pixel", minimum=8, overlap=16)
        return ModelDescription(
            "flaky", self.scale, (self.scale,), neighbourhood=None, context=1, tiling=tiling
        )

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        self.calls += 1
        self.tiles_seen.append(tile)
        if self.calls in self.fail_on:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.frames_seen.append(frames.shape[0])
        up = lambda x: F.interpolate(x, scale_factor=self.scale, mode="nearest")  # noqa: E731
        return tiled_apply(up, frames, tile, self.description.tiling.overlap, out_scale=self.scale)


def flat_clip(path: Path, size=(96, 64)) -> Path:
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0"}
        for i, level in enumerate(LEVELS):
            image = np.full((height, width, 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def frames_of(path: Path) -> tuple[list[int], list[float]]:
    with av.open(str(path)) as container:
        decoded = [(f.pts, float(f.to_ndarray(format="rgb24").mean())) for f in container.decode(video=0)]
    return [p for p, _ in decoded], [m for _, m in decoded]


@pytest.fixture
def flaky(monkeypatch):
    """Register a FlakyNearest under the name 'flaky' and let the CPU retry its OOM errors."""
    made: list[FlakyNearest] = []

    def use(fail_on: set[int]) -> list[FlakyNearest]:
        def load(scale, device, dtype, options):
            made.append(FlakyNearest(scale, fail_on).to(device=device, dtype=dtype))
            return made[-1]

        monkeypatch.setitem(ENTRIES, "flaky", CatalogueEntry("flaky", load))
        monkeypatch.setattr(Runner, "recoverable", lambda self, exc: is_out_of_memory(exc))
        return made

    return use


@pytest.mark.parametrize("fail_on", [{1, 2}, {2}], ids=["first-window-twice", "second-window"])
def test_oom_halves_tile_and_keeps_every_frame_once(tmp_path, flaky, fail_on):
    made = flaky(fail_on)
    clip = flat_clip(tmp_path / "in.mp4")
    settings = UpscaleSettings(model="flaky", scale=2, device="cpu", tile=128, window=8, overlap=2)
    result = Upscaler(settings).upscale_file(clip, tmp_path / "out.mp4")

    model = made[0]
    halvings = len(fail_on)
    assert model.tiles_seen[-1] == 128 >> halvings
    # Each failed call (1-based) is followed by a retry of the same window at half the tile.
    for call in sorted(fail_on):
        assert model.tiles_seen[call] == model.tiles_seen[call - 1] // 2
    assert model.frames_seen == [8, 5]  # two windows (11 frames, overlap 2), none run twice

    in_pts, _ = frames_of(clip)
    out_pts, means = frames_of(tmp_path / "out.mp4")
    assert result.frames == len(LEVELS)
    assert out_pts == in_pts
    assert np.allclose(means, LEVELS, atol=2.5), means


def test_oom_with_smallest_tile_is_a_device_error_and_leaves_no_output(tmp_path, flaky):
    made = flaky(set(range(1, 100)))
    clip = flat_clip(tmp_path / "in.mp4")
    settings = UpscaleSettings(model="flaky", scale=2, device="cpu", tile=64, window=8, overlap=2)
    with pytest.raises(DeviceError) as caught:
        Upscaler(settings).upscale_file(clip, tmp_path / "out.mp4")
    assert caught.value.exit_code == 6
    assert made[0].tiles_seen == [64, 32]  # halved once, then no smaller tile is allowed
    assert not (tmp_path / "out.mp4").exists()
    assert list(tmp_path.iterdir()) == [clip]


def test_cpu_out_of_memory_is_not_retried(tmp_path, monkeypatch):
    made: list[FlakyNearest] = []

    def load(scale, device, dtype, options):
        made.append(FlakyNearest(scale, {1}))
        return made[-1]

    monkeypatch.setitem(ENTRIES, "flaky", CatalogueEntry("flaky", load))
    clip = flat_clip(tmp_path / "in.mp4")
    settings = UpscaleSettings(model="flaky", scale=2, device="cpu", tile=128)
    with pytest.raises(torch.OutOfMemoryError):
        Upscaler(settings).upscale_file(clip, tmp_path / "out.mp4")
    assert made[0].tiles_seen == [128]


def test_compiled_runs_pad_the_short_last_window_and_still_write_each_frame_once(tmp_path, flaky):
    """With --compile on CUDA every window has the same batch size (a new size would recompile):
    the short last window is padded with repeats of its last frame, and the padding is dropped."""
    made = flaky(set())
    clip = flat_clip(tmp_path / "in.mp4")
    settings = UpscaleSettings(model="flaky", scale=2, device="cpu", tile=0, window=8, overlap=2)
    upscaler = Upscaler(settings)
    upscaler.runner.pad_windows = True  # what compile=True on a CUDA device sets
    result = upscaler.upscale_file(clip, tmp_path / "out.mp4")
    assert made[0].frames_seen == [8, 8]  # 11 frames, overlap 2: the second window has 5 real frames
    out_pts, means = frames_of(tmp_path / "out.mp4")
    assert result.frames == len(LEVELS) and out_pts == frames_of(clip)[0]
    assert np.allclose(means, LEVELS, atol=2.5), means


def test_a_resumable_job_records_the_tile_the_oom_fallback_chose(tmp_path, flaky, monkeypatch):
    """After an OOM halving, the frames are made with the smaller tile: a resumed run must use it
    too, so the job's plan is updated with it."""
    import json

    from helpers import interrupt_after_two_segments

    from vsrup import resume

    flaky({1})
    interrupt_after_two_segments(monkeypatch)
    clip, target = flat_clip(tmp_path / "in.mp4"), tmp_path / "out.mkv"
    settings = UpscaleSettings(model="flaky", scale=2, device="cpu", tile=None, window=4, overlap=2,
                               resume=True, segment_frames=2)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        Upscaler(settings).upscale_file(clip, target)
    manifest = json.loads((resume.work_folder(target) / resume.MANIFEST).read_text())
    assert manifest["plan"]["tile"] == 128  # whole frame (0) failed once: the fallback's first tile
