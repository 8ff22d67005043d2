"""SMPTE start timecode: counted forward exactly (drop-frame too) and carried into the output."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import av
import pytest
from helpers import pattern, run_cli

from vsrup.io.timecode import advance_timecode, read_timecode
from vsrup.progress import Reporter
from vsrup.run import upscale_paths
from vsrup.upscale import Upscaler, UpscaleSettings

NTSC = Fraction(30000, 1001)


def drop_frame_labels(fps: int, drop: int):
    """Every drop-frame label in order, made the slow obvious way: count through all labels and
    leave out frames 0..drop-1 of each minute not divisible by ten."""
    for hours, minutes, seconds, label in itertools.product(range(24), range(60), range(60), range(fps)):
        if seconds == 0 and label < drop and minutes % 10:
            continue
        yield f"{hours:02d}:{minutes:02d}:{seconds:02d};{label:02d}"


@pytest.mark.parametrize(("rate", "drop"), [(NTSC, 2), (NTSC * 2, 4)])
def test_drop_frame_counting_matches_the_labels_one_by_one(rate, drop):
    fps = round(float(rate))
    labels = list(itertools.islice(drop_frame_labels(fps, drop), 40 * 60 * fps))  # 40 minutes
    for frames in [*range(0, 5000), *range(5000, len(labels), 997), len(labels) - 1]:
        assert advance_timecode("00:00:00;00", frames, rate) == labels[frames]
    start = labels[17981]  # just before a ten-minute mark, counted on across it
    assert [advance_timecode(start, n, rate) for n in range(4)] == labels[17981:17985]


def test_non_drop_counting_and_the_day_wrap():
    assert advance_timecode("01:00:00:00", 30, 25) == "01:00:01:05"
    assert advance_timecode("00:59:59:23", 1, 24) == "01:00:00:00"
    assert advance_timecode("23:59:59:24", 1, 25) == "00:00:00:00"
    assert advance_timecode("10:00:00:00", 0, None) == "10:00:00:00"  # nothing to count


def test_timecode_that_cannot_be_counted_is_none():
    assert advance_timecode("01:00:00;00", 5, 25) is None  # drop-frame label at a rate that never drops
    assert advance_timecode("01:00:00:00", 5, None) is None  # no frame rate to count with
    assert advance_timecode("not a timecode", 5, 25) is None


def timecode_clip(path: Path, timecode: str = "01:00:00:00", frames: int = 4, rate=25) -> Path:
    """A clip with a start timecode: a tmcd track in MP4/MOV, a TIMECODE tag in Matroska."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.metadata["timecode"] = timecode
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, 64, 48), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def timecode_of(path: Path) -> str | None:
    with av.open(str(path)) as container:
        return read_timecode(container)


def upscale(monkeypatch, capsys, source: Path, target: Path, *extra: str) -> list[str]:
    args = ["upscale", str(source), str(target), "-m", "bicubic", "-s", "2", "--progress", "json", *extra]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    return [e["text"] for e in map(json.loads, out.splitlines()) if e["event"] == "message"]


@pytest.mark.parametrize(("source_ext", "target_ext"), [(".mp4", ".mp4"), (".mov", ".mkv"), (".mkv", ".mov")])
def test_the_start_timecode_survives_the_upscale(tmp_path, monkeypatch, capsys, source_ext, target_ext):
    source = timecode_clip(tmp_path / f"in{source_ext}", "10:59:59:24")
    assert timecode_of(source) == "10:59:59:24"
    target = tmp_path / f"out{target_ext}"
    assert upscale(monkeypatch, capsys, source, target) == []  # nothing said to be left behind
    assert timecode_of(target) == "10:59:59:24"


def test_a_container_without_timecode_says_it_is_not_carried(tmp_path, monkeypatch, capsys):
    source = timecode_clip(tmp_path / "tc.mp4")
    messages = upscale(monkeypatch, capsys, source, tmp_path / "out.avi")
    assert messages == ["tc.mp4: not carried into the output: stream 1 (data: timecode)"]


def test_a_later_start_counts_the_timecode_forward(tmp_path, monkeypatch, capsys):
    source = timecode_clip(tmp_path / "tc.mov", "00:00:59;28", frames=6, rate=NTSC)
    upscale(monkeypatch, capsys, source, tmp_path / "part.mov", "--start", "3f")
    assert timecode_of(tmp_path / "part.mov") == "00:01:00;03"  # ;00 and ;01 are dropped labels
    upscale(monkeypatch, capsys, source, tmp_path / "head.mov", "--end", "3f")
    for parts, expected in [(["head.mov", "part.mov"], "00:00:59;28"), (["part.mov"], "00:01:00;03")]:
        joined = tmp_path / f"joined{len(parts)}.mov"  # a join starts where its first part starts
        code, _, err = run_cli(
            monkeypatch, capsys, "join", str(source), *[str(tmp_path / p) for p in parts], str(joined)
        )
        assert code == 0, err
        assert timecode_of(joined) == expected


def test_resumed_and_parallel_runs_carry_the_input_timecode(tmp_path):
    source = timecode_clip(tmp_path / "tc.mp4", "01:02:03:04", frames=12)
    settings = UpscaleSettings(model="bicubic", scale=2, resume=True, segment_frames=4)
    Upscaler(settings).upscale_file(source, tmp_path / "resumed.mp4")
    assert timecode_of(tmp_path / "resumed.mp4") == "01:02:03:04"
    parallel = UpscaleSettings(model="bicubic", scale=2, window=4, overlap=2, device="cpu")
    [outcome] = upscale_paths(
        [source, tmp_path / "parallel.mp4"], parallel, Reporter(), devices=["cpu", "cpu"]
    )
    assert outcome.status == "done" and timecode_of(tmp_path / "parallel.mp4") == "01:02:03:04"
