"""Image sequences: numbered images (`frames/0001.png`, `frames/0002.png`, …) taken as one video,
named by a printf pattern (`frames/%04d.png`), read by FFmpeg's image2 demuxer and written by its
muxer.

Reading goes through `probe.open_input` like any video file, so `io.reader` stays the only
decoder; this module finds what a pattern or a folder stands for, and writes sequences. A sequence
has no timing of its own: frame i is shown at i / fps (`--fps`, default `DEFAULT_FPS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsrup.errors import InputError, OutputError, UsageError

# Images FFmpeg's image2 demuxer reads (by extension, as videos are picked by theirs).
IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .tif .tiff .bmp .webp .dpx .exr".split())
# Images we write, by extension: both hold 16-bit RGB, so >8-bit input keeps its depth.
IMAGE_FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff"}
DEFAULT_FPS = Fraction(25)  # PAL/European TV; FFmpeg's image2 default is 25 too
_FIELD = re.compile(r"%(0?\d*)d")  # the one printf integer field of a pattern
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")  # name = prefix, number, extension


def parse_fps(text: str) -> Fraction:
    """`25`, `12.5`, `24000/1001`; the NTSC rates written as decimals (23.976, 29.97, 59.94) are
    taken as the exact rates they stand for (24000/1001, …)."""
    try:
        rate = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        rate = Fraction(0)
    if rate <= 0:
        raise UsageError(
            f"--fps must be a positive frame rate such as 25, 23.976 or 24000/1001 (got {text!r})"
        )
    ntsc = round(rate * Fraction(1001, 1000))
    if rate.denominator != 1 and abs(rate * Fraction(1001, 1000) - ntsc) < Fraction(1, 100):
        return Fraction(ntsc * 1000, 1001)
    return rate


def is_pattern(path: Path | str) -> bool:
    """A printf pattern of numbered images (`%d`, `%04d`), not a file that happens to hold a `%`."""
    path = Path(path)
    fields = _FIELD.findall(path.name.replace("%%", ""))
    return len(fields) == 1 and path.suffix.lower() in IMAGE_EXTENSIONS and not path.exists()


@dataclass(frozen=True)
class ImageSequence:
    pattern: Path  # folder/prefix%04d.png
    first: int  # the number of the first image
    count: int  # images first … first + count - 1, without gaps

    def open(self, fps: Fraction | None = None) -> av.container.InputContainer:
        options = {"framerate": str(fps or DEFAULT_FPS), "start_number": str(self.first)}
        try:
            return av.open(str(self.pattern), "r", format="image2", options=options)
        except av.error.FFmpegError as exc:
            raise InputError(f"not a readable image sequence: {self.pattern} ({exc})") from None

    def files(self) -> list[Path]:
        return [
            self.pattern.parent / image_name(self.pattern.name, n)
            for n in range(self.first, self.first + self.count)
        ]


def image_name(pattern_name: str, number: int) -> str:
    """The name `pattern_name` gives image `number` (`f_%04d.png`, 7 → `f_0007.png`)."""
    field = _FIELD.search(pattern_name)
    text = pattern_name[: field.start()] + (f"%{field.group(1)}d" % number) + pattern_name[field.end() :]
    return text.replace("%%", "%")


def _shape(pattern_name: str) -> tuple[re.Pattern, str]:
    """A regex for the names `pattern_name` gives (the number captured), and its field's width."""
    field = _FIELD.search(pattern_name)
    head, tail = pattern_name[: field.start()], pattern_name[field.end() :]
    unescape = lambda text: re.escape(text.replace("%%", "%"))  # noqa: E731
    return re.compile(unescape(head) + r"(\d+)" + unescape(tail) + "$"), field.group(1)


def _number(shape: re.Pattern, width: str, name: str) -> int | None:
    """The number of image `name` under a pattern's `_shape`, or None if the pattern does not
    give that name (`%04d` gives `0007`, not `7` or `00007`)."""
    found = shape.match(name)
    return int(found[1]) if found and f"%{width}d" % int(found[1]) == found[1] else None


def names_image_of(pattern: Path, name: str) -> bool:
    """Whether file `name` is one of the images `pattern` names."""
    return _number(*_shape(pattern.name), name) is not None


def find_sequence(pattern: Path) -> ImageSequence:
    """The images a pattern names: numbered from the smallest found, without a gap (FFmpeg's
    reader stops at the first missing number, so a gap would silently cut the video short)."""
    folder, name = pattern.parent, pattern.name
    if not folder.is_dir():
        raise InputError(f"input not found: {folder} (the folder of {pattern})")
    shape, width = _shape(name)
    numbers = sorted(n for e in folder.iterdir() if (n := _number(shape, width, e.name)) is not None)
    if not numbers:
        raise InputError(f"input not found: no images match {pattern}")
    first = numbers[0]
    for offset, number in enumerate(numbers):
        if number != first + offset:
            missing = image_name(name, first + offset)
            raise InputError(
                f"image sequence {pattern} has a gap: {missing} is missing "
                f"({offset} images from {image_name(name, first)}, more after it)"
            )
    return ImageSequence(pattern, first, len(numbers))


