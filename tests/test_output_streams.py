"""What the output carries beside the pixels (issue 17): colour tags that match the conversion,
a codec that plays for >8-bit input, audio the container can hold, and a word about what is left
behind. Each test goes through the CLI, where the user meets it."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace
from helpers import make_clip, pattern, run_cli

GREEN = (36, 180, 85)  # a colour of GIF's rgb8 palette: no dithering

# AVCOL_SPC code → swscale matrix, for decoding as a player does (by the tags).
_PLAYER_MATRIX = {1: Colorspace.ITU709, 5: Colorspace.ITU601, 6: Colorspace.SMPTE170M}


def green_clip(path: Path, codec: str, pix_fmt: str, size=(320, 180), frames: int = 2) -> Path:
    """An untagged clip: a grey frame with a big green patch in the middle."""
    width, height = size
    image = np.full((height, width, 3), 128, np.uint8)
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = GREEN
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def tags_of(path: Path) -> tuple[int, int, int, int]:
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        return ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range


def centre_as_players_see_it(path: Path) -> np.ndarray:
    """The centre pixel of the first frame, converted to RGB by the stream's tags; untagged video by
    its size (BT.709 from 720 lines), as players do."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        if not frame.format.name.startswith("yuv"):
            rgb = frame.to_ndarray(format="rgb24")
            return rgb[frame.height // 2, frame.width // 2].astype(int)
        matrix = _PLAYER_MATRIX.get(frame.colorspace)
        if matrix is None:
            matrix = Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601
        full = frame.color_range == 2
        rgb = frame.reformat(
            format="rgb24",
            src_colorspace=matrix,
            src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
        ).to_ndarray()
    return rgb[frame.height // 2, frame.width // 2].astype(int)


@pytest.mark.parametrize(
    "codec, pix_fmt, name", [("gif", "rgb8", "rgb.gif"), ("libx264", "yuv420p", "untagged_yuv.mkv")]
)
def test_untagged_input_upscaled_to_hd_is_tagged_bt709_and_keeps_its_colours(
    tmp_path, monkeypatch, capsys, codec, pix_fmt, name
):
    source = green_clip(tmp_path / name, codec, pix_fmt)
    assert tags_of(source)[2] == 2  # no matrix tag
    green = centre_as_players_see_it(source)  # GIF's palette moves it a little
    assert green[1] > 170 and green[0] < 60
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(source), str(out), "--model", "bicubic", "-q")
    assert code == 0, err
    assert tags_of(out) == (1, 1, 1, 1)  # BT.709 primaries, transfer and matrix; limited range
    # swscale's own rounding costs a level or two; the wrong matrix cost 20 (180 → 159 in green)
    assert np.abs(centre_as_players_see_it(out) - green).max() <= 3


def test_untagged_input_staying_sd_is_tagged_bt601(tmp_path, monkeypatch, capsys):
    source = green_clip(tmp_path / "small.mkv", "libx264", "yuv420p", size=(64, 48))
    out = tmp_path / "out.mkv"
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(source), str(out), "--model", "bicubic", "-q")
    assert code == 0, err
    assert tags_of(out) == (6, 6, 6, 1)  # SMPTE 170M (BT.601), limited range
    assert np.abs(centre_as_players_see_it(out) - centre_as_players_see_it(source)).max() <= 3


def test_tagged_input_keeps_its_tags(tmp_path, monkeypatch, capsys):
    source = make_clip(tmp_path / "tagged.mp4", frames=2)  # BT.709 tags, range unspecified
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(source), str(out), "--model", "bicubic", "-q")
    assert code == 0, err
    assert tags_of(out) == (1, 1, 1, 1)


