"""`upscale --dry-run`: prints the settings and an estimate from a real calibration, writes nothing."""

from __future__ import annotations

import json

import av
import pytest
from helpers import make_clip
from typer.testing import CliRunner

from vsrup.cli import app
from vsrup.estimate import calibration_length, copy_first_frames, estimate
from vsrup.upscale import Upscaler, UpscaleSettings


def listing(folder):
    return sorted(p.name for p in folder.rglob("*"))


def test_dry_run_json_writes_nothing_and_estimates(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=40, size=(64, 48))
    before = listing(tmp_path)
    out = tmp_path / "out" / "up.mp4"
    args = ["upscale", str(clip), str(out), "-m", "bicubic", "-s", "2", "--window", "4", "--overlap", "1"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--dry-run", "--progress", "json"])
    assert result.exit_code == 0, result.output
    est = json.loads(result.output.strip().splitlines()[-1])
    assert listing(tmp_path) == before  # not even the output folder
    assert est["event"] == "estimate"
    # bicubic declares its neighbourhood (the frame itself): the asked overlap 1 is ignored (0).
    assert (est["device"], est["dtype"], est["window"], est["overlap"], est["tile"]) == (
        "cpu",
        "float32",
        4,
        0,
        0,
    )
    assert (est["input_size"], est["output_size"], est["frames"]) == ([64, 48], [128, 96], 40)
    assert (est["codec"], est["pix_fmt"]) == ("libx264", "yuv420p")
    # Calibration ran the engine on the first windows only, and the total scales past it.
    assert 8 <= est["calibration_frames"] < 40
    assert est["seconds_per_frame"] > 0 and est["peak_host_mb"] > 50
    expected = est["first_window_s"] + (40 - 4) * est["window_s_per_frame"] + 40 * est["flush_s_per_frame"]
    assert abs(est["estimated_s"] - expected) < 0.2
    assert est["seconds_per_frame"] == pytest.approx(
        est["window_s_per_frame"] + est["flush_s_per_frame"], abs=2e-4
    )


def test_dry_run_table_for_people(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=12, size=(64, 48))
    out = tmp_path / "up.mkv"
    out.write_bytes(b"old")
    args = ["upscale", str(clip), str(out), "-m", "bicubic", "-s", "2", "--compare", "side", "--dry-run"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for text in ("nothing was written", "256×96", "estimated time", "needs --overwrite"):
        assert text in result.output
    assert out.read_bytes() == b"old"


def test_calibration_cut_copies_the_first_packets(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=30, size=(64, 48))
    cut = copy_first_frames(clip, tmp_path / "cut.nut", 8)
    with av.open(str(clip)) as a, av.open(str(cut)) as b:
        original = [bytes(p) for p in a.demux(video=0) if p.size][:12]
        copied = [bytes(p) for p in b.demux(video=0) if p.size]
        rate = b.streams.video[0].average_rate
    assert copied == original  # 8 asked + 4 for reordering, byte for byte
    assert rate == 25


def test_calibration_covers_two_windows(tmp_path):
    upscaler = Upscaler(UpscaleSettings(scale=2, model="bicubic", device="cpu", window=6, overlap=2))
    assert calibration_length(upscaler.plan(None)) == 12  # 2 × 6, overlap 0 (bicubic is per frame)
    clip = make_clip(tmp_path / "short.mp4", frames=5, size=(32, 32))  # shorter than the calibration
    est = estimate(upscaler, clip, tmp_path / "o.mp4")
    assert est.calibration_frames == 5 and est.frames == 5
    assert est.estimated_s is not None and est.estimated_s <= est.calibration_s + 0.1


def test_a_range_estimates_only_its_frames(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=40, size=(32, 32))
    settings = UpscaleSettings(
        scale=2, model="bicubic", device="cpu", window=4, overlap=0, start="10f", end="30f"
    )
    est = estimate(Upscaler(settings), clip, tmp_path / "o.mp4")
    assert est.frames == 20 and est.calibration_frames >= 8
    assert not (tmp_path / "o.mp4").exists()


def host_peak_estimate(monkeypatch, tmp_path, loaded_mb: float, calibration_peak_mb: float, frames: int):
    """The dry-run's host peak for a clip of `frames` frames, when the process held `loaded_mb`
    before the calibration and `calibration_peak_mb` after it (figures of a real job); the
    calibration itself is a real one of two windows of 9 frames (bicubic), as for the tiny model."""
    from vsrup import estimate as estimate_module

    monkeypatch.setattr(estimate_module, "resident_mb", lambda: loaded_mb)
    monkeypatch.setattr(estimate_module, "peak_rss_mb", lambda: calibration_peak_mb)
    clip = make_clip(tmp_path / f"clip{frames}.mkv", frames=frames, size=(32, 16))
    upscaler = Upscaler(UpscaleSettings(model="bicubic", scale=2, device="cpu", window=9, overlap=0))
    est = estimate(upscaler, clip, tmp_path / "out.mkv")
    assert est.frames == frames
    return est.peak_host_mb


def test_host_peak_allows_for_the_heap_growth_of_a_long_run(tmp_path, monkeypatch):
    """Issue 17: 1380 MB estimated for a job whose peak was 1768 MB (/usr/bin/time -v; tiny ×4,
    289 frames, 180p → 720p): the heap grows for ~70 frames, a two-window calibration sees only part
    of it. The figures are that job's (250 MB loaded, 1337.6 MB after the calibration); the expected
    peak is the measured one, not the module's own formula."""
    peak = host_peak_estimate(monkeypatch, tmp_path, 250.0, 1337.6, frames=289)
    assert abs(peak - 1768) <= 0.15 * 1768, peak


def test_host_peak_of_a_short_clip_is_not_charged_a_long_runs_growth(tmp_path, monkeypatch):
    """Issue 25: on the 45-frame sample clip (tiny ×4) the dry run said 2.4-2.5 GB where runs peaked
    at 1826-1939 MB (/usr/bin/time -v, five runs). Its calibrations peaked at 1616-1866 MB over
    ~550 MB loaded (this machine is shared, and the peak moves with it): both ends must land
    within 15 % of the measured range."""
    for calibration_peak in (1866.0, 1616.0):
        peak = host_peak_estimate(monkeypatch, tmp_path, 550.0, calibration_peak, frames=45)
        assert 0.85 * 1826 <= peak <= 1.15 * 1939, (calibration_peak, peak)
