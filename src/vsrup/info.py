"""`vsrup info`: what is in a video file, for people (a rich table) and for scripts (JSON).

Everything comes from the container and packet headers; nothing is decoded except the first video
frame (for the display rotation, which FFmpeg only exposes on frames). Two facts need a scan of
packets rather than the header:

- Variable frame rate: the pts of the video packets of the first `VFR_SCAN_SECONDS` are sorted
  (B-frames arrive out of order) and their consecutive differences compared. The video counts as
  variable when any difference departs from the median by more than one time-base tick plus 1 %
  (rounding in the time base makes constant-rate pts jitter by a tick).
- Frame count: taken from the header when it has one; otherwise (or with `count=True`) counted by
  demuxing every video packet, which is exact for ordinary video and much faster than decoding.
- Average frame rate of a variable-rate video: the frame count over the span of the packet
  timestamps (first pts to the end of the last frame), not the container's figure, which is often
  the first part's rate or the encoder's nominal one (15 fps for a clip of 30 and 15 fps parts).
  A constant-rate video keeps the header's exact rate (30000/1001) when the two agree.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vsrup.io.probe import open_input, probe
from vsrup.io.sequence import stamp

VFR_SCAN_SECONDS = 10.0

# AVCOL_* codes → names, as ffprobe prints them (libavutil/pixfmt.h).
PRIMARIES = {1: "bt709", 2: "unspecified", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m"}
PRIMARIES |= {8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
TRANSFER = {1: "bt709", 2: "unspecified", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m"}
TRANSFER |= {8: "linear", 9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e"}
TRANSFER |= {13: "iec61966-2-1 (sRGB)", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084 (PQ)"}
TRANSFER |= {17: "smpte428", 18: "arib-std-b67 (HLG)"}
MATRIX = {0: "gbr", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m"}
MATRIX |= {7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 14: "ictcp"}
RANGE = {0: "unspecified", 1: "tv (limited)", 2: "pc (full)"}


def _name(table: dict[int, str], code: int) -> str:
    return table.get(code, f"unknown ({code})")


def _rate(value: Fraction | None) -> dict | None:
    if not value:
        return None
    return {"fraction": f"{value.numerator}/{value.denominator}", "fps": round(float(value), 6)}


def describe(path: Path | str, count: bool = False) -> dict:
    """All the facts `vsrup info` shows, as a JSON-ready dict. Raises InputError like `probe`."""
    path = Path(path)
    info = probe(path)  # validates the file and gives the video facts the engine relies on
    with open_input(path) as container:
        video = container.streams.video[0]
        scanned = _first_pts(container, video)
        header_frames = video.frames or None
        variable = _is_variable(scanned)
        packets = _scan_packets(path) if (count or not header_frames or variable) else None
        counted = packets.count if packets is not None and (count or not header_frames) else None
        rate = _average_rate(info.frame_rate, packets, info.time_base)
        streams = [_stream_facts(s) for s in container.streams]
        report = {
            "file": str(path),
            "container": container.format.name,
            "size_bytes": stamp(path)[0],  # an image sequence: all its images
            "bit_rate": container.bit_rate or None,
            "duration_s": None if info.duration is None else round(info.duration, 6),
            "video": _video_facts(info, video, scanned, header_frames, counted, rate),
        }
    report["audio"] = [s for s in streams if s["type"] == "audio"]
    report["subtitles"] = [s for s in streams if s["type"] == "subtitle"]
    report["other_streams"] = [s for s in streams if s["type"] not in ("video", "audio", "subtitle")]
    return report


def _video_facts(
    info, video, scanned: list[int], header_frames: int | None, counted: int | None, rate: Fraction | None
) -> dict:
    """The video stream's facts; call while its container is open (PyAV frees the stream after)."""
    return {
        "index": video.index,
        "codec": info.codec,
        "profile": video.codec_context.profile,
        "width": info.width,
        "height": info.height,
        "pix_fmt": info.pix_fmt,
        "bit_depth": info.bit_depth,
        "frame_rate": _rate(rate),
        "time_base": f"{info.time_base.numerator}/{info.time_base.denominator}",
        "variable_frame_rate": _is_variable(scanned),
        "vfr_check": f"pts steps of the first {len(scanned)} packets (up to {VFR_SCAN_SECONDS:g} s)",
        "frames": counted if counted is not None else header_frames,
        "frames_source": "counted" if counted is not None else "header",
        "frames_header": header_frames,
        "rotation": info.rotation,
        "timecode": info.timecode,
        "color": {
            "primaries": _name(PRIMARIES, info.color.primaries),
            "transfer": _name(TRANSFER, info.color.transfer),
            "matrix": _name(MATRIX, info.color.matrix),
            "range": _name(RANGE, info.color.range),
        },
        "bit_rate": video.bit_rate or None,
        "language": video.metadata.get("language"),
    }


