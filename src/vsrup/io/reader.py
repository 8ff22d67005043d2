"""The only video decoder: frames in presentation order, each with its index, pts and duration.

Every command that looks at pixels (upscale, segments, resume, preview, estimate, bench, eval,
training) reads through `read_frames`, so all of them see the same RGB: the stream's own matrix
and range (untagged video guessed by size, as players do), 16-bit samples for >8-bit input.
Timestamps are sacred: a frame's pts goes in with it and comes out with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from vsrup.errors import InputError
from vsrup.io.probe import VideoInfo, color_range_of, ffmpeg_reason, open_input, rgb_matrix, video_pts

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One decoded frame: an RGB image (uint8, or uint16 for >8-bit input) and its timing."""

    index: int
    pts: int | None
    duration: int | None
    image: np.ndarray  # (H, W, 3)


def read_frames(info: VideoInfo, first: int = 0) -> Iterator[Frame]:
    """Decode the video from frame `first` on (by decode index), one frame at a time.

    From frame 0 the file is decoded straight through. From a later frame it seeks to the keyframe
    before it, so a late segment costs no more than an early one; if the seek does not land where
    the packet timestamps say (odd files), it decodes from the start and skips instead: slower,
    never wrong. Memory stays at one frame beyond what the decoder itself holds.
    """
    if first == 0:
        yield from _decode_all(info)
        return
    next_index = first
    try:
        for frame in _seek_frames(info, first):
            yield frame
            next_index = frame.index + 1
    except _SeekMiss:
        for frame in _decode_all(info):
            if frame.index >= next_index:
                yield frame


def _converter(info: VideoInfo):
    """frame → RGB ndarray with the video's matrix and range (the one conversion of the project)."""
    rgb_format = "rgb48le" if info.bit_depth > 8 else "rgb24"
    matrix, color_range = rgb_matrix(info), color_range_of(info)

    def to_rgb(frame: av.VideoFrame) -> np.ndarray:
        return frame.reformat(
            format=rgb_format, src_colorspace=matrix, src_color_range=color_range
        ).to_ndarray()

    return to_rgb


def _decode_all(info: VideoInfo) -> Iterator[Frame]:
    to_rgb = _converter(info)
    with open_input(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                yield Frame(index, frame.pts, frame.duration, to_rgb(frame))
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(
                f"corrupt video data in {info.path} after {index} frames: {ffmpeg_reason(exc)}"
            ) from None
    if index == 0:
        raise InputError(f"no video frames could be decoded from {info.path}")
    _warn_if_short(info, index)


class _SeekMiss(Exception):
    """The frames after a seek are not the ones the packet timestamps promised."""


def _seek_frames(info: VideoInfo, first: int) -> Iterator[Frame]:
    pts = video_pts(info.path)
    if first >= len(pts):
        return
    to_rgb = _converter(info)
    with open_input(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            container.seek(pts[first], stream=stream, backward=True, any_frame=False)
            index = first
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise _SeekMiss("frame without pts")
                if frame.pts < pts[first]:
                    continue  # between the keyframe and the first wanted frame
                if index >= len(pts) or frame.pts != pts[index]:
                    raise _SeekMiss(index)
                yield Frame(index, frame.pts, frame.duration, to_rgb(frame))
                index += 1
        except av.error.FFmpegError as exc:
            raise _SeekMiss(str(exc)) from None


def _warn_if_short(info: VideoInfo, decoded: int) -> None:
    """A truncated file often decodes cleanly up to the cut: say so rather than end quietly short.

    Only a warning: edit lists and odd muxers make header counts disagree with legal files too.
    """
    expected = info.frames_estimate
    if expected and decoded < 0.9 * expected - 2:
        log.warning(
            "%s: decoded %d frames but its header suggests %d; the file may be truncated",
            info.path,
            decoded,
            expected,
        )
