"""Legal but awkward inputs come out right: odd sizes, rotation, variable frame rate, no frame count
in the header, one frame, several audio tracks, and subtitles the output container cannot hold
(text is converted, anything else dropped with a warning)."""

from __future__ import annotations

import dataclasses
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import decode_all, make_clip

from vsrup.errors import UsageError
from vsrup.io.probe import probe
from vsrup.upscale import Upscaler, UpscaleSettings

SRT = "1\n00:00:00,000 --> 00:00:00,200\nHello\n\n2\n00:00:00,240 --> 00:00:00,380\nWorld\n"


@pytest.fixture(scope="module")
def upscaler() -> Upscaler:
    return Upscaler(UpscaleSettings(model="bicubic", scale=2, device="cpu"))


def streams_of(path: Path) -> list[str]:
    with av.open(str(path)) as c:
        return [s.type for s in c.streams]


def packets_by_stream(path: Path, kind: str) -> list[list[bytes]]:
    """Each `kind` stream's packet payloads, in order (to check byte-exact copies track by track)."""
    with av.open(str(path)) as c:
        chosen = [s for s in c.streams if s.type == kind]
        by_index: dict[int, list[bytes]] = {s.index: [] for s in chosen}
        for packet in c.demux(*chosen):
            if packet.size:
                by_index[packet.stream.index].append(bytes(packet))
    return list(by_index.values())


