"""Benchmark clips: a real clip resized and looped to any size and length, or a synthetic pattern."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from vsrup.errors import InputError


def _frames_of(path: Path):
    """The source's frames as video frames, read by vsrup's one reader (so with its colours)."""
    import av

    from vsrup.io.probe import probe
    from vsrup.io.reader import read_frames

    for frame in read_frames(probe(path)):
        yield av.VideoFrame.from_ndarray(frame.image, format="rgb24")


def make_clip(path: Path, frames: int, size: tuple[int, int] | None, source: Path | None) -> Path:
    """Write an H.264 clip of `frames` frames at `size`: `source`'s frames, resized and looped
    (so the content is real video), or a moving synthetic pattern when there is no source."""
    import av
    import numpy

    if source is not None and not source.exists():
        raise InputError(f"benchmark clip not found: {source}")
    rate = Fraction(25)
    if source is not None:
        from vsrup.io.probe import probe

        info = probe(source)
        rate = info.frame_rate or rate
        width, height = size or (info.width, info.height)
    else:
        width, height = size or (320, 180)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18"}
        written = 0
        while written < frames:
            if source is not None:
                pictures = (
                    f.reformat(width=width, height=height, format="yuv420p") for f in _frames_of(source)
                )
            else:
                pictures = (_pattern(i, width, height, numpy) for i in range(frames))
            for picture in pictures:
                if written == frames:
                    break
                # One tick per frame in the new stream's own time base: a source frame still carries
                # its old time base, and mixing them made duplicate timestamps after ~500 frames.
                picture.pts, picture.time_base = written, 1 / rate
                for packet in stream.encode(picture):
                    out.mux(packet)
                written += 1
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _pattern(index: int, width: int, height: int, numpy):
    import av

    y, x = numpy.mgrid[0:height, 0:width].astype(numpy.float32)
    image = numpy.stack(
        [((x + 3 * index) / width) % 1.0, y / height, (((x + 2 * index) // 6 + y // 6) % 2) * 0.6 + 0.2], -1
    )
    rgb = (image * 255).round().astype(numpy.uint8)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def clip_size(path: Path) -> tuple[int, int, int]:
    from vsrup.io.probe import probe

    info = probe(path)
    return info.width, info.height, info.frames_estimate or 0
