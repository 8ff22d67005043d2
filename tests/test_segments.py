"""Segments: a clip cut into frame ranges, upscaled piece by piece and joined, equals one whole run."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers import decode_all, make_clip, packet_bytes, pattern

from vsrup import models
from vsrup.errors import InputError, UsageError
from vsrup.io import reader
from vsrup.io.concat import concat_segments, decode_timestamps, join
from vsrup.io.probe import probe, video_pts
from vsrup.io.writer import EncodeSettings
from vsrup.models import catalogue
from vsrup.models.tiny import TinyConfig, TinyVSR
from vsrup.pipeline.plan import Plan
from vsrup.pipeline.span import Bound, FrameRange, parse_bound, plan_segments, resolve_range, window_span
from vsrup.pipeline.stream import first_needed
from vsrup.pipeline.windows import sliding_windows
from vsrup.upscale import Upscaler, UpscaleSettings

LOSSLESS = EncodeSettings(codec="ffv1")


def _seeded_temporal(scale: int, device: torch.device, dtype: torch.dtype, options=None) -> TinyVSR:
    """The tiny architecture with seeded random weights: each output frame depends on its
    neighbours in the window, so a window grid that moved at a cut would change the output."""
    torch.manual_seed(0)
    model = TinyVSR(TinyConfig(scale=scale, width=8, refiner_blocks=1, offset_width=4))
    torch.nn.init.normal_(model.to_pixels.weight, std=0.05)
    for branch in (model.propagate.backward_branch, model.propagate.forward_branch):
        torch.nn.init.normal_(branch[0].weight, std=0.1)  # (trained-from-zero init: switch it on)
    return model.to(device=device, dtype=dtype)


@pytest.fixture(autouse=True)
def _test_temporal_model():
    """Registered for this module's tests only: a name left in the catalogue would show up in
    every later test that lists it (`vsrup models`)."""
    models.register("test-temporal", _seeded_temporal)
    yield
    catalogue.ENTRIES.pop("test-temporal", None)


def test_parse_bound_reads_seconds_clock_times_and_frames():
    assert parse_bound("12.5") == Bound(12.5, False)
    assert parse_bound("00:01:02.5") == Bound(62.5, False)
    assert parse_bound("1:02:03") == Bound(3723.0, False)
    assert parse_bound("120f") == Bound(120, True)
    for bad in ("-1", "abc", "1:2:3:4", "-3f", "nan"):
        with pytest.raises(UsageError):
            parse_bound(bad)


@pytest.mark.parametrize("size,overlap", [(4, 0), (4, 2), (5, 3), (8, 2), (3, 2)])
def test_window_span_covers_exactly_the_windows_that_touch_a_range(size, overlap):
    for frames in (1, 7, 13, 20):
        windows = [(w.start, w.end) for w in sliding_windows(range(frames), size, overlap)]
        for first in range(frames):
            for stop in range(first + 1, frames + 1):
                touching = [w for w in windows if w[0] < stop and w[1] > first]
                lo, hi = window_span(first, stop, size, overlap)
                assert (lo, min(hi, frames)) == (touching[0][0], touching[-1][1])


def test_plan_segments_tiles_the_video_with_cuts_on_window_starts():
    ranges = plan_segments(100, 4, 8, 2)
    assert ranges[0].start == 0 and ranges[-1].stop == 100
    assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(r.start % 6 == 0 for r in ranges)
    # Each cut lies within half a stride of the even cut, so lengths differ by at most 2 strides.
    lengths = [r.stop - r.start for r in ranges]
    assert len(ranges) == 4 and max(lengths) - min(lengths) <= 12
    assert plan_segments(5, 8, 4, 2) == [FrameRange(0, 2), FrameRange(2, 4), FrameRange(4, 5)]


def test_decode_timestamps_rebuild_an_encoder_delay():
    # x264's order with B-pyramid: I0 P4 B2 b1 b3, delay 2 frames of 10 units.
    pts = [0, 40, 20, 10, 30, 50]
    dts = decode_timestamps(pts)
    assert dts == [-20, -10, 0, 10, 20, 30]
    assert all(d <= p for d, p in zip(dts, pts, strict=True))


def upscaler(model: str, **kw) -> Upscaler:
    return Upscaler(UpscaleSettings(scale=2, model=model, device="cpu", encode=LOSSLESS, **kw))


def stitched(up: Upscaler, src: Path, folder: Path, parts: int) -> Path:
    """Upscale `src` as `parts` segments (each with its own upscale_file call) and join them."""
    frames = len(video_pts(src))
    ranges = plan_segments(frames, parts, 1, 0)  # even cuts, deliberately not on the window grid
    assert len(ranges) == parts
    paths = []
    for i, span in enumerate(ranges):
        paths.append(folder / f"seg{i}.mkv")
        up.upscale_file(src, paths[-1], frame_range=span)
    out = folder / "joined.mkv"
    assert concat_segments(paths, probe(src), out) == frames
    return out


@pytest.mark.parametrize("model,window,overlap", [("bicubic", 4, 2), ("test-temporal", 5, 2)])
def test_three_segments_joined_equal_one_run_bit_for_bit(tmp_path, model, window, overlap):
    src = make_clip(tmp_path / "in.mkv", frames=17, audio=True)
    up = upscaler(model, window=window, overlap=overlap)
    whole = up.upscale_file(src, tmp_path / "whole.mkv").output
    joined = stitched(up, src, tmp_path, parts=3)
    whole_pts, whole_images = decode_all(whole)
    joined_pts, joined_images = decode_all(joined)
    assert len(joined_pts) == 17 and joined_pts == whole_pts
    diffs = [
        int(np.abs(a.astype(int) - b.astype(int)).max())
        for a, b in zip(whole_images, joined_images, strict=True)
    ]
    assert diffs == [0] * 17
    assert packet_bytes(joined, "audio") == packet_bytes(src, "audio") != []


def test_the_temporal_model_really_depends_on_the_window(tmp_path):
    """Guards the test above: a cut that changed the windows would change the pixels."""
    model = _seeded_temporal(2, torch.device("cpu"), torch.float32)
    frames = torch.rand(5, 3, 12, 16, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        in_window = model.upscale(frames)[2]
        alone = model.upscale(frames[2:3])[0]
    assert (in_window - alone).abs().max() > 1e-3


def test_a_segment_with_h264_keeps_exact_timestamps_of_its_frames(tmp_path):
    # VFR input: the segment must keep each frame's own pts, not renumber.
    pts = [0, 40, 90, 130, 200, 240, 250, 300, 360, 400, 410, 480]
    src = make_clip(tmp_path / "vfr.mp4", frames=len(pts), pts=pts)
    up = upscaler("bicubic", window=4, overlap=1)
    up = up.with_settings(dataclasses.replace(up.settings, encode=EncodeSettings(preset="ultrafast")))
    out = up.upscale_file(src, tmp_path / "seg.mp4", frame_range=FrameRange(3, 9)).output
    out_pts, _ = decode_all(out)
    with_tb = [float(p * Fraction(1, 1000)) for p in pts[3:9]]
    assert len(out_pts) == 6
    assert [round(float(p * _tb(out)), 6) for p in out_pts] == pytest.approx(with_tb)
    assert packet_bytes(out, "audio") == []


def _tb(path: Path) -> Fraction:
    with av.open(str(path)) as c:
        return c.streams.video[0].time_base


def test_start_and_end_as_times_select_the_frames_shown_in_between(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=20)  # 25 fps: frame i is shown at i·0.04 s
    up = upscaler("bicubic", window=4, overlap=2, start="0.2", end="00:00:00.48")
    up.upscale_file(src, tmp_path / "part.mkv")
    whole_pts, whole_images = decode_all(
        upscaler("bicubic", window=4, overlap=2).upscale_file(src, tmp_path / "w.mkv").output
    )
    part_pts, part_images = decode_all(tmp_path / "part.mkv")
    assert part_pts == whole_pts[5:12]
    assert all(np.array_equal(a, b) for a, b in zip(part_images, whole_images[5:12], strict=True))
    assert resolve_range(probe(src), "5f", "12f") == FrameRange(5, 12)
    with pytest.raises(UsageError):
        resolve_range(probe(src), "12f", "0.1")


def test_cli_start_end_writes_the_segment(tmp_path):
    from typer.testing import CliRunner

    from vsrup.cli import app

    src = make_clip(tmp_path / "in.mkv", frames=12, audio=True)
    out = tmp_path / "seg.mkv"
    args = ["upscale", str(src), str(out), "-m", "bicubic", "-s", "2", "--start", "4f", "--end", "0.36", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    in_pts, _ = decode_all(src)
    assert decode_all(out)[0] == in_pts[4:9]
    assert packet_bytes(out, "audio") == []  # audio is muxed once, when segments are joined


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255**2 / mse) if mse else 99.0


def test_h264_mp4_segments_joined_match_a_whole_run_within_encoder_noise(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=16, audio=True)
    exact = upscaler("bicubic", window=4, overlap=2).upscale_file(src, tmp_path / "exact.mkv").output
    h264 = {"scale": 2, "model": "bicubic", "window": 4, "overlap": 2, "device": "cpu"}
    whole = Upscaler(UpscaleSettings(**h264)).upscale_file(src, tmp_path / "whole.mp4").output
    parts = []
    for i, (start, end) in enumerate([(None, "0.24"), ("0.24", "10f"), ("10f", None)]):
        up = Upscaler(UpscaleSettings(**h264, start=start, end=end))
        parts.append(up.upscale_file(src, tmp_path / f"part{i}.mp4").output)
    joined = tmp_path / "joined.mp4"
    assert join(src, parts, joined) == 16
    assert decode_all(joined)[0] == decode_all(whole)[0] == decode_all(src)[0]
    assert packet_bytes(joined, "audio") == packet_bytes(src, "audio") != []
    # Lossy either way: the joined file is as close to the exact frames as the whole run is.
    _, exact_images = decode_all(exact)
    whole_psnr = [psnr(a, b) for a, b in zip(exact_images, decode_all(whole)[1], strict=True)]
    joined_psnr = [psnr(a, b) for a, b in zip(exact_images, decode_all(joined)[1], strict=True)]
    assert min(joined_psnr) > 30 and np.mean(joined_psnr) > np.mean(whole_psnr) - 1.0
    with pytest.raises(InputError):  # out of order: caught, not a broken file
        join(src, parts[::-1], tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


def keyframed_clip(path: Path, frames: int, gop: int) -> Path:
    """An H.264 clip with B-frames and a keyframe every `gop` frames, so that seeking has choices."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"keyint": str(gop), "min-keyint": str(gop)})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, 64, 48), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_late_segment_seeks_to_a_keyframe_instead_of_decoding_from_the_start(tmp_path, monkeypatch):
    src = keyframed_clip(tmp_path / "gop.mp4", frames=30, gop=6)
    info = probe(src)
    all_pts, all_images = decode_all(src)
    decoded_from_start = []
    original = reader._decode_all
    monkeypatch.setattr(
        reader, "_decode_all", lambda i, damage=None: decoded_from_start.append(1) or original(i, damage)
    )
    first = first_needed(FrameRange(21, 26), Plan(window=4, overlap=2, tile=0))
    frames = list(reader.read_frames(info, first))
    assert first == 18  # window 9 (frames 18–21) is the first that holds frame 21
    assert [f.index for f in frames] == list(range(18, 30))
    assert [f.pts for f in frames] == all_pts[18:]
    assert all(np.array_equal(f.image, image) for f, image in zip(frames, all_images[18:], strict=True))
    assert decoded_from_start == []  # the seek landed; no fallback to a full decode
    # And through the engine: the segment equals those frames of a whole run, bit for bit.
    up = upscaler("test-temporal", window=4, overlap=2)
    whole = decode_all(up.upscale_file(src, tmp_path / "whole.mkv").output)
    part = decode_all(up.upscale_file(src, tmp_path / "part.mkv", frame_range=FrameRange(21, 26)).output)
    assert part[0] == whole[0][21:26]
    assert all(np.array_equal(a, b) for a, b in zip(part[1], whole[1][21:26], strict=True))


def test_a_seek_that_lands_wrong_falls_back_to_decoding_from_the_start(tmp_path, monkeypatch):
    src = keyframed_clip(tmp_path / "gop.mp4", frames=14, gop=4)
    real = video_pts(src)
    monkeypatch.setattr(reader, "video_pts", lambda path: [p + 1 for p in real])  # lies
    first = first_needed(FrameRange(9, 12), Plan(window=4, overlap=2, tile=0))
    frames = list(reader.read_frames(probe(src), first))
    assert first == 6 and [f.index for f in frames] == list(range(6, 14))  # window 3 holds frame 9
    assert [f.pts for f in frames] == real[6:]