def pts_seconds(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [round(float(f.pts * stream.time_base), 4) for f in c.decode(stream)]


def _encode_tone(out, stream, hz: float, seconds: float) -> None:
    rate, size = stream.codec_context.sample_rate, 1024
    for start in range(0, int(seconds * rate), size):
        t = (np.arange(size) + start) / rate
        samples = (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def make_rich_mkv(tmp_path: Path, frames: int = 10) -> Path:
    """Video + two different audio tracks (AAC 48 kHz and 44.1 kHz) + an SRT subtitle track."""
    video = make_clip(tmp_path / "video.mkv", frames=frames)
    srt = tmp_path / "subs.srt"
    srt.write_text(SRT)
    path = tmp_path / "rich.mkv"
    with av.open(str(video)) as vsrc, av.open(str(srt)) as ssrc, av.open(str(path), "w") as out:
        v = out.add_stream_from_template(vsrc.streams.video[0])
        s = out.add_stream_from_template(ssrc.streams.subtitles[0])
        tracks = [
            out.add_stream("aac", rate=48000, layout="mono"),
            out.add_stream("aac", rate=44100, layout="mono"),
        ]
        for packet in vsrc.demux(vsrc.streams.video[0]):
            if packet.size:
                packet.stream = v
                out.mux(packet)
        for packet in ssrc.demux(ssrc.streams.subtitles[0]):
            if packet.size:
                packet.stream = s
                out.mux(packet)
        for track, hz in zip(tracks, (440, 660), strict=True):
            _encode_tone(out, track, hz, frames / 25)
    return path


def test_odd_width_and_height(tmp_path, upscaler):
    clip = make_clip(tmp_path / "odd.mkv", frames=3, size=(63, 47), codec="ffv1")
    upscaler.upscale_file(clip, tmp_path / "out.mkv")
    pts, images = decode_all(tmp_path / "out.mkv")
    assert len(pts) == 3 and images[0].shape == (94, 126, 3)


def test_rotation_metadata_is_kept(tmp_path, upscaler):
    clip = make_clip(tmp_path / "rot.mp4", frames=3, rotation=90)
    assert probe(clip).rotation == 90
    upscaler.upscale_file(clip, tmp_path / "out.mp4")
    info = probe(tmp_path / "out.mp4")
    assert info.rotation == 90
    assert (info.width, info.height) == (128, 96)  # stored unrotated, like the input


def test_variable_frame_rate_timestamps_are_kept(tmp_path, upscaler):
    gaps = [0, 40, 50, 130, 140, 300, 310, 330, 500, 520]  # ms; irregular on purpose
    clip = make_clip(tmp_path / "vfr.mp4", frames=len(gaps), pts=gaps)
    upscaler.upscale_file(clip, tmp_path / "out.mp4")
    assert pts_seconds(tmp_path / "out.mp4") == pts_seconds(clip)
    assert pts_seconds(clip) == [g / 1000 for g in gaps]


def test_stream_without_frame_count(tmp_path, upscaler):
    clip = make_clip(tmp_path / "nocount.mkv", frames=9)
    assert probe(clip).frames is None  # Matroska stores no frame count
    result = upscaler.upscale_file(clip, tmp_path / "out.mkv")
    assert result.frames == 9 and len(decode_all(tmp_path / "out.mkv")[0]) == 9
    assert pts_seconds(tmp_path / "out.mkv") == pts_seconds(clip)


@pytest.mark.parametrize("window", [1, 4, 8])
def test_single_frame_clip(tmp_path, window):
    clip = make_clip(tmp_path / "one.mp4", frames=1)
    settings = UpscaleSettings(model="bicubic", scale=2, device="cpu", window=window, overlap=window // 2)
    result = Upscaler(settings).upscale_file(clip, tmp_path / "out.mp4")
    pts, images = decode_all(tmp_path / "out.mp4")
    assert result.frames == 1 and len(pts) == 1 and images[0].shape == (96, 128, 3)


def test_all_audio_tracks_and_subtitles_copied_byte_exact(tmp_path, upscaler):
    rich = make_rich_mkv(tmp_path)
    out = tmp_path / "out.mkv"
    upscaler.upscale_file(rich, out)
    assert streams_of(out) == ["video", "subtitle", "audio", "audio"]
    source_audio = packets_by_stream(rich, "audio")
    assert len(source_audio) == 2 and source_audio[0] != source_audio[1]
    assert packets_by_stream(out, "audio") == source_audio
    assert packets_by_stream(out, "subtitle") == [[b"Hello", b"World"]]


def subtitle_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start s, duration s, text) of every cue of the first subtitle stream."""
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        cues = []
        for packet in c.demux(stream):
            for cue in stream.codec_context.decode(packet) if packet.size else []:
                text = cue.ass.decode().split(",", 8)[-1]
                cues.append(
                    (float(packet.pts * packet.time_base), float(packet.duration * packet.time_base), text)
                )
        return cues


def test_srt_subtitles_become_mov_text_in_mp4(tmp_path, upscaler, caplog):
    rich = make_rich_mkv(tmp_path)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING):
        result = upscaler.upscale_file(rich, out)
    assert result.frames == 10
    with av.open(str(out)) as c:
        assert [(s.type, s.codec_context.name) for s in c.streams][:2] == [
            ("video", "h264"),
            ("subtitle", "mov_text"),
        ]
    assert streams_of(out) == ["video", "subtitle", "audio", "audio"]
    assert subtitle_cues(rich) == [(0.0, 0.2, "Hello"), (0.24, 0.14, "World")]
    assert subtitle_cues(out) == subtitle_cues(rich)  # same text at the same times
    assert packets_by_stream(out, "audio") == packets_by_stream(rich, "audio")
    assert "converting subtitle stream 1 to mov_text for .mp4" in caplog.text


def test_subtitles_a_container_cannot_hold_at_all_are_dropped_with_a_warning(tmp_path, upscaler, caplog):
    rich = make_rich_mkv(tmp_path)
    out = tmp_path / "out.avi"
    with caplog.at_level(logging.WARNING):
        result = upscaler.upscale_file(rich, out)
    assert result.frames == 10 and len(decode_all(out)[0]) == 10
    assert streams_of(out) == ["video", "audio", "audio"]
    assert "dropping subtitle stream 1 (srt): a .avi file cannot hold it" in caplog.text


def test_audio_the_container_cannot_hold_is_refused_with_audio_copy_before_any_work(tmp_path, upscaler):
    video = make_clip(tmp_path / "v.mkv", frames=4)
    pcm = tmp_path / "pcm.mkv"
    with av.open(str(video)) as src, av.open(str(pcm), "w") as out:
        v = out.add_stream_from_template(src.streams.video[0])
        audio = out.add_stream("pcm_s16le", rate=48000, layout="mono")
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = v
                out.mux(packet)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, 0, Fraction(1, 48000)
        for packet in [*audio.encode(frame), *audio.encode(None)]:
            out.mux(packet)
    strict = upscaler.with_settings(dataclasses.replace(upscaler.settings, audio="copy"))
    with pytest.raises(UsageError, match=r"audio stream 1 \(pcm_s16le\) cannot be copied into a \.mp4"):
        strict.upscale_file(pcm, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pcm.mkv", "v.mkv"]
    upscaler.upscale_file(pcm, tmp_path / "aac.mp4")  # --audio auto (the default) re-encodes it
    with av.open(str(tmp_path / "aac.mp4")) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
    strict.upscale_file(pcm, tmp_path / "out.mov")  # a container that holds PCM copies it
    # PCM packets are regrouped by each demuxer: compare the samples, not the packet cuts
    samples = [b"".join(track) for track in packets_by_stream(tmp_path / "out.mov", "audio")]
    assert samples == [b"".join(track) for track in packets_by_stream(pcm, "audio")]
    assert len(samples[0]) == 4800 * 2


def test_every_audio_track_is_reencoded_for_webm_with_its_length(tmp_path, upscaler, caplog):
    rich = make_rich_mkv(tmp_path, frames=25)  # AAC at 48 kHz and at 44.1 kHz (Opus takes 48 kHz only)
    out = tmp_path / "out.webm"
    with caplog.at_level(logging.WARNING):
        upscaler.upscale_file(rich, out)
    with av.open(str(rich)) as c:
        source = [(s.codec_context.sample_rate, s.metadata.get("language")) for s in c.streams.audio]
    for track in (0, 1):
        with av.open(str(out)) as c:
            stream = c.streams.audio[track]
            assert stream.codec_context.name == "opus"
            frames = [f for p in c.demux(stream) for f in stream.codec_context.decode(p if p.size else None)]
        assert abs(sum(f.samples for f in frames) / frames[0].sample_rate - 1.0) < 0.04  # 25 frames at 25 fps
        assert abs(float(frames[0].pts * frames[0].time_base)) < 0.04
    assert source[1][0] == 44100
    assert caplog.text.count("re-encoding audio stream") == 2


def test_444_input_stays_444_in_mkv_and_mp4_says_once_that_it_is_420(tmp_path, upscaler, caplog):
    """Issue 25: 4:4:4 input became 4:2:0 without a word. Matroska keeps the layout (H.264 High
    4:4:4); MP4 is for players that mostly cannot play it, so it is 4:2:0 and said once."""
    from vsrup.io import writer

    writer._warn_once.cache_clear()  # said once per process: another test may have said it
    clip = make_clip(tmp_path / "in.mkv", frames=3, codec="ffv1")
    assert probe(clip).pix_fmt == "yuv444p"
    kept = upscaler.upscale_file(clip, tmp_path / "out.mkv").output
    assert probe(kept).pix_fmt == "yuv444p" and probe(kept).codec == "h264"
    assert "4:2:0" not in caplog.text
    for name in ("a.mp4", "b.mp4"):
        assert probe(upscaler.upscale_file(clip, tmp_path / name).output).pix_fmt == "yuv420p"
    said = [r.getMessage() for r in caplog.records if "4:2:0" in r.getMessage()]
    assert len(said) == 1 and "4:4:4" in said[0] and ".mkv" in said[0]
