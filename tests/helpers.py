"""What many tests share: synthetic clips made with PyAV, decoding for comparisons, running the CLI
in this process. A plain module (`from helpers import make_clip`); pytest fixtures live in conftest.py."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
SAMPLE_CLIP = REPO / "examples" / "dog_320x180.mp4"


def pattern(index: int, width: int, height: int, depth: int = 8) -> np.ndarray:
    """A moving, textured RGB frame: gradients plus a sliding checker, so motion and detail exist."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    peak = (1 << depth) - 1
    r = (x + 3 * index) / max(width, 1)
    g = y / max(height, 1)
    b = (((x + 2 * index) // 6 + y // 6) % 2) * 0.6 + 0.2
    image = np.stack([r % 1.0, g, b], axis=-1)
    dtype = np.uint16 if depth > 8 else np.uint8
    return (image * peak).round().astype(dtype)


def make_clip(
    path: Path,
    frames: int = 10,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    audio: bool = False,
    ten_bit: bool = False,
    pts: list[int] | None = None,
    codec: str = "libx264",
    rotation: int = 0,
) -> Path:
    """Write a synthetic clip. `pts` (in 1/fps units... of time base 1/1000) makes it VFR."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p10le" if ten_bit else ("yuv420p" if codec != "ffv1" else "yuv444p")
        if pts is not None:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        stream.codec_context.color_primaries = 1
        stream.codec_context.color_trc = 1
        stream.codec_context.colorspace = 1
        a_stream = out.add_stream("aac", rate=48000) if audio else None
        for i in range(frames):
            image = pattern(i, width, height, 10 if ten_bit else 8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb48le" if ten_bit else "rgb24")
            frame = frame.reformat(format=stream.pix_fmt)
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            else:
                frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if a_stream is not None:
            write_tone(out, a_stream, seconds=frames / fps)
    return path


def write_tone(out, stream, seconds: float) -> None:
    rate, samples = 48000, 1024
    total = int(seconds * rate)
    t0 = 0
    while t0 < total:
        t = (np.arange(samples) + t0) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2, axis=0), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = rate, t0
        for packet in stream.encode(frame):
            out.mux(packet)
        t0 += samples
    for packet in stream.encode(None):
        out.mux(packet)


def write_rgb(path: Path, images: list[np.ndarray]) -> Path:
    """A lossless RGB video (FFV1 bgr0): decoding gives back the very same pixels."""
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        stream.time_base = Fraction(1, 25)
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="bgr0")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decode_all(path: Path) -> tuple[list[int], list[np.ndarray]]:
    """All video frames of a file with their pts (for comparisons)."""
    with av.open(str(path)) as c:
        pts, images = [], []
        for frame in c.decode(video=0):
            pts.append(frame.pts)
            images.append(frame.to_ndarray(format="rgb24"))
    return pts, images


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run `vsrup ARGS` in this process (so monkeypatches apply); return (exit code, stdout, stderr)."""
    from vsrup import cli

    monkeypatch.setattr(sys, "argv", ["vsrup", *args])
    monkeypatch.setitem(cli.state, "debug", False)
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def packet_bytes(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [bytes(p) for p in c.demux(*streams) if p.size] if streams else []


def interrupt_after_two_segments(monkeypatch) -> None:
    """--resume jobs: Ctrl-C as the second segment is listed (raised in the encoder thread,
    re-raised in the main one)."""
    from vsrup import resume

    finish = resume.SegmentedWriter._finish_segment

    def finish_then_interrupt(self):
        finish(self)
        if len(self.work.segments) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(resume.SegmentedWriter, "_finish_segment", finish_then_interrupt)


def crash_once(marker: Path, upscaler, task, reporter):
    """A `run_segment` for the split executors (`run_segment=partial(crash_once, marker)`): the first
    segment to create `marker` kills its own worker process, as a crash would; the worker must be
    started again and the segment retried. Every other segment runs as usual."""
    from vsrup.run.segmented import run_task

    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # atomic: one worker alone crashes
    except FileExistsError:
        return run_task(upscaler, task, reporter)
    os._exit(1)
