"""`vsrup preview`: the PNG's layout, and that each panel shows what its label says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_clip
from PIL import Image
from typer.testing import CliRunner

from vsrup.cli import app
from vsrup.errors import OutputError, UsageError
from vsrup.io.probe import probe, video_pts
from vsrup.io.reader import read_frames
from vsrup.labels import label_height, stamp_label
from vsrup.preview import GAP, detail_box, make_preview, upscale_frame
from vsrup.preview import frame_at as frame_index_at


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", frames=12, size=(64, 48), fps=25)


def frame_at(path, index: int) -> np.ndarray:
    """The reference decode (the engine's reader), independent of the preview's seeking."""
    for frame in read_frames(probe(path)):
        if frame.index == index:
            return frame.image
    raise AssertionError(index)


def test_preview_layout_and_panels(clip, tmp_path):
    out = tmp_path / "p.png"
    result = make_preview(clip, out, at=0.2, model="bicubic", scale=2, zoom=2, device="cpu")
    image = np.asarray(Image.open(out).convert("RGB"))
    # Layout: three 128×96 panels with gaps, label strips above the panels and above the crops,
    # and crops of 1/zoom of the frame enlarged zoom times (so 96 px tall again).
    label = label_height(96)
    assert image.shape == (label + 96 + label + 96, 3 * 128 + 2 * GAP, 3)
    assert result.panel_size == (128, 96) and result.frame_size == (64, 48)
    assert result.time_s == pytest.approx(0.2)  # frame 5 at 25 fps

    def panel(name):
        x, y, w, h = result.boxes[name]
        return image[y : y + h, x : x + w].astype(int)

    frame = frame_at(clip, 5)
    expected_bicubic = F.interpolate(
        torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255, scale_factor=2, mode="bicubic"
    )
    expected_bicubic = (expected_bicubic.clamp(0, 1)[0] * 255).round().permute(1, 2, 0).numpy()
    assert np.abs(panel("bicubic") - expected_bicubic).max() <= 1
    # The neighbouring frames differ (the pattern moves), so the right frame was chosen.
    neighbour = np.repeat(np.repeat(frame_at(clip, 6), 2, 0), 2, 1)
    assert np.abs(panel("input") - neighbour).mean() > 5
    nearest = np.repeat(np.repeat(frame, 2, 0), 2, 1)
    assert (panel("input") == nearest).all(axis=-1).mean() > 0.97  # all but the crop's outline
    assert np.abs(panel("model") - expected_bicubic).max() <= 1  # the model here *is* bicubic
    x, y, cw, ch = result.crop
    zoomed = panel("model")[y : y + ch, x : x + cw].repeat(2, 0).repeat(2, 1)
    assert (panel("model_zoom") == zoomed).all()


def test_detail_box_finds_the_textured_patch():
    frame = np.full((48, 64, 3), 128, np.uint8)
    yy, xx = np.mgrid[0:12, 0:16]
    frame[30:42, 4:20] = (((xx + yy) % 2) * 255)[..., None]  # a checkerboard, bottom left
    x, y, w, h = detail_box(frame, scale=4, zoom=4)
    assert (w, h) == (16 * 4, 12 * 4)
    assert (x, y) == (4 * 4, 30 * 4)


def test_the_frame_shown_at_the_start_middle_and_end(clip):
    info, pts = probe(clip), video_pts(clip)
    assert frame_index_at(pts, info.time_base, 0.0) == 0
    assert frame_index_at(pts, info.time_base, 0.21) == 5  # between frames 5 and 6: frame 5 is shown
    assert frame_index_at(pts, info.time_base, 10.0) == 11  # past the end: the last frame


def test_cli_prints_the_path_and_refuses_to_overwrite(clip, tmp_path):
    out = tmp_path / "look.png"
    runner = CliRunner()
    args = [
        "preview",
        str(clip),
        "-m",
        "bicubic",
        "-s",
        "2",
        "--at",
        "0.1",
        "-o",
        str(out),
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out) and out.stat().st_size > 1000
    again = runner.invoke(app, args)
    assert isinstance(again.exception, OutputError)
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_bad_time_and_extension_are_usage_errors(clip, tmp_path):
    with pytest.raises(UsageError, match="outside the video"):
        make_preview(clip, tmp_path / "a.png", at=99, model="bicubic", scale=2)
    with pytest.raises(UsageError, match="PNG"):
        make_preview(clip, tmp_path / "a.jpg", model="bicubic", scale=2)


def test_label_touches_only_its_corner():
    frames = torch.full((2, 3, 96, 128), 0.5)
    left = stamp_label(frames, "bicubic", "left")
    right = stamp_label(frames, "model", "right")
    changed_left = (left != frames).any(dim=(0, 1))
    changed_right = (right != frames).any(dim=(0, 1))
    assert (
        changed_left[:20, :64].sum() > 20 and not changed_left[20:].any() and not changed_left[:, 64:].any()
    )
    assert changed_right[:20, 64:].sum() > 20 and not changed_right[:, :64].any()


def test_model_panel_is_the_models_output_for_its_window(clip, tmp_path):
    from vsrup.upscale import Upscaler, UpscaleSettings

    # The tiny weights are committed: a loader that cannot read them is a failure, not a skip.
    upscaler = Upscaler(UpscaleSettings(scale=4, model="tiny", device="cpu"))
    result = make_preview(clip, tmp_path / "t.png", at=0.2, model="tiny", scale=4, device="cpu")
    image = np.asarray(Image.open(result.path).convert("RGB")).astype(int)

    def panel(name):
        x, y, w, h = result.boxes[name]
        return image[y : y + h, x : x + w]

    # Frame 5 exactly as a whole-video upscale makes it (same windows, neighbours and blending).
    plan = upscaler.plan(probe(clip))
    whole = dict((f.index, image) for f, image in upscaler.stream(probe(clip), plan))
    expected = (whole[5].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    assert np.abs(panel("model") - expected).max() <= 1
    frame, alone = upscale_frame(upscaler, probe(clip), 5)
    assert frame.index == 5 and torch.equal(alone, whole[5])
    assert np.abs(panel("model") - panel("bicubic")).mean() > 1  # and it is not just bicubic
