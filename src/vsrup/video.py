"""Video in and out with PyAV: probe, a streaming frame reader, and a writer that re-encodes the
video while copying audio and subtitle packets untouched.

Timestamps are sacred: every frame carries its pts (in the input stream's time base) through the
whole pipeline and is written with the same pts, so variable frame rate survives and nothing is
renumbered. Audio and subtitles never leave the packet level.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.subtitles.subtitle import SubtitleSet
from av.video.reformatter import ColorRange, Colorspace

from vsrup.errors import InputError, OutputError, UsageError

log = logging.getLogger(__name__)

# AVColorSpace code → the swscale matrix that converts it to RGB.
_MATRIX = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.SMPTE170M}
_MATRIX |= {7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG

# Default encoder per container, and which subtitle codecs each container can hold.
_DEFAULT_CODEC = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264"}
_DEFAULT_CODEC |= {".webm": "libvpx-vp9", ".avi": "mpeg4", ".nut": "ffv1"}
_SUBTITLE_CODECS = {".mp4": {"mov_text"}, ".m4v": {"mov_text"}, ".mov": {"mov_text"}}
_SUBTITLE_CODECS |= {".webm": {"webvtt"}, ".avi": set()}
_LOSSLESS_CODECS = {"ffv1"}


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
    frames: int | None  # from the container header; None if absent (then estimated by duration)
    duration: float | None
    rotation: int
    color: ColorInfo
    audio_streams: int = 0
    subtitle_streams: int = 0
    other_streams: list[str] = field(default_factory=list)

    @property
    def frames_estimate(self) -> int | None:
        if self.frames:
            return self.frames
        if self.duration and self.frame_rate:
            return max(1, round(self.duration * float(self.frame_rate)))
        return None


@dataclass
class Frame:
    """One decoded frame: an RGB image (uint8, or uint16 for >8-bit input) and its timing."""

    index: int
    pts: int | None
    duration: int | None
    image: np.ndarray  # (H, W, 3)


def open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not a video: {path}")
    try:
        return av.open(str(path), "r")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable video: {path} ({ffmpeg_reason(exc)})") from None


def ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def probe(path: Path | str) -> VideoInfo:
    """Read a file's stream facts without decoding it."""
    path = Path(path)
    with open_input(path) as container:
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
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
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
            rotation=_rotation(path),
            color=ColorInfo(ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range),
            audio_streams=len(container.streams.audio),
            subtitle_streams=len(container.streams.subtitles),
            other_streams=[s.type for s in container.streams if s.type not in ("video", "audio", "subtitle")],
        )


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
    if info.color.matrix in _MATRIX:
        return _MATRIX[info.color.matrix]
    return Colorspace.ITU709 if info.height >= 720 else Colorspace.ITU601


def color_range_of(info: VideoInfo) -> ColorRange:
    return ColorRange.JPEG if info.color.range == _FULL_RANGE else ColorRange.MPEG