def folder_pattern(folder: Path, names: list[str]) -> Path | None:
    """The pattern of the numbered images among `names` (files of `folder`), or None when none is
    numbered. Images of more than one sequence, or numbered inconsistently, are an error: which
    to take is the user's choice."""
    images = [n for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS]
    groups: dict[tuple[str, str], list[str]] = {}
    for name in images:
        found = _NUMBERED.match(name)
        key = (found[1], found[3]) if found else (name, "")
        groups.setdefault(key, []).append(found[2] if found else "")
    numbered = {key: digits for key, digits in groups.items() if key[1]}
    if not numbered:
        return None
    if len(groups) > 1:
        shown = ", ".join(_group_name(key, digits) for key, digits in sorted(groups.items())[:3])
        raise InputError(
            f"{folder} holds images of more than one sequence ({shown}): give one as a pattern, "
            f"e.g. {folder / _group_name(*next(iter(numbered.items())))}"
        )
    ((key, digits),) = numbered.items()
    name = _group_name(key, digits)
    if not all(image_name(name, int(d)) == key[0] + d + key[1] for d in digits):
        raise InputError(f"the images in {folder} are not numbered consistently (some zero-padded, some not)")
    return folder / name


def _group_name(key: tuple[str, str], digits: list[str]) -> str:
    prefix, ext = key
    if not ext:
        return prefix  # an unnumbered image
    widths = {len(d) for d in digits}
    field = f"%0{widths.pop()}d" if len(widths) == 1 else "%d"
    return prefix.replace("%", "%%") + field + ext


def stamp(path: Path) -> tuple[int, int]:
    """(bytes, newest modification time) of an input file or sequence: what changes when it does."""
    if is_pattern(path):
        stats = [f.stat() for f in find_sequence(path).files()]
        return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def left_out(info) -> str | None:
    """One line naming what an image-sequence output leaves out of `info`'s input (audio,
    subtitles), or None."""
    left = [f"{n} {kind} stream{'s' if n > 1 else ''}" for kind, n in
            (("audio", info.audio_streams), ("subtitle", info.subtitle_streams)) if n]  # fmt: skip
    return f"{info.path.name}: not carried into the image sequence: {', '.join(left)}" if left else None


def output_pattern_name(source: Path, ext: str) -> str:
    """The image names of an output sequence: an input sequence's own (with `ext`), else `%06d`."""
    if is_pattern(source):
        return Path(source.name).with_suffix(ext).name
    return f"%06d{ext}"


def first_number(source: Path) -> int:
    """The number of an output sequence's image for input frame 0: an input sequence's own
    numbering is kept; a video's frames are numbered from 1 (as FFmpeg does)."""
    return find_sequence(source).first if is_pattern(source) else 1


def check_image_output(target: Path) -> str:
    """The image encoder for an output pattern, or a usage error naming the formats we write."""
    codec = IMAGE_FORMATS.get(target.suffix.lower())
    if codec is None:
        raise UsageError(
            f"image sequences are written as {', '.join(sorted(IMAGE_FORMATS))}, not {target.suffix!r}: {target}"
        )
    return codec


class SequenceWriter:
    """`VideoWriter`'s `write`/`close`/`abort` for an image sequence: one image per frame, numbered
    from `first` in frame order; 16-bit RGB for 16-bit frames (>8-bit input), else 8-bit."""

    def __init__(
        self, pattern: Path, size: tuple[int, int], high_depth: bool, first: int, fps: Fraction | None
    ):
        codec = check_image_output(pattern)
        self.path = pattern
        try:
            self.container = av.open(str(pattern), "w", format="image2", options={"start_number": str(first)})
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create output {pattern}: {exc}") from None
        self.stream = self.container.add_stream(codec, rate=fps or DEFAULT_FPS)
        self.stream.width, self.stream.height = size
        big_endian = codec == "png"  # PNG stores 16-bit samples big-endian; TIFF takes little-endian
        self.stream.pix_fmt = ("rgb48be" if big_endian else "rgb48le") if high_depth else "rgb24"
        self.frames_written = 0

    def write(self, pts: int | None, duration: int | None, image: np.ndarray) -> None:
        rgb_format = "rgb48le" if image.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=rgb_format)
        frame = frame.reformat(format=self.stream.pix_fmt)
        frame.pts = self.frames_written
        self._mux(self.stream.encode(frame))
        self.frames_written += 1

    def _mux(self, packets) -> None:
        try:
            for packet in packets:
                self.container.mux(packet)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from None

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the folder is being discarded anyway
            pass
