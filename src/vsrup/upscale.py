"""Upscale one file: check → probe → plan → read → stream → write → rename.

`Upscaler` loads the model once (the CLI, batch executors, device workers and Ray actors each hold
one) and upscales any number of files with it. `upscale_file` reads top to bottom as the data path;
the loop itself is `pipeline.stream.upscale_stream`, shared with preview, eval, estimate and bench.
The output is written to a temporary file beside the target and renamed into place only when it is
complete; with `--resume` the frames go into segment files that outlive a crash instead.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from vsrup import hostmem, models, resume, tuning
from vsrup.devices import resolve_device, resolve_dtype
from vsrup.errors import InputDamaged, InputError, UsageError
from vsrup.io import sequence
from vsrup.io.concat import concat_segments
from vsrup.io.files import atomic_output, check_output, removed_on_failure
from vsrup.io.passthrough import not_carried
from vsrup.io.probe import VideoInfo, probe
from vsrup.io.reader import Damage, Frame, read_frames
from vsrup.io.sequence import is_pattern
from vsrup.io.timecode import advance_timecode
from vsrup.io.writer import EncodeSettings, VideoWriter, check_audio, choose_codec, segment_codec
from vsrup.pipeline.cuts import last_cut, thumbnail
from vsrup.pipeline.plan import Plan, make_plan
from vsrup.pipeline.runner import Runner, host_array, to_host
from vsrup.pipeline.span import WHOLE, FrameRange, resolve_range
from vsrup.pipeline.stream import first_needed, upscale_stream
from vsrup.progress import Reporter
from vsrup.threads import BackgroundSink


@dataclass
class UpscaleSettings:
    scale: int | None = None  # None: models.DEFAULT_SCALE, or a community model file's own scale
    model: str = models.DEFAULT_MODEL
    window: int | None = None  # None: the default for the model
    overlap: int | None = None
    tile: int | None = (
        0  # in the model's tiling space (see its description); 0: whole frame; None: from free memory
    )
    device: str = "auto"
    dtype: str = "auto"
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    overwrite: bool = False
    resume: bool = False  # keep finished segments beside the output so a rerun continues
    segment_seconds: float | None = None  # with resume: seconds of work per segment (None: resume's 60)
    segment_frames: int | None = None  # with resume: frames per segment instead (tests force small ones)
    compile: bool = False  # torch.compile the model's heavy modules (CUDA only)
    verbose: bool = False  # report the chosen device, window, overlap, tile, speed switches
    start: str | None = None  # --start/--end: upscale only this part (video only)
    end: str | None = None
    max_memory_gib: float | None = None  # --max-memory: plan (and on CUDA cap) device memory to this
    compare: str | None = None  # --compare split|side: a bicubic | model comparison video instead
    scene_cuts: bool = True  # temporal windows restart at shot changes
    prompt: str = ""  # --prompt: what the diffusion models condition on (empty: the converted default)
    audio: str = "auto"  # --audio auto|copy|none: copy, else re-encode; copy only; drop (io.passthrough)
    reference_postprocess: bool = False  # DLoRAL/OSEDiff: the official 8-bit truncating post-processing
    fps: Fraction | None = None  # --fps: the frame rate of image-sequence inputs (None: 25)
    output_format: str | None = None  # --format: png, tiff (image sequences) or a video extension

    @property
    def max_memory_bytes(self) -> int | None:
        return None if self.max_memory_gib is None else int(self.max_memory_gib * 2**30)

    def validate(self) -> None:
        """What can be checked before the model loads: the model is known and offers the scale.
        (The tile is checked against the loaded model's description, in `make_plan`.)"""
        entry = models.find(self.model)
        if self.scale is not None:
            entry.check_scale(self.scale)
        if self.max_memory_gib is not None and not self.max_memory_gib > 0:
            raise UsageError(f"--max-memory must be a positive number of GiB (got {self.max_memory_gib})")
        if self.fps is not None and not self.fps > 0:
            raise UsageError(f"--fps must be a positive frame rate (got {self.fps})")


@dataclass
class FileResult:
    input: Path
    output: Path
    frames: int
    seconds: float
    plan: Plan | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def shot_start(info: VideoInfo, span: FrameRange, plan: Plan) -> int:
    """The first frame of the shot `span` begins in. Blended windows sit on their shot's grid, so a
    run that starts late must know where that shot began: the frames before it are decoded once
    more, for their shot changes only (cheap beside the model). Exact joins need no grid."""
    if not plan.cuts or plan.context is not None or span.start == 0:
        return 0
    thumbs = (thumbnail(frame.image) for frame in read_frames(info))
    return last_cut(itertools.islice(thumbs, span.start + 1))


class Upscaler:
    """A loaded model plus the settings to run it; upscales any number of files."""

    def __init__(self, settings: UpscaleSettings) -> None:
        settings.validate()
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        self.model = models.load_model(
            settings.model,
            settings.scale,
            self.device,
            self.dtype,
            settings.prompt,
            settings.reference_postprocess,
        )
        if settings.scale is None:  # the scale the model chose: the default, or a model file's own
            settings = self.settings = dataclasses.replace(settings, scale=self.model.description.scale)
        if settings.compare:
            from vsrup.compare import CompareModel

            self.model = CompareModel(self.model, settings.compare)
        self.description = self.model.description  # all the engine knows of the model
        self.speed_notes = tuning.accelerate(self.model, self.device, settings.compile, self.dtype)
        self.speed_notes += tuning.limit_device_memory(self.device, settings.max_memory_bytes)
        pad = settings.compile and self.device.type == "cuda"
        self.runner = Runner(self.model, self.device, self.dtype, pad_windows=pad)
        self.plan(None)  # a bad --window/--overlap fails here, before any file is touched

    def with_settings(self, settings: UpscaleSettings) -> Upscaler:
        """This loaded model under other per-file settings (encoder, range, overwrite...), as a new
        object: callers never change the settings of an upscaler someone else holds."""
        other = copy.copy(self)
        other.settings = settings
        return other

    def plan(self, info: VideoInfo | None, free: int | None | str = "measure") -> Plan:
        """The plan for `info` (window, overlap, tile) from the settings, the model and free memory."""
        s = self.settings
        size = None if info is None else (info.width, info.height)
        plan = make_plan(self.description, self.device, self.dtype, s.window, s.overlap, s.tile, size,
                         free=free, limit=s.max_memory_bytes, scene_cuts=s.scene_cuts)  # fmt: skip
        return plan.noted(*self.speed_notes)

    def stream(
        self,
        info: VideoInfo,
        plan: Plan,
        span: FrameRange = WHOLE,
        reporter: Reporter | None = None,
        damage: Damage | None = None,
        **hooks,
    ) -> Iterator[tuple[Frame, torch.Tensor]]:
        """`upscale_stream` over the frames of `info` that `span` needs (decoded from the first window
        that touches it). With `damage`, a damaged input yields every frame that can be decoded and
        `damage` says what was lost; without, it is an error."""
        shot = shot_start(info, span, plan)
        frames = read_frames(info, first_needed(span, plan, shot), damage)
        advance = reporter.advance if reporter is not None else None
        return upscale_stream(frames, self.runner, plan, span, advance=advance, shot_start=shot, **hooks)

    def upscale_file(
        self,
        source: Path,
        target: Path,
        reporter: Reporter | None = None,
        frame_range: FrameRange | None = None,
    ) -> FileResult:
        """Upscale one video file. Raises a VsrupError subclass for anything the user can fix.

        With a `frame_range` (or --start/--end), only those frames are written, exactly as a
        whole-video run makes them, to a video-only segment file."""
        reporter = reporter or Reporter()
        source, target = Path(source), Path(target)
        with removed_on_failure(target.parent):  # a failed run leaves no folder it made
            return self._upscale_file(source, target, reporter, frame_range)

    def _upscale_file(
        self, source: Path, target: Path, reporter: Reporter, frame_range: FrameRange | None
    ) -> FileResult:
        check_output(source, target, self.settings.overwrite)
        self._check_format(target)  # reject a bad extension/codec before any work
        info = probe(source, self.settings.fps)
        if frame_range is None and (self.settings.start or self.settings.end):
            frame_range = resolve_range(info, self.settings.start, self.settings.end)
        span = frame_range or WHOLE
        plan = self.plan(info)
        if self.settings.verbose:
            reporter.message(f"{info.path.name}: {plan.describe()}")
        started = time.perf_counter()
        reporter.start(str(source), span.length(info.frames_estimate), exact=info.frames_exact)
        left = sequence.left_out(info) if is_pattern(target) else not_carried(info, target.suffix.lower())
        if frame_range is None and left:
            reporter.message(left)  # timecode and other data streams: said once, not dropped silently
        work = None
        if self.settings.resume and frame_range is None:
            check_audio(info, target, self.settings.audio)  # the join comes last: fail before the work
            work, plan = self._resume_folder(info, target, plan, reporter)
        elif resume.work_folder(target).is_dir():
            folder = resume.work_folder(target)
            reporter.message(f"note: {folder} holds unfinished work for this output; --resume would use it")
        damage = Damage()  # a damaged input still gives every frame that can be decoded
        try:
            with atomic_output(target) as partial:
                if work is not None:
                    written = self._encode_resumable(info, plan, work, partial, reporter, damage)
                else:
                    ext = target.suffix.lower()
                    writer = self._writer(
                        partial, info, self.settings.encode, ext, frame_range is None, span.start
                    )
                    written = self._encode(self.stream(info, plan, span, reporter, damage), writer)
                    if written == 0:
                        raise InputError(f"no frames of {source} lie in the range {span.start}f-{span.stop}f")
        except BaseException:
            if work is not None and not work.segments:
                work.remove()  # nothing was finished: no empty job folder is left behind
            raise
        if work is not None:
            work.remove()  # only once the output is in place
        hostmem.release_host_memory()
        seconds = time.perf_counter() - started
        if damage.errors:  # the output is complete for what could be read; the caller must hear of it
            raise InputDamaged(damage.describe(source), frames=written, seconds=seconds)
        reporter.finish("done", output=str(target), frames=written, seconds=seconds)
        return FileResult(source, target, written, seconds, plan)

    def _check_format(self, target: Path) -> None:
        if not is_pattern(target):
            choose_codec(target, self.settings.encode)
            return
        sequence.check_image_output(target)
        if self.settings.resume:
            raise UsageError("--resume keeps video segments; an image sequence output cannot use it")

    def _writer(
        self, path: Path, info: VideoInfo, encode: EncodeSettings, ext: str, whole: bool, first_frame: int
    ) -> VideoWriter | sequence.SequenceWriter:
        size = self.description.output_size(info.width, info.height)
        if is_pattern(path):  # numbered as the input's frames: an input sequence keeps its numbers
            first = sequence.first_number(info.path) + first_frame
            return sequence.SequenceWriter(path, size, info.bit_depth > 8, first, info.frame_rate)
        timecode = info.timecode and advance_timecode(info.timecode, first_frame, info.frame_rate)
        return VideoWriter(
            path, info, size, encode, ext, passthrough=whole, audio=self.settings.audio, timecode=timecode
        )

    def _resume_folder(
        self, info: VideoInfo, target: Path, plan: Plan, reporter: Reporter
    ) -> tuple[resume.ResumeFolder, Plan]:
        """The job's segment folder, and the plan to finish it with. Its key lists everything the
        output frames depend on, as the user asked for it; what this run planned for the automatic
        window and tile is kept beside it, and a resumed run takes over the earlier run's plan."""
        size, mtime_ns = sequence.stamp(info.path)
        key = {
            "input": str(info.path.resolve()),
            "size": size,
            "mtime_ns": mtime_ns,
            "model": self.settings.model,
            "scale": self.settings.scale,
            "window": self.settings.window,
            "overlap": plan.overlap,
            "tile": self.settings.tile,
            "device": self.device.type,
            "dtype": str(self.dtype),
            "scene_cuts": self.settings.scene_cuts,
            "prompt": self.settings.prompt,
            "reference_postprocess": self.settings.reference_postprocess,
            "encode": dataclasses.asdict(segment_codec(target, self.settings.encode, info)),
        }
        planned = {"window": plan.window, "tile": plan.tile}
        work = resume.ResumeFolder.open(target, key, planned)
        if work.plan != planned:
            plan = dataclasses.replace(plan, window=work.plan["window"], tile=work.plan["tile"])
            if self.settings.verbose:
                reporter.message(f"{info.path.name}: resuming with the earlier run's plan {work.plan}")
        return work, plan

    def _encode_resumable(
        self,
        info: VideoInfo,
        plan: Plan,
        work: resume.ResumeFolder,
        partial: Path,
        reporter: Reporter,
        damage: Damage,
    ) -> int:
        """--resume: encode into segment files that outlive a crash, after those an earlier run
        finished; then join them all into `partial` with the audio. Returns the frames written."""
        done = work.frames_done
        if done:
            reporter.message(f"{info.path.name}: resuming after {done} finished frames")
            reporter.resumed(done)  # counted as done, but not as this run's speed
        encode = segment_codec(partial, self.settings.encode, info)
        size = self.description.output_size(info.width, info.height)
        s = self.settings
        writer = resume.SegmentedWriter(work, info, size, encode, s.segment_seconds, s.segment_frames)

        def replanned(new: Plan) -> None:  # the frames from here on use this tile: so must a resumed run
            work.plan["tile"] = new.tile

        try:
            self._encode(
                self.stream(info, plan, FrameRange(done, None), reporter, damage, replanned=replanned),
                writer,
            )
            return concat_segments(work.segment_paths(), info, partial, self.settings.audio)
        except KeyboardInterrupt as exc:
            exc.kept_frames = work.frames_done  # what the interrupt message can promise
            raise

    @staticmethod
    def _encode(items: Iterator[tuple[Frame, torch.Tensor]], writer) -> int:
        """Feed the stream's frames to `writer`, encoding in a background thread."""
        encoder = BackgroundSink(lambda item: writer.write(item[0], item[1], host_array(item[2])))
        written = 0
        try:
            with contextlib.closing(items):
                for frame, image in items:
                    encoder.put((frame.pts, frame.duration, to_host(image, frame.image.dtype)))
                    written += 1
            encoder.close()
            writer.close()
        except BaseException:
            # Ctrl-C or an error: drop the queued frames at once, release the file, re-raise.
            with contextlib.suppress(BaseException):
                encoder.abort()
            writer.abort()
            raise
        return written