def read_frames(info: VideoInfo) -> Iterator[Frame]:
    """Decode the first video stream frame by frame, in presentation order, with timestamps.

    Memory stays at one frame: nothing is buffered beyond what the decoder itself holds.
    """
    rgb_format = "rgb48le" if info.bit_depth > 8 else "rgb24"
    matrix, color_range = rgb_matrix(info), color_range_of(info)
    with open_input(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                rgb = frame.reformat(
                    format=rgb_format, src_colorspace=matrix, src_color_range=color_range
                ).to_ndarray()
                yield Frame(index, frame.pts, frame.duration, rgb)
                index += 1
        except av.error.FFmpegError as exc:
            raise InputError(
                f"corrupt video data in {info.path} after {index} frames: {ffmpeg_reason(exc)}"
            ) from None
    if index == 0:
        raise InputError(f"no video frames could be decoded from {info.path}")
    _warn_if_short(info, index)


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


@dataclass
class EncodeSettings:
    codec: str | None = None  # None: chosen from the output's extension
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None  # None: 8-bit 4:2:0, or 10-bit where the input is >8-bit


def choose_codec(output: Path, settings: EncodeSettings) -> str:
    ext = output.suffix.lower()
    if settings.codec:
        if settings.codec not in av.codecs_available:
            raise UsageError(f"unknown codec {settings.codec!r}")
        return settings.codec
    if ext not in _DEFAULT_CODEC:
        raise UsageError(
            f"unsupported output extension {ext!r}; use one of {', '.join(sorted(_DEFAULT_CODEC))}"
        )
    return _DEFAULT_CODEC[ext]


def writable_extension(ext: str) -> str:
    """The extension to write for an input with `ext`: the same where we can encode it, else .mkv."""
    return ext if ext.lower() in _DEFAULT_CODEC else ".mkv"


def choose_pix_fmt(codec: av.codec.Codec, info: VideoInfo, settings: EncodeSettings) -> str:
    supported = [f.name for f in (codec.video_formats or [])]
    if settings.pix_fmt:
        if supported and settings.pix_fmt not in supported:
            raise UsageError(
                f"{codec.name} cannot encode {settings.pix_fmt}; it takes {', '.join(supported)}"
            )
        return settings.pix_fmt
    wanted = ["yuv420p10le", "yuv420p"] if info.bit_depth > 8 else ["yuv420p"]
    if codec.name in _LOSSLESS_CODECS:  # lossless: keep the input's layout where possible
        wanted = [info.pix_fmt, *wanted]
    for name in wanted:
        if not supported or name in supported:
            return name
    return supported[0]


class VideoWriter:
    """Encodes upscaled frames to `path` and copies the input's audio/subtitle packets beside them.

    The copied packets are read lazily from a second demuxer of the input and interleaved by time
    with the video packets, so memory stays flat however long the video is.
    """

    def __init__(self, path: Path, info: VideoInfo, scale: int, settings: EncodeSettings, fmt_ext: str):
        self.info = info
        self.path = path
        codec_name = choose_codec(Path("x" + fmt_ext), settings)
        try:
            self.container = av.open(str(path), "w", format=muxer_for(fmt_ext))
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create output {path}: {ffmpeg_reason(exc)}") from None
        self.stream = self._add_video_stream(codec_name, scale, settings)
        self._passthrough = Passthrough(info, self.container, fmt_ext)
        self.frames_written = 0

    def _add_video_stream(self, codec_name: str, scale: int, settings: EncodeSettings):
        info = self.info
        rate = info.frame_rate or Fraction(25)
        stream = self.container.add_stream(codec_name, rate=rate)
        codec = stream.codec_context.codec
        stream.width, stream.height = info.width * scale, info.height * scale
        stream.pix_fmt = choose_pix_fmt(codec, info, settings)
        # Encode in the input's time base so that every pts is written back exactly as read.
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc = info.color.primaries, info.color.transfer
        ctx.colorspace, ctx.color_range = info.color.matrix, info.color.range
        options = {}
        if settings.crf is not None:
            options["crf"] = str(settings.crf)
        elif codec.name in ("libx264", "libx265"):
            options["crf"] = "18"  # visually lossless-ish: an upscaler should not add artefacts
        if settings.preset:
            options["preset"] = settings.preset
        if codec.name == "libvpx-vp9":
            options.setdefault("b", "0")
        stream.options = options
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        self._yuv_matrix = rgb_matrix(info)
        self._yuv_range = color_range_of(info)
        return stream

    def write(self, pts: int | None, duration: int | None, image: np.ndarray) -> None:
        rgb_format = "rgb48le" if image.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=rgb_format)
        frame = frame.reformat(
            format=self.stream.pix_fmt,
            dst_colorspace=self._yuv_matrix,
            dst_color_range=self._yuv_range,
        )
        frame.pts = pts if pts is not None else self.frames_written
        frame.time_base = self.info.time_base
        if duration:
            frame.duration = duration
        self._mux(self.stream.encode(frame))
        self.frames_written += 1

    def _mux(self, packets) -> None:
        for packet in packets:
            if packet.pts is not None:
                self._passthrough.mux_until(float(packet.pts * packet.time_base))
            try:
                self.container.mux(packet)
            except OSError as exc:
                raise OutputError(f"cannot write {self.path}: {ffmpeg_reason(exc)}") from None

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self._passthrough.mux_until(math.inf)
        self._passthrough.close()
        self.container.close()

    def abort(self) -> None:
        self._passthrough.close()
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being discarded anyway
            pass


def muxer_for(ext: str) -> str | None:
    return {".mkv": "matroska", ".webm": "webm", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}.get(ext)


# Codecs a muxer's codec table accepts but its header writer then refuses.
_REFUSED_PREFIXES = {".mp4": ("pcm_",), ".m4v": ("pcm_",)}