def _stream_facts(stream) -> dict:
    ctx = stream.codec_context
    facts = {
        "index": stream.index,
        "type": stream.type,
        "codec": ctx.name if ctx is not None else None,
        "language": stream.metadata.get("language"),
        "title": stream.metadata.get("title"),
    }
    if stream.type == "audio" and ctx is not None:
        facts |= {
            "channels": ctx.channels,
            "layout": ctx.layout.name if ctx.layout else None,
            "sample_rate": ctx.sample_rate,
            "bit_rate": stream.bit_rate or None,
        }
    elif stream.type == "data":
        facts["handler"] = stream.metadata.get("handler_name")
    return facts


def _first_pts(container, video) -> list[int]:
    """The sorted pts of the video packets in the first VFR_SCAN_SECONDS."""
    limit = None
    if video.time_base:
        limit = int(VFR_SCAN_SECONDS / video.time_base)
    first = None
    pts: list[int] = []
    try:
        for packet in container.demux(video):
            if packet.pts is None:
                continue
            first = packet.pts if first is None else first
            if limit is not None and packet.pts - first > limit:
                break
            pts.append(packet.pts)
    except av.error.FFmpegError:
        pass  # a damaged tail: judge by what could be read
    return sorted(pts)


def _is_variable(pts: list[int]) -> bool | None:
    """Whether the frame durations differ; None when there are too few frames to tell."""
    deltas = [b - a for a, b in zip(pts, pts[1:], strict=False) if b > a]
    if len(deltas) < 2:
        return None
    typical = statistics.median(deltas)
    tolerance = 1 + 0.01 * typical
    return any(abs(d - typical) > tolerance for d in deltas)


@dataclass
class _Packets:
    count: int
    first: int | None  # the smallest pts
    end: int | None  # the largest pts plus that frame's duration


def _scan_packets(path: Path) -> _Packets:
    """Count the video packets and find the span of their timestamps (one demux, no decoding)."""
    count, first, last, last_duration, steps = 0, None, None, None, []
    with open_input(path) as container:
        video = container.streams.video[0]
        try:
            for packet in container.demux(video):
                if not packet.size:
                    continue
                count += 1
                if packet.pts is None:
                    continue
                first = packet.pts if first is None else min(first, packet.pts)
                if last is None or packet.pts > last:
                    if last is not None and len(steps) < 64:
                        steps.append(packet.pts - last)
                    last, last_duration = packet.pts, packet.duration
        except av.error.FFmpegError:
            pass  # a damaged tail: judge by what could be read
    if last is None:
        return _Packets(count, None, None)
    if not last_duration:  # the last frame lasts as long as a typical one
        last_duration = statistics.median(steps) if steps else 0
    return _Packets(count, first, last + last_duration)


def _average_rate(header: Fraction | None, packets: _Packets | None, time_base: Fraction) -> Fraction | None:
    """Frames over the timestamp span; the header's rate where it agrees (within 0.1 %) or where
    there was no scan (constant rate in the scanned part)."""
    if packets is None or packets.first is None or not time_base or packets.count < 2:
        return header
    span = (packets.end - packets.first) * time_base
    if span <= 0:
        return header
    measured = Fraction(packets.count) / span
    if header and abs(float(header) / float(measured) - 1) <= 0.001:
        return header
    return measured.limit_denominator(1001 * 1000)


def render(report: dict) -> object:
    """A rich renderable for people: one table of the video facts, one row per other stream."""
    from rich.console import Group
    from rich.table import Table

    v = report["video"]
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    rate = v["frame_rate"]
    vfr = {True: "variable", False: "constant", None: "unknown"}[v["variable_frame_rate"]]
    # e.g. "constant, 29.970 fps" or "variable, 21.053 fps on average"
    rows = [
        ("file", report["file"]),
        ("container", f"{report['container']}, {_megabytes(report['size_bytes'])}"),
        ("video", f"{v['codec']} ({v['profile']})" if v["profile"] else v["codec"]),
        ("resolution", f"{v['width']}×{v['height']}"),
        ("frame rate", f"{vfr}, {rate['fps']:.3f} fps{' on average' * (vfr == 'variable')}" if rate else vfr),
        ("frames", f"{v['frames']} ({v['frames_source']})" if v["frames"] else "unknown"),
        ("duration", _duration(report["duration_s"])),
        ("pixel format", f"{v['pix_fmt']}, {v['bit_depth']}-bit"),
        ("colour", ", ".join(f"{k} {val}" for k, val in v["color"].items())),
        ("rotation", f"{v['rotation']}°"),
        ("timecode", v["timecode"] or "none"),
    ]
    for key, value in rows:
        facts.add_row(key, str(value))
    parts: list = [facts]
    others = report["audio"] + report["subtitles"] + report["other_streams"]
    if others:
        table = Table(title="other streams", title_justify="left")
        for column in ("#", "type", "codec", "language", "details"):
            table.add_column(column)
        for s in others:
            table.add_row(str(s["index"]), s["type"], s["codec"] or "-", s["language"] or "-", _details(s))
        parts.append(table)
    return Group(*parts)


def _details(stream: dict) -> str:
    if stream["type"] == "audio":
        return f"{stream['channels']} ch ({stream['layout']}), {stream['sample_rate']} Hz"
    return stream.get("title") or stream.get("handler") or ""


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:06.3f} ({seconds:.3f} s)"
