"""What a video file holds, read without decoding it: streams, size, timing and colour tags.

`probe` is the one place that opens a file to learn its facts; `video_pts` lists the presentation
timestamps from the packets alone (for --start/--end, segments and the preview's seek).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import ColorRange, Colorspace

from vsrup.errors import InputError
from vsrup.io.sequence import find_sequence, is_pattern
from vsrup.io.timecode import read_timecode

# AVColorSpace code → the swscale matrix that converts it to RGB.
_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.SMPTE170M}
_MATRIX |= {7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
_FULL_RANGE, _LIMITED_RANGE = 2, 1  # AVCOL_RANGE_JPEG, AVCOL_RANGE_MPEG
_BT709, _SMPTE170M = 1, 6  # the same code for primaries, transfer and matrix
_UNSPECIFIED = (0, 2, 3)  # reserved, unspecified, reserved
# Matrix code → the (primaries, transfer) codes that usually go with it.
_USUAL_PRIMARIES_TRANSFER = {1: (1, 1), 5: (5, 6), 6: (6, 6), 9: (9, 14), 10: (9, 14)}


@dataclass
class ColorInfo:
    """The four colour tags of a stream, as AVCOL_* integer codes (2 = unspecified)."""

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    codec: str
    time_base: Fraction
    frame_rate: Fraction | None  # average rate; None if the container does not know
    frames: int | None  # from the container header (exact); None if absent (then estimated by duration)
    duration: float | None
    rotation: int
    color: ColorInfo
    audio_streams: int = 0
    subtitle_streams: int = 0
    other_streams: list[str] = field(default_factory=list)
    timecode: str | None = None  # SMPTE start timecode of the first frame (see io.timecode)
    video_end: float | None = None  # when the video stream is declared to end, in seconds (`_video_end`)

    @property
    def frames_exact(self) -> bool:
        """Whether `frames_estimate` is the container's own count (MP4's index) rather than a guess
        from the duration (Matroska, WebM), which may be a frame or so off."""
        return bool(self.frames)

    @property
    def frames_estimate(self) -> int | None:
        if self.frames:
            return self.frames
        if self.duration and self.frame_rate:
            return max(1, round(self.duration * float(self.frame_rate)))
        return None


def open_input(path: Path, fps: Fraction | None = None) -> av.container.InputContainer:
    """Open a video file, or an image sequence's pattern (shown at `fps`, default 25)."""
    if is_pattern(path):
        return find_sequence(path).open(fps)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not a video: {path}")
    if path.stat().st_size == 0:  # FFmpeg would say "Invalid data found when processing input"
        raise InputError(f"empty file: {path}")
    try:
        return av.open(str(path), "r")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable video: {path} ({ffmpeg_reason(exc)})") from None


def ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def probe(path: Path | str, fps: Fraction | None = None) -> VideoInfo:
    """Read a file's stream facts without decoding it. `fps`: an image sequence's frame rate."""
    path = Path(path)
    with open_input(path, fps) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise InputError(f"no video stream in {path} (it has: {', '.join(kinds)})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None:  # FFmpeg knows no decoder for the stream's codec id
            raise InputError(f"unsupported video codec in {path}: this FFmpeg build cannot decode it")
        if not ctx.width or not ctx.height:
            raise InputError(f"video stream of {path} has no frame size (corrupt?)")
        fmt = ctx.format
        depth = max((c.bits for c in fmt.components), default=8) if fmt is not None else 8
        duration = _video_duration(container, stream)
        return VideoInfo(
            path=path,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=ctx.pix_fmt or "unknown",
            bit_depth=depth,
            codec=ctx.name,
            time_base=stream.time_base,
            frame_rate=stream.average_rate or stream.guessed_rate,
            frames=stream.frames or None,
            duration=duration,
            rotation=0 if is_pattern(path) else _rotation(path),
            color=ColorInfo(ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range),
            audio_streams=len(container.streams.audio),
            subtitle_streams=len(container.streams.subtitles),
            other_streams=[s.type for s in container.streams if s.type not in ("video", "audio", "subtitle")],
            timecode=read_timecode(container),
            video_end=_video_end(container, stream),
        )


def _video_end(container, stream) -> float | None:
    """When the video stream is declared to end, in seconds on its own timeline: from its own
    duration (MP4/MOV index), Matroska's per-track DURATION tag, or the container's duration when
    the video is its only stream (audio may run longer). None where nothing declares it: the
    reader then cannot tell a truncated file from a whole one."""
    base = stream.time_base
    start = float(stream.start_time * base) if stream.start_time is not None and base else 0.0
    if stream.duration and base:
        return start + float(stream.duration * base)
    # Matroska's DURATION tag is where the track's last frame ends (see _video_duration).
    if seconds := _clock_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration")):
        return max(start, seconds)
    if len(container.streams) == 1 and container.duration:
        return ((container.start_time or 0) + container.duration) / av.time_base
    return None


def _video_duration(container, stream) -> float | None:
    """Seconds of video: the stream's own duration; else Matroska's per-stream DURATION tag (the
    end of the stream's last frame, so less its start); else the container's, which also spans
    the audio and can be a frame or two longer."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tagged = _clock_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if tagged is not None:
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        return max(0.0, tagged - start)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _clock_seconds(text: str | None) -> float | None:
    """`HH:MM:SS.fraction` (Matroska's DURATION tag) in seconds; None if absent or malformed."""
    try:
        hours, minutes, seconds = (text or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _rotation(path: Path) -> int:
    """Display rotation in degrees. FFmpeg exposes the display matrix on decoded frames, so this
    decodes the first frame (which also catches files whose video cannot be decoded at all)."""
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            return int(round(frame.rotation or 0))
    except (StopIteration, av.error.FFmpegError):
        return 0


def rgb_matrix(info: VideoInfo) -> Colorspace:
    """The YUV↔RGB matrix for this video; untagged video is guessed by size, as players do."""
    return matrix_of(info.color, info.height)


def matrix_of(color: ColorInfo, height: int) -> Colorspace:
    """The swscale matrix for `color`'s matrix tag; untagged: BT.709 from 720 lines, else BT.601."""
    if color.matrix in _MATRIX:
        return _MATRIX[color.matrix]
    return Colorspace.ITU709 if height >= 720 else Colorspace.ITU601


def color_range_of(info: VideoInfo | ColorInfo) -> ColorRange:
    color = info if isinstance(info, ColorInfo) else info.color
    return ColorRange.JPEG if color.range == _FULL_RANGE else ColorRange.MPEG


def output_color(info: VideoInfo, height: int) -> ColorInfo:
    """The colour tags of the upscaled video, `height` lines tall: the input's own where it has
    them, else what players assume for the *output* size (BT.709 from 720 lines, BT.601/SMPTE 170M
    below), which is also the matrix the writer converts with. Every tag is set, so no player has
    to guess: an untagged 480p input upscaled to 1920p would otherwise be encoded with one matrix
    and shown with another, and its colours would shift.
    """
    color = info.color
    hd = height >= 720
    rgb_source = info.pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "pal8", "gray"))
    matrix = color.matrix if color.matrix in _MATRIX else (_BT709 if hd else _SMPTE170M)
    # Missing primaries and transfer: those that go with the matrix (RGB sources, GIF and PNG, are
    # sRGB, whose primaries are BT.709's whatever the size).
    usual = _BT709 if rgb_source else matrix
    primaries, transfer = _USUAL_PRIMARIES_TRANSFER.get(usual, (_BT709, _BT709) if hd else (_SMPTE170M,) * 2)
    primaries = color.primaries if color.primaries not in _UNSPECIFIED else primaries
    transfer = color.transfer if color.transfer not in _UNSPECIFIED else transfer
    # The writer encodes limited range unless the input is tagged full range.
    color_range = _FULL_RANGE if color.range == _FULL_RANGE and not rgb_source else _LIMITED_RANGE
    return ColorInfo(primaries, transfer, matrix, color_range)


def video_pts(path: Path) -> list[int]:
    """The presentation timestamps of every video frame, in presentation order, from the packets
    alone (no decoding)."""
    with open_input(Path(path)) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size]
    if any(p is None for p in pts):
        raise InputError(f"{path} has video packets without timestamps; give frame indices (120f)")
    return sorted(pts)
