"""`--devices`: one worker process per device, segments from a queue, one merged progress stream."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from helpers import decode_all, make_clip, packet_bytes

from vsrup.errors import BatchError, DeviceError, UsageError
from vsrup.io.writer import EncodeSettings
from vsrup.progress import JsonReporter, Reporter
from vsrup.run import upscale_paths
from vsrup.run.devices import parse_devices
from vsrup.run.segmented import CRASH_ONCE_ENV
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


def test_a_worker_that_dies_is_started_again_and_its_segment_retried(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "in.mkv", frames=10, audio=True)
    whole = Upscaler(settings()).upscale_file(src, tmp_path / "whole.mkv").output
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))  # the first segment kills its worker
    events = io.StringIO()
    result = upscale_parallel(src, tmp_path / "out.mkv", settings(), ["cpu"], JsonReporter(events))
    assert marker.exists() and result.status == "done" and result.frames == 10
    assert decode_all(result.target)[0] == decode_all(whole)[0]
    assert all(
        np.array_equal(a, b) for a, b in zip(decode_all(whole)[1], decode_all(result.target)[1], strict=True)
    )
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    assert any(e["event"] == "message" and "worker died" in e["text"] for e in lines)
    assert max(e["frames_done"] for e in lines if e["event"] == "progress") == 10
