"""Image sequences in and out (issue 25): a folder of numbered images or a printf pattern is one
input, timed by --fps; a pattern output or --format png writes numbered images (16-bit for >8-bit
input) into a folder of their own, atomically, never over an existing one unasked."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import make_clip, pattern, run_cli

from vsrup.io.probe import probe
from vsrup.io.reader import read_frames
from vsrup.io.sequence import parse_fps
from vsrup.pipeline.runner import host_array, to_host
from vsrup.upscale import Upscaler, UpscaleSettings

BICUBIC = ["-m", "bicubic", "-s", "2", "--device", "cpu"]


def write_images(folder: Path, images: list[np.ndarray], name: str = "f_%04d.png", first: int = 1) -> Path:
    """Numbered PNGs (16-bit for uint16 images), written by FFmpeg's image2 muxer."""
    folder.mkdir(parents=True, exist_ok=True)
    deep = images[0].dtype == np.uint16
    with av.open(str(folder / name), "w", format="image2", options={"start_number": str(first)}) as out:
        stream = out.add_stream("png", rate=25)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "rgb48be" if deep else "rgb24"
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb48le" if deep else "rgb24")
            frame = frame.reformat(format=stream.pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return folder / name


def read_png(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        deep = frame.format.name.startswith("rgb48")
        return frame.to_ndarray(format="rgb48le" if deep else "rgb24")


def frames_of(images: int, depth: int = 8) -> list[np.ndarray]:
    return [pattern(i, 40, 30, depth) for i in range(images)]


@pytest.mark.parametrize("depth", [8, 16])
def test_the_reader_gives_a_sequences_own_pixels_and_times_it_by_fps(tmp_path, depth):
    images = frames_of(4, depth)
    spelled = write_images(tmp_path / "shot", images, first=7)
    info = probe(spelled, Fraction(24000, 1001))
    frames = list(read_frames(info))
    assert [f.pts for f in frames] == [0, 1, 2, 3] and info.time_base == Fraction(1001, 24000)
    assert info.frame_rate == Fraction(24000, 1001) and info.frames_estimate == 4
    for frame, image in zip(frames, images, strict=True):  # 16-bit samples come back as they were
        assert frame.image.dtype == image.dtype and np.array_equal(frame.image, image)


def test_a_folder_or_a_pattern_of_numbered_images_upscales_to_one_video(tmp_path, monkeypatch, capsys):
    write_images(tmp_path / "shot", frames_of(5), name="img%03d.png", first=0)
    (tmp_path / "shot" / "notes.txt").write_text("not an image: ignored")
    for source, fps, rate in (
        (tmp_path / "shot", [], 25),
        (tmp_path / "shot" / "img%03d.png", ["--fps", "30"], 30),
    ):
        target = tmp_path / f"out{rate}.mkv"
        code, _, err = run_cli(monkeypatch, capsys, "upscale", str(source), str(target), *BICUBIC, "-q", *fps)
        assert code == 0, err
        with av.open(str(target)) as c:
            stream = c.streams.video[0]
            times = [float(f.pts * f.time_base) for f in c.decode(stream)]
            assert (stream.width, stream.height) == (80, 60)
        assert times == pytest.approx([i / rate for i in range(5)], abs=1e-3)


def test_an_image_sequence_output_holds_the_upscaled_frames_in_16_bit_for_10_bit_input(
    tmp_path, monkeypatch, capsys
):
    clip = make_clip(tmp_path / "in.mkv", frames=3, ten_bit=True, codec="libx265")
    target = tmp_path / "frames"
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(clip), str(target), *BICUBIC, "--format", "png", "-q"
    )
    assert code == 0, err
    assert sorted(p.name for p in target.iterdir()) == ["000001.png", "000002.png", "000003.png"]
    upscaler = Upscaler(UpscaleSettings(scale=2, model="bicubic", device="cpu"))
    info = probe(clip)
    made = [
        host_array(to_host(image, frame.image.dtype))
        for frame, image in upscaler.stream(info, upscaler.plan(info))
    ]
    for i, expected in enumerate(made, start=1):
        written = read_png(target / f"{i:06d}.png")
        assert written.dtype == np.uint16 and np.array_equal(written, expected)
    assert np.any(made[0] % 257)  # truly 16-bit samples, not 8-bit ones widened
    # an input sequence keeps its names and numbers; a pattern output picks its own
    source = write_images(tmp_path / "shot", frames_of(2), first=41)
    code, _, _ = run_cli(
        monkeypatch,
        capsys,
        "upscale",
        str(tmp_path / "shot"),
        str(tmp_path / "x2"),
        *BICUBIC,
        "--format",
        "png",
        "-q",
    )
    assert code == 0 and sorted(p.name for p in (tmp_path / "x2").iterdir()) == ["f_0041.png", "f_0042.png"]
    code, _, _ = run_cli(
        monkeypatch, capsys, "upscale", str(source), str(tmp_path / "t" / "%02d.tif"), *BICUBIC, "-q"
    )
    assert code == 0 and sorted(p.name for p in (tmp_path / "t").iterdir()) == ["41.tif", "42.tif"]


def test_a_sequence_output_is_atomic_and_replaces_only_an_earlier_output(tmp_path, monkeypatch, capsys):
    from vsrup.io import sequence

    clip = make_clip(tmp_path / "in.mp4", frames=4)
    target = tmp_path / "new" / "frames" / "%04d.png"
    real_write = sequence.SequenceWriter.write

    def fail_on_third(self, pts, duration, image):
        if self.frames_written == 2:
            raise OSError(28, "No space left on device")
        real_write(self, pts, duration, image)

    monkeypatch.setattr(sequence.SequenceWriter, "write", fail_on_third)
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(clip), str(target), *BICUBIC, "-q")
    assert code == 4 and "No space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # no images, no temporary, no folder
    monkeypatch.setattr(sequence.SequenceWriter, "write", real_write)
    assert run_cli(monkeypatch, capsys, "upscale", str(clip), str(target), *BICUBIC, "-q")[0] == 0
    assert len(list(target.parent.iterdir())) == 4
    code, _, err = run_cli(monkeypatch, capsys, "upscale", str(clip), str(target), *BICUBIC, "-q")
    assert code == 4 and "output exists" in err and "--overwrite" in err
    (target.parent / "0001.png").write_bytes(b"older")
    assert (
        run_cli(monkeypatch, capsys, "upscale", str(clip), str(target), *BICUBIC, "-q", "--overwrite")[0] == 0
    )
    assert read_png(target.parent / "0001.png").shape == (96, 128, 3)  # replaced by this run's image
    (target.parent / "mine.txt").write_text("someone's notes")
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(clip), str(target), *BICUBIC, "-q", "--overwrite"
    )
    assert code == 4 and "holds other files (mine.txt)" in err and (target.parent / "mine.txt").exists()
    assert [p.name for p in target.parent.parent.iterdir()] == ["frames"]


