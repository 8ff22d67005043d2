"""SMPTE timecode: read from an input, moved to an output's first frame, written where it fits.

Cameras and editors stamp a start timecode ("HH:MM:SS:FF") on a video: MP4/QuickTime hold it as a
tmcd data track, Matroska as a TIMECODE tag, MXF and others in the container's metadata. FFmpeg
reads all of them into a `timecode` metadata entry and writes one back from the video stream's
metadata, so carrying it is a matter of finding it and, for an output that starts later than the
input (`--start`), counting it forward by the frames skipped.

Drop-frame timecode (";" or "." before the frames, at 29.97 and 59.94 fps) skips the labels
:00 and :01 (:00-:03 at 59.94) of every minute not divisible by ten, so the label keeps up with the
wall clock; counting through it needs the conversion below, not plain arithmetic.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Containers whose FFmpeg muxer writes a timecode from the video stream's metadata.
TIMECODE_CONTAINERS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".nut"}

_PATTERN = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")
_DAY_HOURS = 24


def read_timecode(container) -> str | None:
    """The start timecode of an open input, looked up where FFmpeg puts it: the video stream,
    a timecode data track, then the container; None if it has none."""
    places = [container.streams.video[0]] if container.streams.video else []
    places += [s for s in container.streams if s.type == "data"]
    for metadata in [s.metadata for s in places] + [container.metadata]:
        for key, value in metadata.items():
            if key.lower() == "timecode" and _PATTERN.match(value.strip()):
                return value.strip()
    return None


def advance_timecode(timecode: str, frames: int, rate: Fraction | float | None) -> str | None:
    """`timecode` counted forward by `frames` frames at `rate`, in the same notation; None where that
    cannot be done right (no frame rate, or a drop-frame label at a rate that does not drop)."""
    if frames == 0:
        return timecode
    match = _PATTERN.match(timecode)
    if match is None or not rate:
        return None
    fps = round(float(rate))
    drop = _drop_per_minute(rate) if match.group(4) in ";.," else 0
    if fps <= 0 or (match.group(4) in ";.," and not drop):
        return None
    hours, minutes, seconds, _, label = match.groups()
    count = _to_count(int(hours), int(minutes), int(seconds), int(label), fps, drop) + frames
    count %= _day_frames(fps, drop)
    return _to_label(count, fps, drop, match.group(4), len(label))


def _drop_per_minute(rate: Fraction | float) -> int:
    """Labels skipped per minute: 2 at 29.97, 4 at 59.94 (NTSC rates); 0 at any other rate."""
    fps = round(float(rate))
    ntsc = abs(float(rate) - fps * 1000 / 1001) < 1e-3
    return fps // 15 if ntsc and fps % 30 == 0 else 0


def _day_frames(fps: int, drop: int) -> int:
    return _DAY_HOURS * 3600 * fps - drop * _DAY_HOURS * 54  # 54 dropping minutes an hour


def _to_count(hours: int, minutes: int, seconds: int, label: int, fps: int, drop: int) -> int:
    """The frame number of a label: labels minus those skipped in the minutes gone by."""
    total_minutes = hours * 60 + minutes
    labels = (total_minutes * 60 + seconds) * fps + label
    return labels - drop * (total_minutes - total_minutes // 10)


def _to_label(count: int, fps: int, drop: int, separator: str, width: int) -> str:
    if drop:  # put back the skipped labels: 9 dropping minutes per ten, `drop` labels each
        per_ten = 600 * fps - 9 * drop
        per_minute = 60 * fps - drop
        tens, rest = divmod(count, per_ten)
        count += 9 * drop * tens + (drop * ((rest - drop) // per_minute) if rest >= drop else 0)
    seconds, label = divmod(count, fps)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{label:0{width}d}"
