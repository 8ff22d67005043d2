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


@dataclass
class Damage:
    """What a damaged input lost, filled in by `read_frames` as it decodes: packets the decoder
    rejected and a read that failed (a truncated file). The frames around them are still decoded
    and the decoder flushed, so every frame that can be decoded is; none is ever made up."""

    errors: int = 0
    reason: str = ""  # the first error, in FFmpeg's words
    decoded: int = 0  # frames decoded (from the first frame asked for)
    expected: int | None = None  # frames the container promises (its index or header); None: unknown

    def note(self, reason: str) -> None:
        self.errors += 1
        self.reason = self.reason or reason

    def describe(self, path) -> str:
        """One line for the user: the input is damaged, and what was recovered."""
        missing = self.expected - self.decoded if self.expected and self.expected > self.decoded else None
        lost = f"{missing} could not be decoded" if missing else "the rest could not be decoded"
        of = f" of {self.expected}" if missing else ""
        return (
            f"input is damaged: {path}: {self.decoded}{of} frames recovered, {lost} "
            f"({self.reason or 'unreadable data'}); the output holds only the recovered frames"
        )


def to_8bit(image: np.ndarray) -> np.ndarray:
    """A frame's image as 8-bit RGB (16-bit samples rounded: 65535 → 255), for pictures and training."""
    return image if image.dtype == np.uint8 else (image.astype(np.float32) / 257.0).round().astype(np.uint8)


def read_frames(info: VideoInfo, first: int = 0, damage: Damage | None = None) -> Iterator[Frame]:
    """Decode the video from frame `first` on (by decode index), one frame at a time.

    From frame 0 the file is decoded straight through. From a later frame it seeks to the keyframe
    before it, so a late segment costs no more than an early one; if the seek does not land where
    the packet timestamps say (odd files), it decodes from the start and skips instead: slower,
    never wrong. Memory stays at one frame beyond what the decoder itself holds. Bad packets and a
    truncated end are decoded around and recorded in `damage` (without one, the first is an error).
    """
    start = last = None
    for last in _frames_from(info, first, damage):
        start = start or last
        yield last
    if last is not None:  # the whole rest was read: did the container promise more?
        _check_complete(info, start, last, damage)


def _frames_from(info: VideoInfo, first: int, damage: Damage | None) -> Iterator[Frame]:
    if first == 0:
        yield from _decode_all(info, damage)
        return
    next_index = first
    try:
        for frame in _seek_frames(info, first):
            yield frame
            next_index = frame.index + 1
    except _SeekMiss:
        for frame in _decode_all(info, damage):
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


def _decode_all(info: VideoInfo, damage: Damage | None = None) -> Iterator[Frame]:
    """Every frame, packet by packet: a packet the decoder rejects is skipped (the decoder goes on
    from the next one), a read that fails ends the file there, and the decoder is flushed either
    way. Slice threads, not frame threads: frame threading drops the frames in flight around a bad
    packet without a word (35 of the 37 decodable frames of a truncated sample clip)."""
    to_rgb = _converter(info)
    found = damage if damage is not None else Damage()
    with open_input(info.path, info.frame_rate) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        found.expected = video_frame_count(container, info)
        index = 0
        for decoded in _decode_packets(container, stream, found):
            yield Frame(index, decoded.pts, decoded.duration, to_rgb(decoded))
            index += 1
            found.decoded = index
    if found.errors and damage is None:
        raise InputError(f"corrupt video data in {info.path} after {index} frames: {found.reason}")
    if index == 0:
        raise InputError(f"no video frames could be decoded from {info.path}")


def _decode_packets(container, stream, damage: Damage) -> Iterator[av.VideoFrame]:
    packets = container.demux(stream)
    flushed = False
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:  # the file cannot be read on: decode what came before
            damage.note(ffmpeg_reason(exc))
            break
        if packet.is_corrupt:  # the demuxer knows it is cut short: the decoder may still use it
            damage.note("a packet is cut short")
        flushed = packet.size == 0
        try:
            yield from packet.decode()
        except av.error.FFmpegError as exc:
            damage.note(ffmpeg_reason(exc))
    if not flushed:
        try:
            yield from stream.codec_context.decode(None)
        except av.error.FFmpegError as exc:
            damage.note(ffmpeg_reason(exc))


def video_frame_count(container, info: VideoInfo) -> int | None:
    """The frames the container lists (an index such as MP4's counts them exactly), else None."""
    frames = container.streams.video[0].frames
    return frames or info.frames_estimate or None


class _SeekMiss(Exception):
    """The frames after a seek are not the ones the packet timestamps promised."""


def _seek_frames(info: VideoInfo, first: int) -> Iterator[Frame]:
    pts = video_pts(info.path)
    if first >= len(pts):
        return
    to_rgb = _converter(info)
    with open_input(info.path, info.frame_rate) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # as `_decode_all`: frame threads drop frames around bad data
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


def _check_complete(info: VideoInfo, start: Frame, last: Frame, damage: Damage | None) -> None:
    """A truncated file often decodes cleanly up to the cut (Matroska, WebM): if the video stream
    was declared to last more than about a frame longer than the decoded frames reach, frames are
    missing. With `damage` that makes the input damaged; without (callers that only look), a
    warning. A declared end at, or a frame past, the last frame's end is normal: containers differ
    on whether the duration counts the last frame (and VFR frames in AVI are odd lengths)."""
    if info.video_end is None or last.pts is None or start.pts is None:
        return
    base = info.time_base
    frame_seconds = 1 / float(info.frame_rate) if info.frame_rate else 0.0
    if last.index > start.index:  # the decoded frames' own average spacing (VFR)
        frame_seconds = max(frame_seconds, float((last.pts - start.pts) * base) / (last.index - start.index))
    shown = float(last.duration * base) if last.duration else frame_seconds
    missing = info.video_end - float(last.pts * base) - shown
    if missing <= max(frame_seconds, shown) + 0.001:  # a frame, and Matroska's millisecond rounding
        return
    reason = f"the file ends {missing:.2f} s before its video stream's declared end"
    if damage is None:
        log.warning("%s: decoded %d frames, but %s; it may be truncated", info.path, last.index + 1, reason)
        return
    damage.note(reason)
    damage.decoded = last.index + 1
    damage.expected = last.index + 1 + (round(missing / frame_seconds) if frame_seconds else 0) or None