def _fits(stream, supported: set[str], ext: str) -> bool:
    """Whether a stream can be copied into the output container as it is.

    Audio that cannot is an error before any work: losing the sound is not ours to decide, and
    another container (or re-encoding the audio first) fixes it. A subtitle stream that cannot is
    converted when it is text, else dropped with a warning (see `Passthrough`).
    """
    name = stream.codec_context.name if stream.codec_context else "unknown"
    allowed = _SUBTITLE_CODECS.get(ext) if stream.type == "subtitle" else None
    fits = name in supported and not name.startswith(_REFUSED_PREFIXES.get(ext, ()))
    if fits and (allowed is None or name in allowed):
        return True
    if stream.type == "audio":
        raise UsageError(
            f"audio stream {stream.index} ({name}) cannot be copied into a {ext} file; "
            "write .mkv or .mov instead"
        )
    return False


# Text subtitles can change format without losing anything but styling: the text format each
# container holds, and the formats we know to be text (bitmap subtitles cannot be converted).
_TEXT_SUBTITLE_FOR = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".mkv": "subrip"}
_TEXT_SUBTITLE_FOR |= {".webm": "webvtt"}
_TEXT_SUBTITLES = {"srt", "subrip", "ass", "ssa", "webvtt", "mov_text", "text"}


class _SubtitleConverter:
    """Re-encodes a text subtitle stream (e.g. SRT from Matroska) into the text format the output
    container holds (mov_text for MP4), cue by cue, keeping every cue's time."""

    def __init__(self, source, output, codec_name: str) -> None:
        self._decoder = source.codec_context
        self._decoder.open()  # sets the ASS header the encoder starts from
        self.stream = output.add_stream(codec_name)
        self.stream.time_base = source.time_base
        encoder = self.stream.codec_context
        encoder.time_base = source.time_base
        encoder.subtitle_header = self._decoder.subtitle_header
        encoder.open()

    @classmethod
    def make(cls, source, output, ext: str) -> _SubtitleConverter | None:
        name = source.codec_context.name if source.codec_context else "unknown"
        target = _TEXT_SUBTITLE_FOR.get(ext)
        if name not in _TEXT_SUBTITLES or target is None:
            return None
        try:
            return cls(source, output, target)
        except (av.error.FFmpegError, ValueError) as exc:
            log.debug("cannot convert subtitle stream %d: %s", source.index, exc)
            return None

    def convert(self, packet: av.Packet) -> list[av.Packet]:
        converted = []
        for cue in self._decoder.decode(packet):
            text = getattr(cue, "ass", None)
            if not text:
                continue
            subtitle = SubtitleSet.create(text=text, start=0, end=packet.duration or 0, pts=packet.pts)
            out = self.stream.codec_context.encode_subtitle(subtitle)
            out.pts = out.dts = packet.pts
            out.duration, out.time_base, out.stream = packet.duration, packet.time_base, self.stream
            converted.append(out)
        return converted


class Passthrough:
    """Copies audio and subtitle packets from the input to the output, unchanged, in time order."""

    def __init__(self, info: VideoInfo, output, fmt_ext: str):
        self._input = open_input(info.path)
        self._map = {}
        self._converters: dict[int, _SubtitleConverter] = {}
        try:
            supported = output.supported_codecs
            for stream in self._input.streams:
                if stream.type not in ("audio", "subtitle"):
                    continue
                if _fits(stream, supported, fmt_ext):
                    self._map[stream.index] = output.add_stream_from_template(stream)
                elif converter := _SubtitleConverter.make(stream, output, fmt_ext):
                    self._map[stream.index], self._converters[stream.index] = converter.stream, converter
                    log.warning("converting subtitle stream %d to %s for %s", stream.index,
                                converter.stream.codec_context.name, fmt_ext)  # fmt: skip
                else:
                    name = stream.codec_context.name if stream.codec_context else "unknown"
                    log.warning("dropping subtitle stream %d (%s): a %s file cannot hold it",
                                stream.index, name, fmt_ext)  # fmt: skip
        except BaseException:
            self._input.close()
            raise
        self._output = output
        self._packets = (
            self._input.demux(*[self._input.streams[i] for i in self._map]) if self._map else iter(())
        )
        self._pending = None

    def mux_until(self, seconds: float) -> None:
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.dts is None and packet.size == 0:
                continue  # demuxer's end-of-stream marker
            when = packet.dts if packet.dts is not None else packet.pts
            if when is not None and float(when * packet.time_base) > seconds:
                self._pending = packet
                return
            index = packet.stream.index
            if index in self._converters:
                outgoing = self._converters[index].convert(packet)
            else:
                packet.stream = self._map[index]
                outgoing = [packet]
            for out in outgoing:
                self._output.mux(out)

    def close(self) -> None:
        self._input.close()
