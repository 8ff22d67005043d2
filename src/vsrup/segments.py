"""Time segments of one video: upscale a frame range exactly as a whole-video run would, and join
segment files back into one video.

A segment [a, b) is cut from the whole-video window grid (windows start every `window - overlap`
frames from frame 0), never from a grid of its own: the engine runs every whole-video window that
touches [a, b) — including those that only share frames with it — and emits frames a … b-1 only.
Each emitted frame is therefore blended from the very same window outputs, with the very same
weights, as in a whole-video run, so segment outputs joined together equal that run.

Segment files hold the video stream only. `concat_segments` copies their packets (no re-encode)
into the final file and muxes the input's audio and subtitles once, beside them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import av

from vsrup.errors import InputError, OutputError, UsageError
from vsrup.video import (
    EncodeSettings,
    Frame,
    Passthrough,
    VideoInfo,
    VideoWriter,
    choose_codec,
    color_range_of,
    ffmpeg_reason,
    muxer_for,
    open_input,
    read_frames,
    rgb_matrix,
)
from vsrup.windows import Window

# Segment files made by a parallel run: NUT keeps every timestamp exact in any time base (Matroska
# rounds to milliseconds) and holds any codec, so the final container is chosen only at the end.
SEGMENT_EXT = ".nut"

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


@dataclass(frozen=True)
class Bound:
    """A point in a video given by the user: a frame index or a time in seconds."""

    value: float
    is_frame: bool


def parse_bound(text: str) -> Bound:
    """`120f` (frame index), `12.5` (seconds) or `[hh:]mm:ss[.frac]` (clock time)."""
    raw = text.strip()
    try:
        if raw.lower().endswith("f"):
            frame = int(raw[:-1])
            if frame < 0:
                raise ValueError
            return Bound(frame, True)
        clock = _CLOCK.match(raw)
        if clock:
            hours, minutes, seconds = clock.groups()
            value = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            value = float(raw)
        if value < 0 or not math.isfinite(value):
            raise ValueError
        return Bound(value, False)
    except ValueError:
        raise UsageError(
            f"bad time {text!r}: use seconds (12.5), a clock time (00:01:02.5) or a frame index (120f)"
        ) from None


@dataclass(frozen=True)
class FrameRange:
    """Frames [start, stop) of a video by decode index; stop None: to the end."""

    start: int = 0
    stop: int | None = None

    def keeps(self, index: int) -> bool:
        return index >= self.start and (self.stop is None or index < self.stop)

    def is_before(self, window_end: int) -> bool:
        """A window ending at `window_end` lies wholly before the range: it need not run."""
        return window_end <= self.start

    def is_after(self, window_start: int) -> bool:
        """A window starting at `window_start` lies wholly after the range, as do all later ones."""
        return self.stop is not None and window_start >= self.stop

    def count_new(self, first: int, end: int) -> int:
        """How many of the frames [first, end) fall in the range (for progress)."""
        stop = end if self.stop is None else min(end, self.stop)
        return max(0, stop - max(first, self.start))

    def length(self, total: int | None) -> int | None:
        stop = self.stop if total is None else min(self.stop if self.stop is not None else total, total)
        return None if stop is None else max(0, stop - self.start)


WHOLE = FrameRange()


def window_span(first: int, stop: int, size: int, overlap: int) -> tuple[int, int]:
    """The frames a whole-video run decodes and feeds to the model to produce frames [first, stop).

    Windows start every `size - overlap` frames; the result runs from the start of the first window
    that holds `first` to the end of the last window that holds `stop - 1`. (The end may lie beyond
    the video; the stream just ends there.)
    """
    if not 0 <= first < stop:
        raise ValueError(f"empty frame range [{first}, {stop})")
    stride = size - overlap
    k_first = max(0, -(-(first - size + 1) // stride))  # smallest k with k·stride + size > first
    k_last = (stop - 1) // stride  # largest k with k·stride ≤ stop - 1
    return k_first * stride, k_last * stride + size


def plan_segments(frames: int, parts: int, size: int, overlap: int) -> list[FrameRange]:
    """Cut frames [0, frames) into at most `parts` contiguous ranges of near-equal length.

    Cuts fall on window starts, where a cut costs one extra window (the one that ends inside the
    overlap); every range but the last holds at least one window stride.
    """
    if frames <= 0:
        raise InputError("the video has no frames to split")
    stride = size - overlap
    strides = -(-frames // stride)
    parts = max(1, min(parts, strides))
    cuts = [math.floor(i * frames / parts / stride + 0.5) * stride for i in range(parts)] + [frames]
    return [FrameRange(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]


def video_pts(path: Path) -> list[int]:
    """The presentation timestamps of every video frame, in presentation order, from the packets
    alone (no decoding)."""
    with open_input(Path(path)) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size]
    if any(p is None for p in pts):
        raise InputError(f"{path} has video packets without timestamps; give frame indices (120f)")
    return sorted(pts)


def read_span(info: VideoInfo, span: FrameRange, size: int, overlap: int) -> tuple[int, Iterator[Frame]]:
    """(first, frames): the frames a run of `span` needs, decoded from `first` on, the start of the
    first window that touches the span. Decoding seeks to the keyframe before it rather than
    decoding the video from the start, so a late segment costs no more than an early one."""
    if span.start == 0:
        return 0, read_frames(info)
    first = window_span(span.start, span.start + 1, size, overlap)[0]
    return first, _frames_from(info, first) if first else read_frames(info)


def on_grid(windows: Iterable[Window], first: int, overlap: int) -> Iterator[Window]:
    """Windows over frames decoded from `first` on, placed back on the whole-video grid (a window
    after frame 0 shares `overlap` frames with the one before, decoded or not)."""
    for window in windows:
        yield replace(
            window, start=window.start + first, shared_before=overlap if window.start + first else 0
        )


class _SeekMiss(Exception):
    """The frames after a seek are not the ones the packet timestamps promised."""


def _frames_from(info: VideoInfo, first: int) -> Iterator[Frame]:
    """Frames `first`, `first + 1`, … by seeking; if the seek does not land where the packets say
    it should (odd files), decode from the start and skip instead: slower, never wrong."""
    next_index = first
    try:
        for frame in _seek_frames(info, first):
            yield frame
            next_index = frame.index + 1
    except _SeekMiss:
        for frame in read_frames(info):
            if frame.index >= next_index:
                yield frame


def _seek_frames(info: VideoInfo, first: int) -> Iterator[Frame]:
    pts = video_pts(info.path)
    if first >= len(pts):
        return
    rgb_format = "rgb48le" if info.bit_depth > 8 else "rgb24"
    matrix, color_range = rgb_matrix(info), color_range_of(info)
    with open_input(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            container.seek(pts[first], stream=stream, backward=True, any_frame=False)
            index = first
            for frame in container.decode(stream):
                if frame.pts is not None and frame.pts < pts[first]:
                    continue  # from the keyframe up to the first frame we need
                if index >= len(pts) or frame.pts != pts[index]:
                    raise _SeekMiss(index)
                image = frame.reformat(format=rgb_format, src_colorspace=matrix, src_color_range=color_range)
                yield Frame(index, frame.pts, frame.duration, image.to_ndarray())
                index += 1
        except av.error.FFmpegError as exc:
            raise _SeekMiss(str(exc)) from None


def resolve_range(info: VideoInfo, start: str | None, end: str | None) -> FrameRange:
    """Turn `--start` / `--end` into frame indices. Times count from the first frame's timestamp
    and select the frames shown at or after `start` and before `end`."""
    bounds = [parse_bound(t) if t else None for t in (start, end)]
    pts: list[int] | None = None
    indices = []
    for bound in bounds:
        if bound is None:
            indices.append(None)
        elif bound.is_frame:
            indices.append(int(bound.value))
        else:
            pts = pts if pts is not None else video_pts(info.path)
            indices.append(_index_at(pts, info, bound.value))
    first, stop = indices[0] or 0, indices[1]
    if stop is not None and stop <= first:
        raise UsageError(f"--end ({end}) must come after --start ({start or 0})")
    return FrameRange(first, stop)


def _index_at(pts: list[int], info: VideoInfo, seconds: float) -> int:
    """Index of the first frame shown at or after `seconds` (past the end: the frame count)."""
    if not pts:
        return 0
    origin = pts[0]
    # A tiny tolerance: 0.04 s typed by hand must select the frame whose pts is 0.04 s exactly.
    limit = seconds - 1e-9
    for index, value in enumerate(pts):
        if float((value - origin) * info.time_base) >= limit:
            return index
    return len(pts)


class SegmentWriter(VideoWriter):
    """A `VideoWriter` for one segment: the video stream alone. Audio and subtitles are muxed once,
    by `concat_segments`, so that they are neither repeated nor cut at segment boundaries."""

    def __init__(self, path: Path, info: VideoInfo, scale: int, settings: EncodeSettings, fmt_ext: str):
        self.info = info
        self.path = path
        codec_name = choose_codec(Path("x" + fmt_ext), settings)
        try:
            # Keep every timestamp as given: by default NUT shifts a B-frame stream that starts at
            # pts 0 (negative decode times) later by the reorder delay, which moved segment 0.
            options = {"avoid_negative_ts": "disabled"}
            self.container = av.open(str(path), "w", format=muxer_for(fmt_ext), options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create output {path}: {ffmpeg_reason(exc)}") from None
        self.stream = self._add_video_stream(codec_name, scale, settings)
        self._passthrough = _NoPassthrough()
        self.frames_written = 0


class _NoPassthrough:
    def mux_until(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass


def segment_codec(output: Path, settings: EncodeSettings) -> EncodeSettings:
    """Encode settings for segment files of `output`: the codec the output's extension picks, named
    explicitly, since segment files have an extension of their own."""
    return EncodeSettings(
        codec=choose_codec(Path(output), settings),
        crf=settings.crf,
        preset=settings.preset,
        pix_fmt=settings.pix_fmt,
    )


def join(source: Path, segment_paths: Sequence[Path], target: Path, overwrite: bool = False) -> int:
    """Join segment files made with --start/--end from `source` into `target`, with the audio and
    subtitles of `source`; the segments must be given in order and must not overlap."""
    from vsrup.engine import atomic_output, check_output
    from vsrup.video import probe

    source, target = Path(source), Path(target)
    check_output(source, target, overwrite)
    info = probe(source)
    for path in segment_paths:
        if not Path(path).is_file():
            raise InputError(f"segment not found: {path}")
    with atomic_output(target) as partial:
        return concat_segments([Path(p) for p in segment_paths], info, partial)


def concat_segments(segment_paths: Sequence[Path], input_info: VideoInfo, output: Path) -> int:
    """Join segment videos by packet copy into `output`, with the input's audio and subtitles muxed
    once beside them. Returns the number of video frames written.

    Every segment must begin with a keyframe (each comes from a fresh encoder, so it does).
    """
    if not segment_paths:
        raise UsageError("no segments to join")
    ext = Path(output).suffix.lower()
    try:
        container = av.open(str(output), "w", format=muxer_for(ext))
    except (av.error.FFmpegError, OSError) as exc:
        raise OutputError(f"cannot create output {output}: {ffmpeg_reason(exc)}") from None
    passthrough = None
    try:
        stream = _add_copied_video(container, Path(segment_paths[0]), input_info)
        passthrough = Passthrough(input_info, container, ext)
        # Decode times are rebuilt over the joined stream, not per segment: a segment's own reorder
        # depth can be smaller than the next one's, and then their decode times would overlap.
        pts_lists = [_segment_pts(Path(path)) for path in segment_paths]
        _check_order(segment_paths, pts_lists)
        dts = iter(decode_timestamps([value for pts in pts_lists for value in pts]))
        written, last_dts = 0, None
        for path, pts in zip(segment_paths, pts_lists, strict=True):
            segment_dts = [next(dts) for _ in pts]
            count, last_dts = _copy_segment(Path(path), container, stream, passthrough, last_dts, segment_dts)
            written += count
        passthrough.mux_until(math.inf)
    except BaseException:
        if passthrough is not None:
            passthrough.close()
        container.close()
        raise
    passthrough.close()
    container.close()
    return written


def _add_copied_video(container, first_segment: Path, info: VideoInfo):
    """The output's video stream, a copy of the segments' (codec, size, extradata), in the input's
    time base and with its colour tags and rotation (a segment container may not carry them)."""
    with open_input(first_segment) as source:
        stream = container.add_stream_from_template(source.streams.video[0])
    stream.time_base = info.time_base
    ctx = stream.codec_context
    if info.frame_rate:  # the muxer's frame-rate tag; a copied template may carry the tick rate
        ctx.framerate = info.frame_rate
    ctx.color_primaries, ctx.color_trc = info.color.primaries, info.color.transfer
    ctx.colorspace, ctx.color_range = info.color.matrix, info.color.range
    if info.rotation:
        stream.set_display_rotation(info.rotation)
    return stream


def _segment_pts(path: Path) -> list[int]:
    with open_input(path) as source:
        video = source.streams.video[0]
        pts = [p.pts for p in source.demux(video) if p.size]
    if not pts or any(p is None for p in pts):
        raise InputError(f"segment {path} has no timestamped video packets")
    return pts


def _check_order(segment_paths: Sequence[Path], pts_lists: list[list[int]]) -> None:
    """Segments must follow each other in time: decode times rebuilt over a misordered list would
    be monotonic but wrong, and the file would play garbled."""
    for path, before, after in zip(segment_paths[1:], pts_lists, pts_lists[1:], strict=False):
        if min(after) <= max(before):
            raise InputError(f"segment {path} does not come after the one before it in time")


def _copy_segment(path: Path, container, stream, passthrough, last_dts, dts: list[int]):
    """Copy one segment's video packets with decode timestamps `dts`, rebuilt because the segment
    container dropped them (Matroska and NUT keep presentation times only for reordered frames)."""
    count = 0
    with open_input(path) as source:
        video = source.streams.video[0]
        packets = (p for p in source.demux(video) if p.size)
        for packet, decode_ts in zip(packets, dts, strict=True):
            if count == 0 and not packet.is_keyframe:
                raise InputError(f"segment {path} does not start with a keyframe")
            packet.dts = decode_ts
            decoded_at = float(decode_ts * packet.time_base)
            if last_dts is not None and decoded_at <= last_dts:
                raise InputError(f"segment {path} overlaps the one before it in time")
            last_dts = decoded_at
            passthrough.mux_until(float(packet.pts * packet.time_base))
            packet.stream = stream
            container.mux(packet)
            count += 1
    return count, last_dts


def decode_timestamps(pts: Sequence[int]) -> list[int]:
    """Decode timestamps for packets in decode order with presentation timestamps `pts`: the sorted
    pts delayed by the reorder depth, as an encoder sets them (the first ones extrapolated back)."""
    order = sorted(pts)
    rank = {value: i for i, value in enumerate(order)}
    delay = max(0, *(j - rank[value] for j, value in enumerate(pts)))
    step = order[1] - order[0] if len(order) > 1 else 1
    return [order[j - delay] if j >= delay else order[0] - (delay - j) * step for j in range(len(pts))]
