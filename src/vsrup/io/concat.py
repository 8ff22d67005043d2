"""Join video-only segment files by packet copy (no re-encode) into one video, with the input's
audio and subtitles muxed once beside them. Used by `--resume`, `--devices`, `--ray` and `vsrup join`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import av

from vsrup.errors import InputError, OutputError, UsageError
from vsrup.io.files import atomic_output, check_output
from vsrup.io.passthrough import Passthrough
from vsrup.io.probe import VideoInfo, ffmpeg_reason, open_input, output_color, probe
from vsrup.io.timecode import TIMECODE_CONTAINERS, read_timecode
from vsrup.io.writer import HVC1_CONTAINERS, muxer_for


def join(source: Path, segment_paths: Sequence[Path], target: Path, overwrite: bool = False) -> int:
    """Join segment files made with --start/--end from `source` into `target`, with the audio and
    subtitles of `source`; the segments must be given in order and must not overlap."""
    source, target = Path(source), Path(target)
    check_output(source, target, overwrite)
    info = probe(source)
    for path in segment_paths:
        if not Path(path).is_file():
            raise InputError(f"segment not found: {path}")
    with atomic_output(target) as partial:
        return concat_segments([Path(p) for p in segment_paths], info, partial)


def concat_segments(
    segment_paths: Sequence[Path], input_info: VideoInfo, output: Path, audio: str = "auto"
) -> int:
    """Join segment videos by packet copy into `output`, with the input's audio and subtitles muxed
    once beside them (`audio`: see `Passthrough`). Returns the number of video frames written.

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
        stream = _add_copied_video(container, Path(segment_paths[0]), input_info, ext)
        passthrough = Passthrough(input_info, container, ext, audio)
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


def _add_copied_video(container, first_segment: Path, info: VideoInfo, ext: str):
    """The output's video stream, a copy of the segments' (codec, size, extradata), in the input's
    time base and with its colour tags, rotation and timecode (a segment container may not carry
    them)."""
    with open_input(first_segment) as source:
        stream = container.add_stream_from_template(source.streams.video[0])
        # The joined file starts where its first segment does; segments of one whole run start at
        # the input's first frame and may not carry a tag of their own.
        timecode = read_timecode(source) or info.timecode
    if timecode and ext in TIMECODE_CONTAINERS:
        stream.metadata["timecode"] = timecode
    stream.time_base = info.time_base
    ctx = stream.codec_context
    if info.frame_rate:  # the muxer's frame-rate tag; a copied template may carry the tick rate
        ctx.framerate = info.frame_rate
    color = output_color(info, ctx.height)  # as the segments' writer tagged and converted them
    ctx.color_primaries, ctx.color_trc = color.primaries, color.transfer
    ctx.colorspace, ctx.color_range = color.matrix, color.range
    if info.rotation:
        stream.set_display_rotation(info.rotation)
    if ctx.codec.canonical_name == "hevc" and ext in HVC1_CONTAINERS:
        stream.codec_tag = "hvc1"  # as the writer tags a whole-file HEVC output
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
