"""`--ray`: segments and batch files as Ray tasks on a local 2-CPU Ray equal single-process runs,
also when a worker process dies mid-task. Skipped where Ray is not installed."""

from __future__ import annotations

import io
import json
import shutil
from functools import partial

import helpers
import numpy as np
import pytest
from helpers import crash_once, decode_all, make_clip, packet_bytes

from vsrup.errors import BatchError
from vsrup.io.writer import EncodeSettings
from vsrup.progress import JsonReporter, Reporter
from vsrup.run import ray as cluster
from vsrup.run import upscale_paths
from vsrup.run.jobs import Job
from vsrup.upscale import Upscaler, UpscaleSettings

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the whole module: starting it takes seconds."""
    cluster.connect()
    assert ray.cluster_resources().get("CPU") == cluster.LOCAL_CPUS
    yield
    ray.shutdown()


def settings() -> UpscaleSettings:
    return UpscaleSettings(
        scale=2, model="bicubic", window=4, overlap=2, device="cpu", encode=EncodeSettings(codec="ffv1")
    )


def assert_same_video(a, b, frames: int) -> None:
    a_pts, a_images = decode_all(a)
    b_pts, b_images = decode_all(b)
    assert a_pts == b_pts and len(a_pts) == frames
    assert all(np.array_equal(x, y) for x, y in zip(a_images, b_images, strict=True))


@pytest.fixture
def helpers_by_value():
    """Ray workers cannot import the tests' `helpers` module: ship its functions by value."""
    ray.cloudpickle.register_pickle_by_value(helpers)
    yield
    ray.cloudpickle.unregister_pickle_by_value(helpers)


def test_a_clip_on_ray_equals_one_run_even_when_a_worker_dies(tmp_path, helpers_by_value):
    src = make_clip(tmp_path / "in.mp4", frames=20, audio=True)
    whole = Upscaler(settings()).upscale_file(src, tmp_path / "whole.mkv").output
    marker = tmp_path / "crashed"
    executor = cluster.RayExecutor(settings(), "local", run_segment=partial(crash_once, marker))
    events = io.StringIO()
    [outcome] = executor.run([Job(src, tmp_path / "ray.mkv")], JsonReporter(events), single=True)
    assert marker.exists()  # a worker did die, and its task was retried on the restarted actor
    assert outcome.status == "done" and outcome.frames == 20
    assert_same_video(whole, tmp_path / "ray.mkv", 20)
    assert packet_bytes(tmp_path / "ray.mkv", "audio") == packet_bytes(src, "audio") != []
    assert not list(tmp_path.glob(".*vsrup-segments*"))
    # One progress stream: never past the total, though the retried task reported again.
    done = [
        e["frames_done"] for e in map(json.loads, events.getvalue().splitlines()) if e["event"] == "progress"
    ]
    assert done == sorted(done) and done[-1] == 20 and len(done) >= 3


def test_a_batch_folder_on_ray_equals_single_runs_and_records_a_bad_file(tmp_path):
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    make_clip(folder / "a.mp4", frames=9)
    make_clip(folder / "sub" / "b.mkv", frames=13, size=(48, 32))
    (folder / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(BatchError, match="1 of 3"):
        upscale_paths([folder, tmp_path / "out"], settings(), Reporter(), "_x2", ray_address="local")
    single = tmp_path / "single"
    single.mkdir()
    for name, frames in (("a.mp4", 9), ("sub/b.mkv", 13)):
        reference = Upscaler(settings()).upscale_file(folder / name, single / name.replace("/", "_")).output
        stem, ext = name.rsplit(".", 1)
        assert_same_video(reference, tmp_path / "out" / f"{stem}_x2.{ext}", frames)
    assert not (tmp_path / "out" / "broken_x2.mp4").exists()
    shutil.rmtree(folder)
