"""--resume: a job killed mid-run continues from its finished segments and ends with the very output
an uninterrupted run makes (frame count, timestamps, and pixels with a lossless codec)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import decode_all, interrupt_after_two_segments, make_clip, packet_bytes, run_cli

from vsrup import models, resume
from vsrup.io.writer import EncodeSettings
from vsrup.models.base import ModelDescription
from vsrup.models.bicubic import Bicubic
from vsrup.models.catalogue import ENTRIES, CatalogueEntry
from vsrup.progress import Reporter
from vsrup.run.jobs import plan_jobs
from vsrup.upscale import Upscaler, UpscaleSettings

TESTS = Path(__file__).resolve().parent
VFR_MS = [0, 40, 80, 130, 170, 200, 240, 290, 330, 360] * 4  # 40 frames, irregular steps
VFR_MS = [step + 400 * (i // 10) for i, step in enumerate(VFR_MS)]


class WindowDependent(Bicubic):
    """Bicubic plus an offset from the window's mean, so a frame shared by two windows blends two
    different outputs: resuming without re-running the window before the cut would show."""

    delay = 0.0  # seconds per window, to give a killer time to strike
    calls = 0

    @property
    def description(self) -> ModelDescription:
        # Its output depends on the whole window (context 1 each side): windows are blended.
        return super().description.but(name="window-dependent", neighbourhood=None, context=1)

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        WindowDependent.calls += 1
        time.sleep(self.delay)
        return (super().upscale(frames) + 0.3 * (frames.mean() - 0.4)).clamp(0, 1)


def load_window_dependent(scale, *_):
    return WindowDependent(scale)


def register_window_dependent(delay: float = 0.0) -> None:
    WindowDependent.delay = delay
    models.register("window-dependent", load_window_dependent)


def settings(**changes) -> UpscaleSettings:
    base = dict(model="window-dependent", scale=2, window=4, overlap=2, device="cpu")
    base["encode"] = EncodeSettings(codec="ffv1")
    return UpscaleSettings(**(base | changes))


# The killed job: a separate process, so that SIGKILL is a real kill (no cleanup of any kind).
_DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_resume as t
t.register_window_dependent(delay=0.05)
t.Upscaler(t.settings(resume=True, segment_frames=8)).upscale_file(Path({clip!r}), Path({target!r}))
"""


def manifest_segments(target: Path) -> list[dict]:
    try:
        return json.loads((resume.work_folder(target) / resume.MANIFEST).read_text())["segments"]
    except (OSError, ValueError):
        return []


