"""The numbers progress shows a user: frames done of a total that is right (or said to be an
estimate), and a speed only once this run has one."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import av
import pytest
from helpers import make_clip, run_cli

from vsrup.io.probe import probe
from vsrup.progress import JsonReporter, LineReporter


def test_a_resumed_job_shows_no_speed_before_its_first_frame():
    """Issue 25: a resumed job started with "54/275 frames, 0.00 fps"."""
    lines = io.StringIO()
    reporter = LineReporter(interval=0, stream=lines)
    reporter.start("in.mp4", 275)
    reporter.resumed(54)
    assert lines.getvalue().splitlines() == ["in.mp4: 54/275 frames"]
    events = io.StringIO()
    reporter = JsonReporter(events)
    reporter.start("in.mp4", 275)
    reporter.resumed(54)
    resumed = json.loads(events.getvalue().splitlines()[-1])
    assert resumed["frames_done"] == 54 and resumed["fps"] is None and resumed["eta_s"] is None
    reporter.advance(1)
    assert json.loads(events.getvalue().splitlines()[-1])["fps"] > 0  # this run's one frame


@pytest.mark.parametrize(("frames", "rate"), [(45, Fraction(30000, 1001)), (13, Fraction(25))])
def test_a_matroska_clip_with_longer_audio_counts_its_frames_from_the_video(tmp_path, frames, rate):
    """Matroska lists no frame count; the container's duration also spans the audio (AAC's padding
    made an estimate of 46 for 45 frames, 14 for 13). The video stream's own DURATION tag is right."""
    clip = make_clip(tmp_path / "in.mkv", frames=frames, fps=rate, audio=True)
    with av.open(str(clip)) as container:
        assert round(container.duration / av.time_base * rate) > frames  # the trap is there
    info = probe(clip)
    assert info.frames_estimate == frames and not info.frames_exact


def test_an_estimated_total_is_marked_never_falls_below_the_frames_done_and_ends_at_the_frames_written():
    events = io.StringIO()
    reporter = JsonReporter(events)
    reporter.start("in.mkv", 10, exact=False)
    for _ in range(12):
        reporter.advance(1)
    reporter.finish("done", frames=12)
    parsed = [json.loads(line) for line in events.getvalue().splitlines()]
    assert parsed[0] == {
        "event": "start",
        "file": "in.mkv",
        "frames_total": 10,
        "frames_total_estimated": True,
    }
    progress = [e for e in parsed if e["event"] == "progress"]
    assert all(e["frames_total"] >= e["frames_done"] for e in progress)
    assert progress[-1]["frames_total"] == parsed[-1]["frames"] == 12
    lines = io.StringIO()
    reporter = LineReporter(interval=0, stream=lines)
    reporter.start("in.mkv", 13, exact=False)
    reporter.advance(8)
    assert lines.getvalue().startswith("in.mkv: 8/~13 frames, ")  # said to be an estimate


def test_an_mkv_run_reports_a_total_equal_to_the_frames_it_writes(tmp_path, monkeypatch, capsys):
    clip = make_clip(tmp_path / "in.mkv", frames=13, fps=25, audio=True)
    code, out, err = run_cli(
        monkeypatch, capsys, "upscale", str(clip), str(tmp_path / "out.mkv"), "-m", "bicubic", "-s", "2",
        "--progress", "json",
    )  # fmt: skip
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert events[0]["frames_total"] == 13
    assert progress[-1]["frames_done"] == progress[-1]["frames_total"] == events[-1]["frames"] == 13
