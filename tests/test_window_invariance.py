"""DLoRAL and OSEDiff through `vsrup upscale` (fp32, lossless FFV1 RGB): the same frames for every
window, any overlap, any --start/--end part, a resumed job and a --devices split — each frame t
made from frames t-1 and t (DLoRAL) or t alone (OSEDiff), as in the official code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import decode_all, interrupt_after_two_segments, write_rgb
from test_shots import shot_a
from tiny_sd import write_dloral_pkl, write_osediff_pkl, write_sd21_base

from vsrup.errors import UsageError
from vsrup.io.writer import EncodeSettings
from vsrup.models.convert import convert
from vsrup.pipeline.span import FrameRange
from vsrup.progress import Reporter
from vsrup.run import upscale_paths
from vsrup.upscale import Upscaler, UpscaleSettings

FRAMES = 9
LOSSLESS = EncodeSettings(codec="ffv1", pix_fmt="bgr0")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Tiny random DLoRAL and OSEDiff bundles in fp32, told not to enlarge tiny test frames."""
    root = tmp_path_factory.mktemp("bundles")
    files = write_sd21_base(root / "src")
    files["model.pkl"] = write_dloral_pkl(root / "src" / "model.pkl")
    files["osediff.pkl"] = write_osediff_pkl(root / "src" / "osediff.pkl")
    made = {}
    for name in ("dloral", "osediff"):
        bundle = convert(name, files, root / name, dtype="fp32")
        config = json.loads((bundle / "config.json").read_text())
        (bundle / "config.json").write_text(json.dumps({**config, "process_size": 0}))
        made[name] = bundle
    return made


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_rgb(tmp_path_factory.mktemp("clip") / "in.mkv", [shot_a(i)[:16, :24] for i in range(FRAMES)])


def frames_of(path: Path) -> list[np.ndarray]:
    return decode_all(path)[1]


def run(
    bundle: Path, clip: Path, target: Path, span: FrameRange | None = None, **settings
) -> list[np.ndarray]:
    options = dict(model=str(bundle), scale=4, device="cpu", dtype="fp32", encode=LOSSLESS) | settings
    Upscaler(UpscaleSettings(**options)).upscale_file(clip, target, frame_range=span)
    return frames_of(target)


@pytest.mark.parametrize("name", ["dloral", "osediff"])
def test_every_windowing_gives_the_same_frames(bundles, clip, tmp_path, name, monkeypatch):
    reference = run(bundles[name], clip, tmp_path / "w2.mkv", window=2)
    assert len(reference) == FRAMES
    for window, overlap in ((3, 0), (5, 4), (8, 2)):
        got = run(bundles[name], clip, tmp_path / f"w{window}o{overlap}.mkv", window=window, overlap=overlap)
        assert all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True)), (window, overlap)
    part = run(bundles[name], clip, tmp_path / "part.mkv", FrameRange(3, 7), window=4)
    assert all(np.array_equal(a, b) for a, b in zip(part, reference[3:7], strict=True))
    # --resume: stopped after two segments of 2 frames, then finished
    resumable = dict(window=4, resume=True, segment_frames=2)
    interrupt_after_two_segments(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(bundles[name], clip, tmp_path / "resumed.mkv", **resumable)
    monkeypatch.undo()
    resumed = run(bundles[name], clip, tmp_path / "resumed.mkv", **resumable)
    assert all(np.array_equal(a, b) for a, b in zip(resumed, reference, strict=True))


def test_a_devices_split_gives_the_same_frames(bundles, clip, tmp_path):
    settings = UpscaleSettings(
        model=str(bundles["dloral"]), scale=4, device="cpu", dtype="fp32", encode=LOSSLESS
    )
    # Each of the two CPU workers runs one torch thread; so does this whole run, since a
    # convolution's sums are ordered by its thread count (that, not the split, would differ).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = run(bundles["dloral"], clip, tmp_path / "whole.mkv", window=3)
    finally:
        torch.set_num_threads(threads)
    upscale_paths([clip, tmp_path / "split.mkv"], settings, Reporter(), devices=["cpu", "cpu"])
    split = frames_of(tmp_path / "split.mkv")
    assert all(np.array_equal(a, b) for a, b in zip(split, whole, strict=True))


def test_reference_postprocess_truncates_as_the_official_code(bundles, clip, tmp_path):
    rounded = run(bundles["osediff"], clip, tmp_path / "rounded.mkv", window=2)
    truncated = run(
        bundles["osediff"], clip, tmp_path / "truncated.mkv", window=2, reference_postprocess=True
    )
    diff = np.stack(rounded).astype(float) - np.stack(truncated)
    assert 0.2 < diff.mean() < 0.8 and np.abs(diff).max() <= 3  # half a level lower, on average
    with pytest.raises(UsageError, match="--reference-postprocess does not apply to the bicubic model"):
        Upscaler(UpscaleSettings(model="bicubic", device="cpu", reference_postprocess=True))
