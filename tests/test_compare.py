"""`upscale --compare`: comparison videos have the right size, every frame, and the right halves."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import decode_all, make_clip, packet_bytes
from typer.testing import CliRunner

from vsrup.cli import app
from vsrup.compare import CompareModel, bicubic, compose, divider_width
from vsrup.errors import UsageError
from vsrup.models.base import ModelDescription, VSRModel
from vsrup.upscale import Upscaler, UpscaleSettings


class Zeros(VSRModel):
    """A 'model' whose output is black, so its half is easy to tell from bicubic's."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    @property
    def description(self) -> ModelDescription:
        return ModelDescription("zeros", self.scale, (self.scale,))

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        t, c, h, w = frames.shape
        return frames.new_zeros(t, c, h * self.scale, w * self.scale)


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", frames=10, size=(64, 48), audio=True)


@pytest.mark.parametrize(("mode", "size"), [("split", (128, 96)), ("side", (256, 96))])
def test_compare_video_size_frames_timing_and_audio(clip, tmp_path, mode, size):
    out = tmp_path / f"{mode}.mp4"
    settings = UpscaleSettings(scale=2, model="bicubic", device="cpu")
    result = Upscaler(dataclasses.replace(settings, compare=mode)).upscale_file(clip, out)
    pts, images = decode_all(out)
    in_pts, _ = decode_all(clip)
    assert result.frames == len(images) == 10
    assert images[0].shape == (size[1], size[0], 3)
    assert pts == in_pts
    assert packet_bytes(out, "audio") == packet_bytes(clip, "audio")


def test_cli_compare_side(clip, tmp_path):
    out = tmp_path / "cmp.mkv"
    args = ["upscale", str(clip), str(out), "-m", "bicubic", "-s", "2", "--compare", "side", "-q"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    _, images = decode_all(out)
    assert (len(images), images[0].shape) == (10, (96, 256, 3))


def test_split_has_bicubic_left_model_right_and_a_divider():
    frames = torch.rand(2, 3, 24, 32)
    model = CompareModel(Zeros(2), "split", labels=False)
    out = model.upscale(frames)
    base = bicubic(frames, 2)
    line = divider_width(64)
    assert out.shape == (2, 3, 48, 64)
    assert torch.equal(out[..., : 32 - line], base[..., : 32 - line])
    assert (out[..., 32 - line // 2 : 32 - line // 2 + line] == 1).all()
    assert (out[..., 32 + line :] == 0).all()


def test_side_puts_full_frames_next_to_each_other():
    frames = torch.rand(1, 3, 24, 32)
    out = CompareModel(Zeros(2), "side", labels=False).upscale(frames)
    assert out.shape == (1, 3, 48, 128)
    assert torch.equal(out[..., :64], bicubic(frames, 2)) and (out[..., 64:] == 0).all()


def test_labels_mark_each_half_in_its_top_corner():
    frames = torch.full((1, 3, 48, 64), 0.5)
    plain = CompareModel(Zeros(2), "split", labels=False).upscale(frames)
    labelled = CompareModel(Zeros(2), "split", labels=True).upscale(frames)
    changed = (plain != labelled).any(dim=(0, 1))
    assert changed[:, :64].any() and changed[:, 64:].any()  # both halves are labelled …
    assert not changed[40:].any()  # … at the top only


def test_bad_mode_and_folder_are_usage_errors(clip, tmp_path):
    with pytest.raises(UsageError):
        compose(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), "diagonal")
    result = CliRunner().invoke(
        app, ["upscale", str(clip), str(tmp_path), "-m", "bicubic", "--compare", "split", "-q"]
    )
    assert isinstance(result.exception, UsageError)
