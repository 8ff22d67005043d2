"""`--devices`: one worker process per device, segments from a queue, one merged progress stream."""

from __future__ import annotations

import contextlib
import io
import json
from functools import partial

import numpy as np
import pytest
from helpers import crash_once, decode_all, make_clip, packet_bytes

import vsrup.run
from vsrup.errors import BatchError, DeviceError, UsageError
from vsrup.io.writer import EncodeSettings
from vsrup.progress import JsonReporter, Reporter
from vsrup.run import upscale_paths
from vsrup.run.devices import DevicesExecutor, parse_devices
from vsrup.run.jobs import Job
from vsrup.run.segmented import SegmentedExecutor
from vsrup.upscale import Upscaler, UpscaleSettings


def upscale_parallel(source, target, settings, devices, reporter=None):
    """One file on several devices; its outcome."""
    [outcome] = upscale_paths([source, target], settings, reporter or Reporter(), devices=devices)
    return outcome


def upscale_devices(paths, settings, devices, reporter=None, suffix=""):
    return upscale_paths(paths, settings, reporter or Reporter(), suffix, devices=devices)


def settings(**kw) -> UpscaleSettings:
    return UpscaleSettings(
        scale=2, model="bicubic", window=4, overlap=2, device="cpu", encode=EncodeSettings(codec="ffv1"), **kw
    )


def test_parse_devices_lists_and_rejects():
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    assert parse_devices(" cuda:0, cuda:1 ") == ["cuda:0", "cuda:1"]
    for bad in ("", "tpu:0", ",,"):
        with pytest.raises(UsageError):
            parse_devices(bad)


def test_two_cpu_workers_equal_a_single_run_with_one_progress_stream(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=20, audio=True)
    whole = Upscaler(settings()).upscale_file(src, tmp_path / "whole.mkv").output
    events = io.StringIO()
    result = upscale_parallel(src, tmp_path / "par.mkv", settings(), ["cpu", "cpu"], JsonReporter(events))
    assert result.status == "done" and result.frames == 20
    whole_pts, whole_images = decode_all(whole)
    par_pts, par_images = decode_all(result.target)
    assert par_pts == whole_pts and len(par_pts) == 20
    assert all(np.array_equal(a, b) for a, b in zip(whole_images, par_images, strict=True))
    assert packet_bytes(result.target, "audio") == packet_bytes(src, "audio") != []
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    done = [e["frames_done"] for e in lines if e["event"] == "progress"]
    assert lines[0] == {"event": "start", "file": str(src), "frames_total": 20}
    assert done == sorted(done) and done[-1] == 20
    assert lines[-1]["event"] == "finish" and lines[-1]["frames"] == 20
    assert len(done) >= 6  # 3 segments per worker, each reporting as it goes
    assert not list(tmp_path.glob(".*vsrup-segments*"))  # the scratch folder is gone


def test_a_worker_that_cannot_start_fails_the_run_with_its_error(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=8)
    with pytest.raises(DeviceError, match="cuda:7 was requested but no CUDA GPU is available"):
        upscale_parallel(src, tmp_path / "out.mkv", settings(), ["cuda:7"])
    assert not (tmp_path / "out.mkv").exists()


def test_a_batch_folder_shares_one_worker_pool_and_records_a_bad_file(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=9)
    make_clip(folder / "b.mkv", frames=7, size=(48, 32))
    (folder / "c.mp4").write_bytes(b"not a video")
    with pytest.raises(BatchError, match="1 of 3"):
        upscale_devices([folder, tmp_path / "out"], settings(), "cpu,cpu")
    for name, frames in (("a.mp4", 9), ("b.mkv", 7)):
        reference = Upscaler(settings()).upscale_file(folder / name, tmp_path / f"ref_{name}").output
        ref_pts, ref_images = decode_all(reference)
        out_pts, out_images = decode_all(tmp_path / "out" / name)
        assert out_pts == ref_pts and len(out_pts) == frames
        assert all(np.array_equal(a, b) for a, b in zip(ref_images, out_images, strict=True))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "b.mkv"]


def test_a_worker_that_dies_is_started_again_and_its_segment_retried(tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=10, audio=True)
    whole = Upscaler(settings()).upscale_file(src, tmp_path / "whole.mkv").output
    marker = tmp_path / "crashed"
    executor = DevicesExecutor(settings(), ["cpu"], run_segment=partial(crash_once, marker))
    events = io.StringIO()
    [result] = executor.run([Job(src, tmp_path / "out.mkv")], JsonReporter(events), single=True)
    assert marker.exists() and result.status == "done" and result.frames == 10
    assert decode_all(result.target)[0] == decode_all(whole)[0]
    assert all(
        np.array_equal(a, b) for a, b in zip(decode_all(whole)[1], decode_all(result.target)[1], strict=True)
    )
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    assert any(e["event"] == "message" and "worker died" in e["text"] for e in lines)
    assert max(e["frames_done"] for e in lines if e["event"] == "progress") == 10


class _StoppedPool:
    """Workers that are stopped by Ctrl-C before they finish anything."""

    size = 2

    def run(self, tasks, works, meter, reporter):
        self.works = works
        raise KeyboardInterrupt


class _InterruptedExecutor(SegmentedExecutor):
    def __init__(self, settings):
        super().__init__(settings)
        self.pool = _StoppedPool()

    @contextlib.contextmanager
    def workers(self):
        try:
            yield self.pool
        finally:  # the segment files must still be there while workers may be writing them
            self.pool.scratch_at_stop = [work.scratch.is_dir() for work in self.pool.works]


def test_ctrl_c_in_a_split_batch_marks_every_file_unfinished_and_removes_its_segments(tmp_path, monkeypatch):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        make_clip(folder / name, frames=6)
    executor = _InterruptedExecutor(settings())
    monkeypatch.setattr(vsrup.run, "make_executor", lambda *args: executor)
    events = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        upscale_devices([folder, tmp_path / "out"], settings(), "cpu,cpu", JsonReporter(events))
    summary = json.loads(events.getvalue().splitlines()[-1])
    # Files run side by side: none had "not started" while another ran.
    assert summary["event"] == "summary" and (summary["unfinished"], summary["not_started"]) == (3, 0)
    assert executor.pool.scratch_at_stop == [True, True, True]
    assert not list((tmp_path / "out").glob(".*vsrup-segments*"))