def test_folders_are_sequences_or_batches_of_videos_never_both(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    write_images(project / "shotA", frames_of(3))
    write_images(project / "shotB", frames_of(2), name="%d.png", first=1)
    make_clip(project / "clip.mp4", frames=2)
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        monkeypatch,
        capsys,
        "upscale",
        str(project),
        str(out),
        *BICUBIC,
        "--suffix",
        "_x2",
        "--progress",
        "json",
    )
    assert code == 0, err
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["done"] == 3 and [f["frames"] for f in summary["files"]] == [2, 3, 2]
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert made == [
        "clip_x2.mp4",
        "shotA_x2/f_0001.png",
        "shotA_x2/f_0002.png",
        "shotA_x2/f_0003.png",
        "shotB_x2/1.png",
        "shotB_x2/2.png",
    ]
    # the same batch again skips every output, the image folders too
    code, stdout, _ = run_cli(
        monkeypatch,
        capsys,
        "upscale",
        str(project),
        str(out),
        *BICUBIC,
        "--suffix",
        "_x2",
        "--progress",
        "json",
        "--skip-existing",
    )
    assert code == 0 and json.loads(stdout.splitlines()[-1])["skipped"] == 3
    # videos beside numbered images: ambiguous, refused before any work
    make_clip(project / "shotA" / "stray.mp4", frames=2)
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(project / "shotA"), str(tmp_path / "o.mp4"), *BICUBIC
    )
    assert code == 2 and "holds both videos (stray.mp4) and numbered images (f_%04d.png)" in err
    # a gap would cut the video short: refused, as is a pattern that names nothing
    (project / "shotA" / "stray.mp4").unlink()
    (project / "shotA" / "f_0002.png").unlink()
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(project / "shotA"), str(tmp_path / "o.mp4"), *BICUBIC
    )
    assert code == 3 and "has a gap: f_0002.png is missing" in err
    code, _, err = run_cli(
        monkeypatch, capsys, "upscale", str(project / "x%03d.png"), str(tmp_path / "o.mp4"), *BICUBIC
    )
    assert code == 3 and "no images match" in err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("25", Fraction(25)),
        ("23.976", Fraction(24000, 1001)),
        ("30000/1001", Fraction(30000, 1001)),
        ("12.5", Fraction(25, 2)),
    ],
)
def test_fps_takes_decimals_fractions_and_the_ntsc_rates_exactly(text, rate):
    assert parse_fps(text) == rate


def test_contradictory_format_and_split_runs_of_sequences_are_refused_before_any_work(
    tmp_path, monkeypatch, capsys
):
    clip = make_clip(tmp_path / "in.mp4", frames=2)
    for output, extra, words in (
        ("o.mp4", ["--format", "png"], "--format png contradicts the output"),
        ("o/%04d.png", ["--format", "mkv"], "--format mkv contradicts the output"),
        ("o.mp4", ["--format", "gif"], "--format must be one of png, tiff, mp4"),
        ("o/%04d.png", ["--devices", "cpu,cpu"], "image sequences are upscaled by one process"),
        ("o/%04d.png", ["--resume"], "--resume keeps video segments"),
    ):
        code, _, err = run_cli(
            monkeypatch, capsys, "upscale", str(clip), str(tmp_path / output), *BICUBIC, *extra
        )
        assert code == 2 and words in err, (output, extra, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    code, _, _ = run_cli(
        monkeypatch, capsys, "upscale", str(clip), str(tmp_path / "o"), *BICUBIC, "--format", "mkv", "-q"
    )
    assert code == 0 and (tmp_path / "o.mkv").is_file()
