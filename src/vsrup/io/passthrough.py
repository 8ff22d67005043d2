"""Audio and subtitle packets copied from the input into the output, untouched and in time order.

Audio and subtitles stay at the packet level wherever the output container can hold them. Audio it
cannot hold is re-encoded (Opus for WebM, AAC for MP4/QuickTime), frame by frame as its packets
come, with its timestamps, and said once; with `--audio copy` it is an error before any work
instead, and `--audio none` drops the audio. Text subtitles a container cannot hold are converted
cue by cue into the text format it does hold; bitmap ones are dropped with a warning.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
from av.subtitles.subtitle import SubtitleSet

from vsrup.errors import UsageError
from vsrup.io.probe import VideoInfo, open_input
from vsrup.io.timecode import TIMECODE_CONTAINERS

log = logging.getLogger(__name__)

# Which subtitle codecs each container can hold.
_SUBTITLE_CODECS = {".mp4": {"mov_text"}, ".m4v": {"mov_text"}, ".mov": {"mov_text"}}
_SUBTITLE_CODECS |= {".webm": {"webvtt"}, ".avi": set()}
# Codecs a muxer's codec table accepts but its header writer then refuses.
_REFUSED_PREFIXES = {".mp4": ("pcm_",), ".m4v": ("pcm_",)}


AUDIO_MODES = ("auto", "copy", "none")
# The audio encoders to re-encode with, per container, best first (the first one FFmpeg has).
_AUDIO_ENCODERS = {".webm": ("libopus", "libvorbis"), ".avi": ("libmp3lame", "aac")}
_AUDIO_ENCODERS |= {".mkv": ("libopus", "aac")}
_DEFAULT_AUDIO_ENCODERS = ("aac",)
_USUAL_LAYOUT = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_USUAL_LAYOUT = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_BITS_PER_CHANNEL = {"libopus": 64_000, "libvorbis": 80_000}  # else 96 kb/s per channel


def _fits(stream, supported: set[str], ext: str, strict: bool = False) -> bool:
    """Whether a stream can be copied into the output container as it is.

    With `strict` (`--audio copy`), audio that cannot is an error before any work; otherwise it is
    re-encoded. A subtitle stream that cannot is converted when it is text, else dropped with a
    warning (see `Passthrough`).
    """
    name = _codec_name(stream)
    allowed = _SUBTITLE_CODECS.get(ext) if stream.type == "subtitle" else None
    fits = name in supported and not name.startswith(_REFUSED_PREFIXES.get(ext, ()))
    if fits and (allowed is None or name in allowed):
        return True
    if stream.type == "audio" and strict:
        raise UsageError(
            f"audio stream {stream.index} ({name}) cannot be copied into a {ext} file; "
            "write .mkv or .mov instead, or re-encode it with --audio auto"
        )
    return False


def _codec_name(stream) -> str:
    return stream.codec_context.name if stream.codec_context else "unknown"


class _AudioTranscoder:
    """Re-encodes an audio stream the output container cannot hold into one it can, frame by frame
    as the packets come (nothing is buffered beyond the codecs' own delay). Decoded frames keep their
    timestamps, so the first sample and the length stay where they were."""

    def __init__(self, source, output, codec_name: str) -> None:
        self._decoder = source.codec_context
        codec = av.codec.Codec(codec_name, "w")
        rate = self._decoder.sample_rate
        rates = codec.audio_rates or ()
        if rates and rate not in rates:  # Opus: 48 kHz and fractions of it
            rate = min((r for r in rates if r >= rate), default=max(rates))
        channels = self._decoder.channels or 2
        layout = self._decoder.layout.name if self._decoder.layout else ""
        if not layout or layout.endswith("channels"):  # no channel order (raw PCM): the usual one
            layout = _USUAL_LAYOUT.get(channels, "stereo")
        self.stream = output.add_stream(codec_name, rate=rate, layout=layout)
        self.stream.time_base = Fraction(1, rate)
        self.stream.codec_context.bit_rate = _BITS_PER_CHANNEL.get(codec_name, 96_000) * channels
        for key in ("language", "title"):
            if key in source.metadata:
                self.stream.metadata[key] = source.metadata[key]
        sample_format = codec.audio_formats[0].name if codec.audio_formats else "fltp"
        self._resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
        self._flushed = False

    @classmethod
    def make(cls, source, output, ext: str) -> _AudioTranscoder:
        name = _codec_name(source)
        encoders = [e for e in _AUDIO_ENCODERS.get(ext, _DEFAULT_AUDIO_ENCODERS) if e in av.codecs_available]
        if source.codec_context is None or not encoders:
            raise UsageError(
                f"audio stream {source.index} ({name}) cannot be copied into a {ext} file and this "
                "FFmpeg cannot re-encode it; write .mkv instead, or drop it with --audio none"
            )
        try:
            transcoder = cls(source, output, encoders[0])
            transcoder.stream.codec_context.open()  # a refusal now, not after the video is done
        except (av.error.FFmpegError, ValueError) as exc:
            raise UsageError(
                f"audio stream {source.index} ({name}) cannot be copied into a {ext} file and "
                f"re-encoding it with {encoders[0]} failed ({exc}); write .mkv instead, or drop it "
                "with --audio none"
            ) from None
        log.warning("re-encoding audio stream %d (%s) as %s: a %s file cannot hold %s",
                    source.index, name, transcoder.stream.codec_context.name, ext, name)  # fmt: skip
        return transcoder

    def convert(self, packet: av.Packet | None) -> list[av.Packet]:
        """The output packets that `packet` completes (None: flush everything still held)."""
        out = []
        try:
            frames = self._decoder.decode(packet)
        except av.error.FFmpegError as exc:  # a damaged packet: skip it, as players do
            log.debug("audio packet at pts %s does not decode: %s", packet and packet.pts, exc)
            frames = []
        for frame in frames:
            for resampled in self._resampler.resample(frame):
                out += self.stream.encode(resampled)
        if packet is None:
            for resampled in self._resampler.resample(None):
                out += self.stream.encode(resampled)
            out += self.stream.encode(None)
        return out

    def flush(self) -> list[av.Packet]:
        if self._flushed:
            return []
        self._flushed = True
        return self.convert(None)


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

    def __init__(self, info: VideoInfo, output, fmt_ext: str, audio: str = "auto"):
        """`audio`: auto (copy where the container can hold it, else re-encode), copy (an error
        where it cannot) or none (leave the audio out)."""
        if audio not in AUDIO_MODES:
            raise UsageError(f"--audio must be one of {', '.join(AUDIO_MODES)} (got {audio!r})")
        self._input = open_input(info.path, info.frame_rate)
        self._map = {}
        self._converters: dict[int, _SubtitleConverter | _AudioTranscoder] = {}
        try:
            supported = output.supported_codecs
            for stream in self._input.streams:
                if stream.type not in ("audio", "subtitle") or (stream.type == "audio" and audio == "none"):
                    continue
                if _fits(stream, supported, fmt_ext, strict=audio == "copy"):
                    self._map[stream.index] = output.add_stream_from_template(stream)
                elif stream.type == "audio":
                    transcoder = _AudioTranscoder.make(stream, output, fmt_ext)
                    self._map[stream.index], self._converters[stream.index] = transcoder.stream, transcoder
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
            if packet is None:  # the input is done: what the audio encoders still hold goes out
                for converter in self._converters.values():
                    if isinstance(converter, _AudioTranscoder):
                        for out in converter.flush():
                            self._output.mux(out)
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


def not_carried(info: VideoInfo, ext: str) -> str | None:
    """One line naming the input streams an `ext` output leaves out unasked, or None: data streams
    (camera metadata; a timecode track where the output cannot hold the timecode), attachments,
    video streams beyond the one upscaled (cover art). Subtitles a container cannot hold are warned
    of as they drop."""
    timecode_kept = info.timecode is not None and ext in TIMECODE_CONTAINERS
    left = []
    with open_input(info.path, info.frame_rate) as container:
        upscaled = container.streams.video[0].index
        for stream in container.streams:
            if stream.index == upscaled or stream.type in ("audio", "subtitle"):
                continue
            if timecode_kept and stream.type == "data" and "timecode" in stream.metadata:
                continue  # written again by the output's muxer from the video stream's tag
            left.append(f"stream {stream.index} ({_stream_words(stream)})")
    if not left:
        return None
    return f"{info.path.name}: not carried into the output: {', '.join(left)}"


def _stream_words(stream) -> str:
    meta = stream.metadata
    if stream.type == "data":
        what = "timecode" if "timecode" in meta else (meta.get("handler_name") or "unknown")
        return f"data: {what}"
    words = f"{stream.type}: {_codec_name(stream)}"
    if stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic:
        words += ", cover picture"
    return words


class NoPassthrough:
    """The passthrough of a video-only segment file: nothing to copy."""

    def mux_until(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass
