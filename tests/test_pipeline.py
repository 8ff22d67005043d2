"""End-to-end `upscale_file`: frames, timestamps, audio, metadata and pixels survive the trip."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import decode_all, make_clip, packet_bytes

from vsrup.io.probe import probe
from vsrup.io.writer import EncodeSettings
from vsrup.upscale import Upscaler, UpscaleSettings


def upscale(src: Path, dst: Path, scale: int = 2, model: str = "bicubic", **kw) -> Path:
    encode = kw.pop("encode", EncodeSettings())
    Upscaler(UpscaleSettings(scale=scale, model=model, device="cpu", encode=encode, **kw)).upscale_file(
        src, dst
    )
    return dst


def stream_facts(path: Path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        duration = float(v.duration * v.time_base) if v.duration is not None else None
        return v.codec_context.width, v.codec_context.height, v.codec_context.pix_fmt, duration


def test_real_clip_keeps_frames_timestamps_duration_and_audio(sample_clip, tmp_path):
    out = upscale(sample_clip, tmp_path / "out.mp4", scale=4)
    in_pts, _ = decode_all(sample_clip)
    out_pts, _ = decode_all(out)
    assert out_pts == in_pts and len(out_pts) == 45
    w, h, _, duration = stream_facts(out)
    assert (w, h) == (1280, 720)
    # mp4 writes edit-list durations in 1/1000 s units, so allow one such unit.
    assert duration == pytest.approx(stream_facts(sample_clip)[3], abs=1e-3)
    assert packet_bytes(out, "audio") == packet_bytes(sample_clip, "audio")
    assert len(packet_bytes(out, "audio")) > 0


def test_shared_clip_with_audio_round_trips(shared_data, tmp_path):
    src = shared_data / "clips" / "04_coffee.mp4"
    # A short cut would re-encode; instead use a low scale on the first seconds via the full file
    # only when it is quick: 287 frames of 720p → 1440p bicubic is ~a minute on 2 cores, so cut.
    cut = tmp_path / "cut.mp4"
    with av.open(str(src)) as i, av.open(str(cut), "w") as o:
        vin, ain = i.streams.video[0], i.streams.audio[0]
        vout, aout = o.add_stream_from_template(vin), o.add_stream_from_template(ain)
        for packet in i.demux(vin, ain):
            if packet.dts is None or packet.dts * packet.time_base > 1.0:
                continue
            packet.stream = vout if packet.stream is vin else aout
            o.mux(packet)
    in_pts, _ = decode_all(cut)
    out = upscale(cut, tmp_path / "out.mkv", scale=2, encode=EncodeSettings(preset="ultrafast"))
    out_pts, _ = decode_all(out)
    assert len(out_pts) == len(in_pts) > 20
    assert packet_bytes(out, "audio") == packet_bytes(cut, "audio")


def test_synthetic_audio_clip_keeps_audio_bytes(tmp_path):
    src = make_clip(tmp_path / "a.mp4", frames=12, audio=True)
    out = upscale(src, tmp_path / "b.mp4")
    assert packet_bytes(out, "audio") == packet_bytes(src, "audio") != []


def test_ten_bit_input_gives_ten_bit_output(tmp_path):
    src = make_clip(tmp_path / "ten.mkv", frames=6, ten_bit=True)
    assert probe(src).bit_depth == 10
    out = upscale(src, tmp_path / "ten_out.mkv")
    assert stream_facts(out)[2] == "yuv420p10le"
    with av.open(str(src)) as a, av.open(str(out)) as b:
        fa = next(a.decode(video=0)).to_ndarray(format="rgb48le").astype(np.float64)
        fb = next(b.decode(video=0)).to_ndarray(format="rgb48le").astype(np.float64)
    # Downscale the ×2 output back: it must match the input far better than 8-bit rounding would.
    back = fb.reshape(fa.shape[0], 2, fa.shape[1], 2, 3).mean(axis=(1, 3))
    assert np.abs(back - fa).mean() / 65535 < 0.01


def test_variable_frame_rate_timestamps_survive(tmp_path):
    pts = [0, 40, 80, 200, 240, 400, 410, 420, 600, 640]  # ms, irregular
    src = make_clip(tmp_path / "vfr.mkv", frames=len(pts), pts=pts)
    out = upscale(src, tmp_path / "vfr_out.mkv", window=4, overlap=1)
    assert decode_all(out)[0] == decode_all(src)[0] == pts


def test_rotation_and_colour_tags_are_carried(tmp_path):
    src = make_clip(tmp_path / "rot.mp4", frames=5, rotation=90)
    out = upscale(src, tmp_path / "rot_out.mp4")
    a, b = probe(src), probe(out)
    assert a.rotation == b.rotation != 0
    assert (
        (b.color.primaries, b.color.transfer, b.color.matrix)
        == (1, 1, 1)
        == (a.color.primaries, a.color.transfer, a.color.matrix)
    )


@pytest.mark.parametrize(
    ("frames", "size", "window", "overlap"),
    [(1, (64, 48), 8, 2), (3, (64, 48), 8, 2), (11, (33, 21), 4, 1), (9, (50, 30), 3, 2)],
)
def test_edge_cases_give_one_output_per_input_frame(tmp_path, frames, size, window, overlap):
    src = make_clip(tmp_path / "e.mkv", frames=frames, size=size, codec="ffv1")
    out = upscale(src, tmp_path / "e_out.mkv", window=window, overlap=overlap)
    pts, images = decode_all(out)
    assert pts == decode_all(src)[0]
    assert images[0].shape == (size[1] * 2, size[0] * 2, 3)


def test_lossless_output_matches_direct_bicubic(tmp_path):
    """With FFV1 the whole decode → window → blend → encode path must add no error of its own."""
    src = make_clip(tmp_path / "l.mkv", frames=7, size=(40, 24), codec="ffv1")
    out = upscale(
        src, tmp_path / "l_out.mkv", window=3, overlap=1, encode=EncodeSettings(codec="ffv1", pix_fmt="bgr0")
    )
    _, inputs = decode_all(src)
    _, outputs = decode_all(out)
    for image, upscaled in zip(inputs, outputs, strict=True):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        expected = F.interpolate(x, scale_factor=2, mode="bicubic").clamp(0, 1)
        expected = (expected[0].permute(1, 2, 0) * 255).round().numpy()
        assert np.abs(expected - upscaled).max() <= 1


def test_model_is_loaded_once_for_many_files(tmp_path, monkeypatch):
    from vsrup import models

    calls = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a: calls.append(a) or real(*a))
    upscaler = Upscaler(UpscaleSettings(scale=2, model="bicubic", device="cpu"))
    for k in range(2):
        upscaler.upscale_file(make_clip(tmp_path / f"{k}.mp4", frames=3), tmp_path / f"{k}_out.mp4")
    assert len(calls) == 1


def test_frame_rate_metadata_kept(sample_clip, tmp_path):
    out = upscale(sample_clip, tmp_path / "o.mp4")
    assert probe(out).frame_rate == probe(sample_clip).frame_rate == Fraction(30000, 1001)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_sixteen_bit_samples_scale_to_unit_range_in_half_precision(dtype):
    """10/12-bit video arrives as 16-bit samples; in fp16 65535 is inf, so scaling must not pass
    through the half type (white would become inf, then NaN through the model)."""
    from vsrup.pipeline.runner import to_tensor

    image = np.array([[[0, 32768, 65535]]], np.uint16).repeat(2, axis=0)  # (2, 1, 3)
    tensor = to_tensor([image], torch.device("cpu"), dtype)
    assert tensor.dtype == dtype and tensor.shape == (1, 3, 2, 1)
    assert torch.isfinite(tensor).all()
    assert tensor[0, :, 0, 0].float().tolist() == pytest.approx([0, 32768 / 65535, 1], abs=2e-3)