def test_killed_job_resumes_to_the_uninterrupted_output(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "in.mkv", frames=len(VFR_MS), pts=VFR_MS)
    target = tmp_path / "out.mkv"
    driver = _DRIVER.format(tests=str(TESTS), clip=str(clip), target=str(target))
    process = subprocess.Popen([sys.executable, "-c", driver], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(manifest_segments(target)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    done = sum(s["frames"] for s in manifest_segments(target))
    assert 16 <= done < len(VFR_MS) and not target.exists()

    monkeypatch.setitem(
        ENTRIES, "window-dependent", CatalogueEntry("window-dependent", load_window_dependent)
    )
    WindowDependent.calls = 0
    result = Upscaler(settings(resume=True, segment_frames=8)).upscale_file(clip, target)
    resumed_calls = WindowDependent.calls
    WindowDependent.calls = 0
    Upscaler(settings()).upscale_file(clip, tmp_path / "whole.mkv")
    whole_calls = WindowDependent.calls

    assert result.frames == len(VFR_MS)
    pts, images = decode_all(target)
    whole_pts, whole_images = decode_all(tmp_path / "whole.mkv")
    assert pts == whole_pts == VFR_MS
    assert all(np.array_equal(a, b) for a, b in zip(images, whole_images, strict=True))
    # only the windows reaching past the finished frames ran again (stride 2, window 4)
    starts = range(0, len(VFR_MS) - 2, 2)
    assert whole_calls == len(starts)
    assert resumed_calls == sum(1 for s in starts if s + 4 > done) < whole_calls
    assert not resume.work_folder(target).exists()


def test_interrupted_mp4_with_audio_resumes_from_the_command_line(tmp_path, monkeypatch, capsys):
    clip = make_clip(tmp_path / "in.mp4", frames=30, audio=True)
    target = tmp_path / "out.mp4"
    interrupt_after_two_segments(monkeypatch)
    first = UpscaleSettings(model="bicubic", scale=2, resume=True, segment_frames=8)
    with pytest.raises(KeyboardInterrupt):
        Upscaler(first).upscale_file(clip, target)
    monkeypatch.undo()
    work = resume.work_folder(target)
    assert not target.exists()
    assert sorted(p.name for p in work.iterdir()) == ["00000.nut", "00001.nut", "manifest.json"]

    args = ["upscale", str(clip), str(target), "-m", "bicubic", "-s", "2", "--progress", "json"]
    code, _, err = run_cli(monkeypatch, capsys, *args, "--resume")
    assert code == 0, err
    assert run_cli(monkeypatch, capsys, *args[:-2], "-q", "--resume")[0] == 4  # output exists now
    assert run_cli(monkeypatch, capsys, "upscale", str(clip), str(tmp_path / "plain.mp4"), "-m", "bicubic",
                   "-s", "2", "-q")[0] == 0  # fmt: skip
    pts, images = decode_all(target)
    plain_pts, plain_images = decode_all(tmp_path / "plain.mp4")
    assert len(pts) == 30 and pts == plain_pts
    # x264 in four segments is not bit-identical to one encode, but it is the same picture: about 1-4
    # grey levels apart per pixel on average, where a frame off by one would be about 25 apart
    error = max(
        np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(images, plain_images, strict=True)
    )
    assert error < 6.0
    assert packet_bytes(target, "audio") == packet_bytes(clip, "audio")
    assert not work.exists()


def test_changed_settings_start_over(tmp_path, monkeypatch, caplog):
    clip = make_clip(tmp_path / "in.mkv", frames=20)
    target = tmp_path / "out.mkv"
    interrupt_after_two_segments(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        Upscaler(UpscaleSettings(model="bicubic", scale=2, resume=True, segment_frames=4)).upscale_file(
            clip, target
        )
    monkeypatch.undo()
    (resume.work_folder(target) / "partial.nut").write_bytes(b"debris of a killed run")
    with caplog.at_level(logging.WARNING):
        result = Upscaler(UpscaleSettings(model="bicubic", scale=4, resume=True)).upscale_file(clip, target)
    assert "settings or input differ" in caplog.text
    _, images = decode_all(target)
    assert result.frames == 20 and len(images) == 20 and images[0].shape == (192, 256, 3)


def test_debris_of_a_killed_run_is_dropped_and_listed_segments_kept(tmp_path):
    key = {"input": "x"}
    work = resume.ResumeFolder.open(tmp_path / "o.mp4", key)
    scratch = work.path / "partial.nut"
    scratch.write_bytes(b"a whole segment")
    work.add(scratch, frames=8)
    (work.path / "partial.nut").write_bytes(b"half a segment")
    (work.path / "00001.nut").write_bytes(b"renamed, but killed before it was listed")
    again = resume.ResumeFolder.open(tmp_path / "o.mp4", key)
    assert again.frames_done == 8
    assert sorted(p.name for p in again.path.iterdir()) == ["00000.nut", "manifest.json"]
    assert (again.path / "00000.nut").read_bytes() == b"a whole segment"


def test_batch_never_takes_resume_folders_as_inputs(tmp_path):
    make_clip(tmp_path / "a.mp4", frames=2)
    leftover = resume.work_folder(tmp_path / "b.mp4")
    leftover.mkdir()
    make_clip(leftover / "00000.mp4", frames=2)
    assert [j.source.name for j in plan_jobs([tmp_path], tmp_path / "out")] == ["a.mp4"]


def test_crash_while_joining_reruns_only_the_join(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "in.mkv", frames=12)
    target = tmp_path / "out.mkv"
    monkeypatch.setitem(
        ENTRIES, "window-dependent", CatalogueEntry("window-dependent", load_window_dependent)
    )
    monkeypatch.setattr(WindowDependent, "delay", 0.0)

    def crash(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("vsrup.upscale.concat_segments", crash)
        with pytest.raises(KeyboardInterrupt):
            Upscaler(settings(resume=True, segment_frames=5)).upscale_file(clip, target)
    assert [s["frames"] for s in manifest_segments(target)] == [5, 5, 2] and not target.exists()
    WindowDependent.calls = 0
    reporter = _Recorder()
    result = Upscaler(settings(resume=True, segment_frames=5)).upscale_file(clip, target, reporter)
    assert WindowDependent.calls == 0  # every frame was already in a finished segment
    assert result.frames == 12 and len(decode_all(target)[0]) == 12
    assert reporter.messages == ["in.mkv: resuming after 12 finished frames"]


class _Recorder(Reporter):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


def test_unfinished_work_is_pointed_out_when_resume_is_not_given(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "in.mkv", frames=6)
    target = tmp_path / "out.mkv"
    interrupt_after_two_segments(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        Upscaler(UpscaleSettings(model="bicubic", scale=2, resume=True, segment_frames=2)).upscale_file(
            clip, target
        )
    monkeypatch.undo()
    reporter = _Recorder()
    Upscaler(UpscaleSettings(model="bicubic", scale=2)).upscale_file(clip, target, reporter)
    assert reporter.messages == [
        f"note: {resume.work_folder(target)} holds unfinished work for this output; --resume would use it"
    ]
    assert len(decode_all(target)[0]) == 6


def test_resumed_run_keeps_the_earlier_runs_automatic_plan(tmp_path, monkeypatch):
    """The first run planned a longer window (as a roomier GPU would); the rerun plans the default
    but must finish with the first run's window, or its frames would not match the finished ones."""
    import dataclasses

    from vsrup import upscale as upscale_module

    register_window_dependent()
    clip = make_clip(tmp_path / "in.mkv", frames=40)
    target = tmp_path / "out.mkv"
    real_plan = upscale_module.make_plan

    def roomy(*args, **kwargs):
        return dataclasses.replace(real_plan(*args, **kwargs), window=12)

    monkeypatch.setattr(upscale_module, "make_plan", roomy)
    interrupt_after_two_segments(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        Upscaler(settings(window=None, resume=True, segment_frames=8)).upscale_file(clip, target)
    assert json.loads((resume.work_folder(target) / resume.MANIFEST).read_text())["plan"]["window"] == 12
    monkeypatch.undo()
    register_window_dependent()

    resumed = Upscaler(settings(window=None, resume=True, segment_frames=8))
    assert resumed.upscale_file(clip, target).plan.window == 12
    Upscaler(settings(window=12)).upscale_file(clip, tmp_path / "w12.mkv")
    Upscaler(settings(window=None)).upscale_file(clip, tmp_path / "w8.mkv")
    images, w12, w8 = (decode_all(p)[1] for p in (target, tmp_path / "w12.mkv", tmp_path / "w8.mkv"))
    assert all(np.array_equal(a, b) for a, b in zip(images, w12, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(images, w8, strict=True))  # the check can fail


def test_segments_are_a_minute_of_work_and_a_resumed_run_reports_only_its_own_speed(
    tmp_path, monkeypatch, capsys
):
    """Issue 17: segments are cut by time of work, not every 240 frames (minutes at 180p ×4 on a
    CPU), so Ctrl-C keeps what it says it keeps; the resumed run's fps counts only its own frames."""
    register_window_dependent(delay=0.1)  # 2 new frames per window: about 20 frames/s at most
    monkeypatch.setattr(resume, "SEGMENT_SECONDS", 0.25)  # "a minute", scaled down
    clip = make_clip(tmp_path / "in.mkv", frames=len(VFR_MS), pts=VFR_MS)
    target = tmp_path / "out.mkv"
    args = ["upscale", str(clip), str(target), "-m", "window-dependent", "-s", "2", "--window", "4",
            "--overlap", "2", "--device", "cpu", "--codec", "ffv1"]  # fmt: skip
    interrupt_after_two_segments(monkeypatch)
    code, _, err = run_cli(monkeypatch, capsys, *args, "-q", "--resume")
    kept = sum(s["frames"] for s in manifest_segments(target))
    assert code == 130 and 0 < kept < len(VFR_MS)
    assert err.strip() == (
        f"vsrup: error: interrupted; no partial output was left behind; {kept} finished frames are "
        "kept: rerun with --resume to continue"
    )
    monkeypatch.setattr(resume.SegmentedWriter, "_finish_segment", _plain_finish)
    code, out, err = run_cli(monkeypatch, capsys, *args, "--progress", "json", "--resume")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[0]["stage"] == "resumed" and progress[0]["frames_done"] == kept
    assert progress[0]["fps"] is None and progress[0]["eta_s"] is None  # no frame of this run yet
    assert all(e["fps"] < 40 for e in progress[1:])  # was kept / a few ms: hundreds of thousands
    assert progress[-1]["frames_done"] == len(VFR_MS) and events[-1]["frames"] == len(VFR_MS)


_plain_finish = resume.SegmentedWriter._finish_segment


def test_ctrl_c_before_the_first_segment_promises_nothing_and_the_rerun_starts_quietly(
    tmp_path, monkeypatch, capsys, caplog
):
    register_window_dependent()
    clip = make_clip(tmp_path / "in.mkv", frames=12)
    target = tmp_path / "out.mkv"
    args = ["upscale", str(clip), str(target), "-m", "window-dependent", "-s", "2", "--window", "4",
            "--overlap", "2", "--device", "cpu", "--codec", "ffv1", "-q", "--resume"]  # fmt: skip
    real = WindowDependent.upscale

    def stop_at_third_window(self, frames, tile=0):
        if WindowDependent.calls == 2:
            raise KeyboardInterrupt
        return real(self, frames, tile)

    WindowDependent.calls = 0
    monkeypatch.setattr(WindowDependent, "upscale", stop_at_third_window)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 130 and "no segment was finished yet" in err and "are kept" not in err
    assert not resume.work_folder(target).exists()  # nothing finished: no empty job folder is left
    monkeypatch.setattr(WindowDependent, "upscale", real)
    with caplog.at_level(logging.WARNING):
        code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and err == "" and "unusable" not in caplog.text
    assert len(decode_all(target)[0]) == 12
