"""The video writer: encodes upscaled frames with the input's timestamps and colour tags, and (for a
whole file) copies the input's audio and subtitle packets beside them.

The output size is given by the caller (the model declares it: see `ModelDescription.output_size`), so a
wider comparison video needs no special writer. Segment files (`passthrough=False`) hold the
video stream alone; their audio is muxed once when they are joined (`io.concat`).
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsrup.errors import OutputError, UsageError
from vsrup.io.passthrough import NoPassthrough, Passthrough
from vsrup.io.probe import VideoInfo, color_range_of, ffmpeg_reason, matrix_of, output_color
from vsrup.io.timecode import TIMECODE_CONTAINERS

log = logging.getLogger(__name__)

# Default encoder per container.
_DEFAULT_CODEC = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264"}
_DEFAULT_CODEC |= {".webm": "libvpx-vp9", ".avi": "mpeg4", ".nut": "ffv1"}
WRITABLE_VIDEO = tuple(_DEFAULT_CODEC)  # the video containers we write
_LOSSLESS_CODECS = {"ffv1"}
# Containers for editing and archiving, whose players decode H.264/HEVC 4:4:4 and 4:2:2 in
# software: the input's chroma layout is kept there (see `choose_pix_fmt`).
KEEP_CHROMA_CONTAINERS = {".mkv", ".nut"}
# >8-bit input in an H.264 container: HEVC Main10, tagged hvc1 where the container is MP4/QuickTime
# (Apple devices and browsers play only that tag; hev1 is FFmpeg's default).
_HIGH_DEPTH_CODEC = "libx265"
HVC1_CONTAINERS = {".mp4", ".m4v", ".mov"}
# Segment files: NUT keeps every timestamp exact in any time base (Matroska rounds to
# milliseconds) and holds any codec, so the final container is chosen only at the end.
SEGMENT_EXT = ".nut"


@dataclass
class EncodeSettings:
    codec: str | None = None  # None: chosen from the output's extension
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None  # None: 8-bit 4:2:0, or 10-bit where the input is >8-bit


def choose_codec(output: Path, settings: EncodeSettings, info: VideoInfo | None = None) -> str:
    """The video encoder for `output`: `--codec`, else the extension's default. With `info`, >8-bit
    input in an H.264 container gets HEVC Main10 (libx265): 10-bit H.264 (High 10) is refused by
    most hardware decoders and browsers, HEVC Main10 is not. Without libx265 it stays H.264 and
    says so once."""
    ext = output.suffix.lower()
    if settings.codec:
        if settings.codec not in av.codecs_available:
            raise UsageError(f"unknown codec {settings.codec!r}")
        return settings.codec
    if ext not in _DEFAULT_CODEC:
        raise UsageError(
            f"unsupported output extension {ext!r}; use one of {', '.join(sorted(_DEFAULT_CODEC))}"
        )
    codec = _DEFAULT_CODEC[ext]
    if codec == "libx264" and info is not None and _high_depth(info, settings):
        if _HIGH_DEPTH_CODEC in av.codecs_available:
            return _HIGH_DEPTH_CODEC
        _warn_once(
            f"this FFmpeg has no {_HIGH_DEPTH_CODEC}: {info.bit_depth}-bit input is encoded as 10-bit "
            "H.264 (High 10), which many devices and browsers cannot play; "
            "--pix-fmt yuv420p gives 8-bit H.264 that plays everywhere"
        )
    return codec


def _high_depth(info: VideoInfo, settings: EncodeSettings) -> bool:
    """Whether the output will be >8-bit: >8-bit input, unless --pix-fmt asks for 8 bits."""
    if settings.pix_fmt:
        try:
            fmt = av.VideoFormat(settings.pix_fmt)
        except ValueError:
            pass  # an unknown name: choose_pix_fmt says so
        else:
            return max((c.bits for c in fmt.components), default=8) > 8
    return info.bit_depth > 8


@functools.cache
def _warn_once(text: str) -> None:
    log.warning("%s", text)


def writable_extension(ext: str) -> str:
    """The extension to write for an input with `ext`: the same where we can encode it, else .mkv."""
    return ext if ext.lower() in _DEFAULT_CODEC else ".mkv"


def choose_pix_fmt(
    codec: av.codec.Codec, info: VideoInfo, settings: EncodeSettings, ext: str | None = None
) -> str:
    """`--pix-fmt`, else 8-bit 4:2:0 (10-bit for >8-bit input). The input's chroma layout (4:4:4,
    4:2:2) is kept in the containers made for editing and archiving (`.mkv`, `.nut`) and by a
    lossless codec; `.mp4`/`.mov`/`.webm` are for playing, and most players (browsers, phones,
    hardware decoders) cannot play H.264 High 4:4:4, so there it becomes 4:2:0, said once."""
    supported = [f.name for f in (codec.video_formats or [])]
    if settings.pix_fmt:
        if supported and settings.pix_fmt not in supported:
            raise UsageError(
                f"{codec.name} cannot encode {settings.pix_fmt}; it takes {', '.join(supported)}"
            )
        return settings.pix_fmt
    deep = "10le" if info.bit_depth > 8 else ""
    wanted = [f"yuv420p{deep}", "yuv420p"]
    chroma = chroma_of(info.pix_fmt)
    if chroma in ("444", "422"):
        if codec.name in _LOSSLESS_CODECS or (ext or "").lower() in KEEP_CHROMA_CONTAINERS:
            wanted = [f"yuv{chroma}p{deep}", f"yuv{chroma}p", *wanted]
        elif ext:
            _warn_once(
                f"the input is {chroma[0]}:{chroma[1]}:{chroma[2]} ({info.pix_fmt}); a {ext} output is "
                f"4:2:0 ({wanted[0]}), which every player plays; write .mkv, or --pix-fmt "
                f"yuv{chroma}p{deep}, to keep full chroma"
            )
    if codec.name in _LOSSLESS_CODECS:  # lossless: keep the input's layout where possible
        wanted = [info.pix_fmt, *wanted]
    for name in wanted:
        if not supported or name in supported:
            return name
    return supported[0]


def chroma_of(pix_fmt: str) -> str | None:
    """ "444", "422", "420"... for a planar YUV format name (yuv444p10le, yuvj422p); None otherwise
    (RGB, grey, palette: pictures whose 4:2:0 output is no loss of their layout)."""
    match = re.match(r"yuvj?(4\d\d)p", pix_fmt)
    return match[1] if match else None


def segment_codec(output: Path, settings: EncodeSettings, info: VideoInfo | None = None) -> EncodeSettings:
    """Encode settings for segment files of `output`: the codec and pixel format the output's
    extension picks (for the input `info`), named explicitly, since segment files have an
    extension of their own."""
    codec = choose_codec(Path(output), settings, info)
    pix_fmt = settings.pix_fmt
    if pix_fmt is None and info is not None:
        pix_fmt = choose_pix_fmt(av.codec.Codec(codec, "w"), info, settings, Path(output).suffix)
    return EncodeSettings(codec=codec, crf=settings.crf, preset=settings.preset, pix_fmt=pix_fmt)


def check_audio(info: VideoInfo, output: Path, audio: str) -> None:
    """With `--audio copy`, raise now the error the join of segment files (`--resume`, `--devices`)
    would raise at the end for audio the output container cannot hold."""
    if audio != "copy" or not info.audio_streams:
        return
    ext = Path(output).suffix.lower()
    with av.open(io.BytesIO(), "w", format=muxer_for(ext) or ext.lstrip(".")) as container:
        Passthrough(info, container, ext, audio).close()


def muxer_for(ext: str) -> str | None:
    return {".mkv": "matroska", ".webm": "webm", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}.get(ext)


class VideoWriter:
    """Encodes upscaled frames to `path` and copies the input's audio/subtitle packets beside them.

    The copied packets are read lazily from a second demuxer of the input and interleaved by time
    with the video packets, so memory stays flat however long the video is.
    """

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        size: tuple[int, int],
        settings: EncodeSettings,
        fmt_ext: str,
        passthrough: bool = True,
        audio: str = "auto",
        timecode: str | None = None,
    ):
        """`size` is the (width, height) of the encoded frames. `passthrough=False` writes a video-only
        segment whose timestamps are kept exactly as given. `audio`: see `Passthrough`. `timecode`: the
        SMPTE label of the first frame written, where the container can hold one."""
        self.info = info
        self.path = path
        self.fmt_ext = fmt_ext
        codec_name = choose_codec(Path("x" + fmt_ext), settings, info)
        # A segment keeps every timestamp as given: by default NUT shifts a B-frame stream that starts
        # at pts 0 (negative decode times) later by the reorder delay, which moved segment 0.
        options = {} if passthrough else {"avoid_negative_ts": "disabled"}
        try:
            self.container = av.open(str(path), "w", format=muxer_for(fmt_ext), options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create output {path}: {ffmpeg_reason(exc)}") from None
        self.stream = self._add_video_stream(codec_name, size, settings)
        if timecode and fmt_ext in TIMECODE_CONTAINERS:
            self.stream.metadata["timecode"] = timecode  # MP4/MOV: a tmcd track; Matroska: a tag
        if fmt_ext in HVC1_CONTAINERS and self.stream.codec_context.codec.canonical_name == "hevc":
            self.stream.codec_tag = "hvc1"
        self._passthrough = (
            Passthrough(info, self.container, fmt_ext, audio) if passthrough else NoPassthrough()
        )
        self.frames_written = 0

    def _add_video_stream(self, codec_name: str, size: tuple[int, int], settings: EncodeSettings):
        info = self.info
        rate = info.frame_rate or Fraction(25)
        stream = self.container.add_stream(codec_name, rate=rate)
        codec = stream.codec_context.codec
        stream.width, stream.height = size
        stream.pix_fmt = choose_pix_fmt(codec, info, settings, self.fmt_ext)
        # Encode in the input's time base so that every pts is written back exactly as read.
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        ctx = stream.codec_context
        color = output_color(info, size[1])
        ctx.color_primaries, ctx.color_trc = color.primaries, color.transfer
        ctx.colorspace, ctx.color_range = color.matrix, color.range
        options = {}
        if settings.crf is not None:
            options["crf"] = str(settings.crf)
        elif codec.name in ("libx264", "libx265"):
            options["crf"] = "18"  # visually lossless-ish: an upscaler should not add artefacts
        if settings.preset:
            options["preset"] = settings.preset
        if codec.name == "libx265":
            options["x265-params"] = "log-level=error"  # x265 prints its settings to stderr
        if codec.name == "libvpx-vp9":
            options.setdefault("b", "0")
        stream.options = options
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        self._yuv_matrix = matrix_of(color, size[1])
        self._yuv_range = color_range_of(color)
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