def video_facts(path: Path) -> tuple[str, str, str, str | None]:
    """(codec, codec tag, pixel format, profile) of the video stream."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        ctx = stream.codec_context
        return ctx.name, stream.codec_tag, ctx.pix_fmt, ctx.profile


@pytest.mark.parametrize("resume", [False, True])
def test_ten_bit_input_becomes_hevc_main10_tagged_hvc1_in_mp4(tmp_path, monkeypatch, capsys, resume):
    source = make_clip(tmp_path / "ten.mkv", frames=4, ten_bit=True)
    out = tmp_path / "out.mp4"
    extra = ["--resume"] if resume else []  # segments joined by packet copy get the same tag
    args = ["upscale", str(source), str(out), "--model", "bicubic", "--scale", "2", "-q", *extra]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert err == ""  # x265 keeps its banner to itself
    assert video_facts(out) == ("hevc", "hvc1", "yuv420p10le", "Main 10")


def test_codec_option_still_overrides_the_ten_bit_default(tmp_path, monkeypatch, capsys):
    source = make_clip(tmp_path / "ten.mkv", frames=3, ten_bit=True)
    out = tmp_path / "out.mp4"
    args = [
        "upscale",
        str(source),
        str(out),
        "--model",
        "bicubic",
        "--scale",
        "2",
        "-q",
        "--codec",
        "libx264",
    ]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert video_facts(out)[::2] == ("h264", "yuv420p10le")
    eight = tmp_path / "eight.mp4"  # --pix-fmt yuv420p: 8-bit, so H.264 again
    args = [
        "upscale",
        str(source),
        str(eight),
        "--model",
        "bicubic",
        "--scale",
        "2",
        "-q",
        "--pix-fmt",
        "yuv420p",
    ]
    assert run_cli(monkeypatch, capsys, *args)[0] == 0
    assert video_facts(eight)[::2] == ("h264", "yuv420p")


def test_without_libx265_ten_bit_stays_h264_and_says_so(tmp_path, monkeypatch, capsys, caplog):
    from vsrup.io import writer

    monkeypatch.setattr(writer, "_HIGH_DEPTH_CODEC", "no-such-encoder")
    writer._warn_once.cache_clear()
    source = make_clip(tmp_path / "ten.mkv", frames=3, ten_bit=True)
    out = tmp_path / "out.mp4"
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(source), str(out), "--model", "bicubic", "-q")
    assert code == 0, err
    assert video_facts(out)[::2] == ("h264", "yuv420p10le")
    said = [r.getMessage() for r in caplog.records if "no-such-encoder" in r.getMessage()]
    assert len(said) == 1 and "10-bit input is encoded as 10-bit H.264 (High 10)" in said[0]


def audio_facts(path: Path) -> list[tuple[str, float, float]]:
    """(codec, first sample s, length s) of each audio stream, by decoding it."""
    facts = []
    with av.open(str(path)) as c:
        for stream in c.streams.audio:
            frames = [f for p in c.demux(stream) for f in stream.codec_context.decode(p if p.size else None)]
            first = float(frames[0].pts * frames[0].time_base)
            length = sum(f.samples for f in frames) / frames[0].sample_rate
            facts.append((stream.codec_context.name, first, length))
    return facts


def test_aac_into_webm_is_reencoded_to_opus_with_its_timing(tmp_path, monkeypatch, capsys, caplog):
    source = make_clip(tmp_path / "aac.mp4", frames=25, audio=True)
    out = tmp_path / "out.webm"
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(source), str(out), "--model", "bicubic", "-q")
    assert code == 0, err
    ((codec, first, length),) = audio_facts(out)
    ((_, source_first, source_length),) = audio_facts(source)
    assert codec == "opus"
    assert abs(first - source_first) <= 1 / 25 and abs(length - source_length) <= 1 / 25
    said = [r.getMessage() for r in caplog.records if "re-encoding" in r.getMessage()]
    assert said == ["re-encoding audio stream 1 (aac) as libopus: a .webm file cannot hold aac"]


def test_audio_none_leaves_the_audio_out(tmp_path, monkeypatch, capsys):
    source = make_clip(tmp_path / "aac.mp4", frames=5, audio=True)
    out = tmp_path / "out.mp4"
    args = ["upscale", str(source), str(out), "--model", "bicubic", "--scale", "2", "-q", "--audio", "none"]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_audio_copy_into_webm_fails_clearly_before_any_work(tmp_path, monkeypatch, capsys):
    source = make_clip(tmp_path / "aac.mp4", frames=5, audio=True)
    out = tmp_path / "out.webm"
    args = ["upscale", str(source), str(out), "--model", "bicubic", "--scale", "2", "-q", "--audio", "copy"]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    assert err.strip().splitlines() == [
        "vsrup: error: audio stream 1 (aac) cannot be copied into a .webm file; write .mkv or .mov instead, "
        "or re-encode it with --audio auto"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aac.mp4"]


def timecode_clip(path: Path, frames: int = 3) -> Path:
    """An MP4 with a timecode (tmcd) data track beside the video, as cameras and phones write."""
    with av.open(str(path), "w") as out:
        out.metadata["timecode"] = "01:00:00:00"  # the MP4 muxer writes it as a tmcd track
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, 64, 48), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(path)) as c:
        assert [s.type for s in c.streams] == ["video", "data"]
    return path


def test_a_data_stream_left_behind_is_said_once(tmp_path, monkeypatch, capsys):
    source = timecode_clip(tmp_path / "tc.mp4")
    out = tmp_path / "out.avi"  # AVI has no place for a timecode (MP4 and Matroska carry it)
    args = ["upscale", str(source), str(out), "--model", "bicubic", "--scale", "2", "--progress", "json"]
    code, stdout, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    messages = [e["text"] for e in map(json.loads, stdout.splitlines()) if e["event"] == "message"]
    assert messages == ["tc.mp4: not carried into the output: stream 1 (data: timecode)"]
    code, _, err = run_cli(monkeypatch, capsys, *args[:-2], "--progress", "auto", "--overwrite")
    assert code == 0 and err.count("not carried") == 1  # one line on stderr (plain progress lines)


@pytest.mark.parametrize(
    ("tags", "pix_fmt", "height", "expected"),
    [
        ((2, 2, 2, 0), "yuv420p", 720, (1, 1, 1, 1)),  # untagged, HD out: BT.709
        ((2, 2, 2, 0), "yuv420p", 360, (6, 6, 6, 1)),  # untagged, SD out: BT.601 (SMPTE 170M)
        ((2, 2, 2, 2), "pal8", 360, (1, 1, 6, 1)),  # GIF: sRGB primaries, YUV limited range
        ((2, 2, 1, 0), "yuv420p", 360, (1, 1, 1, 1)),  # a matrix tag alone brings its partners
        ((9, 16, 9, 1), "yuv420p10le", 2160, (9, 16, 9, 1)),  # a tagged input keeps its tags (PQ)
        ((1, 1, 1, 2), "yuvj420p", 720, (1, 1, 1, 2)),  # full range stays full
    ],
)
def test_output_colour_tags(tags, pix_fmt, height, expected):
    from vsrup.io.probe import ColorInfo, VideoInfo, output_color

    info = VideoInfo(
        Path("x"), 320, 180, pix_fmt, 8, "h264", Fraction(1, 25), None, None, None, 0, ColorInfo(*tags)
    )
    color = output_color(info, height)
    assert (color.primaries, color.transfer, color.matrix, color.range) == expected


def test_audio_copy_with_resume_fails_before_any_work(tmp_path, monkeypatch, capsys):
    source = make_clip(tmp_path / "aac.mp4", frames=5, audio=True)
    out = tmp_path / "out.webm"
    args = ["upscale", str(source), str(out), "--model", "bicubic", "--scale", "2", "-q", "--audio", "copy"]
    code, _, err = run_cli(monkeypatch, capsys, *args, "--resume")
    assert code == 2 and "audio stream 1 (aac) cannot be copied into a .webm file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aac.mp4"]  # no segment folder either
