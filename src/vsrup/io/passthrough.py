"""Audio and subtitle packets copied from the input into the output, untouched and in time order.

Audio and subtitles never leave the packet level. Text subtitles a container cannot hold are
converted cue by cue into the text format it does hold; bitmap ones are dropped with a warning;
audio that cannot be copied is an error before any work.
"""

from __future__ import annotations

import logging

import av
from av.subtitles.subtitle import SubtitleSet

from vsrup.errors import UsageError
from vsrup.io.probe import VideoInfo, open_input

log = logging.getLogger(__name__)

# Which subtitle codecs each container can hold.
_SUBTITLE_CODECS = {".mp4": {"mov_text"}, ".m4v": {"mov_text"}, ".mov": {"mov_text"}}
_SUBTITLE_CODECS |= {".webm": {"webvtt"}, ".avi": set()}
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


class NoPassthrough:
    """The passthrough of a video-only segment file: nothing to copy."""

    def mux_until(self, seconds: float) -> None:
        pass

    def close(self) -> None:
        pass
