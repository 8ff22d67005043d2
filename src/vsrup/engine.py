"""The streaming upscale loop: decode → window → model → blend → encode, for one file at a time.

`Upscaler` loads the model once and reuses it for every window and every file. `upscale_file`
reads top to bottom as the data path. Frames stream through bounded queues, so peak memory is a
few windows of frames however long the video is; the output is written to a temporary file beside
the target and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vsrup import hostmem, models, resume, segments, tuning
from vsrup.devices import is_out_of_memory, resolve_device, resolve_dtype
from vsrup.errors import DeviceError, InputError, OutputError, UsageError
from vsrup.progress import Reporter
from vsrup.threads import BackgroundSink, prefetch
from vsrup.video import EncodeSettings, Frame, VideoInfo, VideoWriter, choose_codec, probe
from vsrup.windows import TemporalBlender, Window, check_window, sliding_windows

SCALES = (2, 4)


@dataclass
class UpscaleSettings:
    scale: int = 4
    model: str = models.DEFAULT_MODEL
    window: int | None = None  # None: the default for the model
    overlap: int | None = None
    tile: int | None = 0  # latent tile size in latent pixels; 0: whole frame; None: from free memory
    device: str = "auto"
    dtype: str = "auto"
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    overwrite: bool = False
    resume: bool = False  # keep finished segments beside the output so a rerun continues
    segment_frames: int = 240  # with resume: frames per finished segment (at least; ends on a window)
    compile: bool = False  # torch.compile the model's heavy modules (CUDA only)
    verbose: bool = False  # report the chosen device, window, overlap, tile, speed switches
    start: str | None = None  # --start/--end: upscale only this part (video only; see segments.py)
    end: str | None = None
    max_memory_gib: float | None = None  # --max-memory: plan (and on CUDA cap) device memory to this
    prompt: str = ""  # --prompt: what the diffusion models condition on (empty: the converted default)

    @property
    def max_memory_bytes(self) -> int | None:
        return None if self.max_memory_gib is None else int(self.max_memory_gib * 2**30)

    def validate(self) -> None:
        if self.scale not in SCALES:
            raise UsageError(f"--scale must be one of {', '.join(map(str, SCALES))} (got {self.scale})")
        if self.tile is not None and (self.tile < 0 or 0 < self.tile < 8):
            raise UsageError(f"--tile must be 0 (off) or at least 8 latent pixels (got {self.tile})")
        if self.max_memory_gib is not None and not self.max_memory_gib > 0:
            raise UsageError(f"--max-memory must be a positive number of GiB (got {self.max_memory_gib})")


@dataclass
class FileResult:
    input: Path
    output: Path
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class Upscaler:
    """A loaded model plus the settings to run it; upscales any number of files."""

    def __init__(self, settings: UpscaleSettings) -> None:
        settings.validate()
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        self.model = models.load_model(
            settings.model, settings.scale, self.device, self.dtype, settings.prompt
        )
        self.model.tiles.latent_tile = settings.tile or 0
        smallest = 2 * self.model.tiles.latent_overlap  # tiles overlap by latent_overlap each side
        if settings.tile and settings.tile < smallest:
            raise UsageError(f"--tile must be 0 (off) or at least {smallest} for the {settings.model} model")
        self.speed_notes = tuning.accelerate(self.model, self.device, settings.compile, self.dtype)
        self.pad_windows = settings.compile and self.device.type == "cuda"
        self._resume_work: resume.ResumeFolder | None = None
        self.speed_notes += tuning.limit_device_memory(self.device, settings.max_memory_bytes)
        context = self.model.temporal_context
        self.window = settings.window or (8 if context else 4)
        self.overlap = settings.overlap if settings.overlap is not None else min(2 * context, self.window - 1)
        check_window(self.window, self.overlap)

    def upscale_file(
        self,
        source: Path,
        target: Path,
        reporter: Reporter | None = None,
        frame_range: segments.FrameRange | None = None,
    ) -> FileResult:
        """Upscale one video file. Raises a VsrupError subclass for anything the user can fix.

        With a `frame_range` (or --start/--end), only those frames are written, exactly as a
        whole-video run makes them, to a video-only segment file (see `segments`)."""
        reporter = reporter or Reporter()
        source, target = Path(source), Path(target)
        check_output(source, target, self.settings.overwrite)
        choose_codec(target, self.settings.encode)  # reject a bad extension/codec before any work
        info = probe(source)
        if frame_range is None and (self.settings.start or self.settings.end):
            frame_range = segments.resolve_range(info, self.settings.start, self.settings.end)
        span = frame_range or segments.WHOLE
        self.plan_video(info, reporter)
        started = time.perf_counter()
        reporter.start(str(source), span.length(info.frames_estimate))
        work = (
            self._resume_folder(info, target, reporter)
            if self.settings.resume and frame_range is None
            else None
        )
        self._resume_work = work  # an OOM fallback's smaller tile goes into its plan
        if work is None and resume.work_folder(target).is_dir():
            folder = resume.work_folder(target)
            reporter.message(f"note: {folder} holds unfinished work for this output; --resume would use it")
        with atomic_output(target) as partial:
            if work is not None:
                frames_written = self._encode_resumable(info, work, partial, reporter)
            else:
                writer = (VideoWriter if frame_range is None else segments.SegmentWriter)(
                    partial,
                    self.writer_info(info),
                    self.settings.scale,
                    self.settings.encode,
                    target.suffix.lower(),
                )
                frames_written = self._encode(info, writer, reporter, span)
                if frames_written == 0:
                    raise InputError(f"no frames of {source} lie in the range {span.start}f-{span.stop}f")
        if work is not None:
            work.remove()  # only once the output is in place
        hostmem.release_host_memory()
        seconds = time.perf_counter() - started
        reporter.finish("done", output=str(target), seconds=round(seconds, 3))
        return FileResult(source, target, frames_written, seconds)

    def _resume_folder(self, info: VideoInfo, target: Path, reporter: Reporter) -> resume.ResumeFolder:
        """The job's segment folder. Its key lists everything the output frames depend on, as the
        user asked for it; what this run planned for the automatic window and tile is kept beside
        it, and a resumed run takes over the earlier run's plan (see `resume`)."""
        stat = info.path.stat()
        key = {
            "input": str(info.path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "model": self.settings.model,
            "scale": self.settings.scale,
            "window": self.settings.window,
            "overlap": self.overlap,
            "tile": self.settings.tile,
            "device": self.device.type,
            "dtype": str(self.dtype),
            "encode": dataclasses.asdict(segments.segment_codec(target, self.settings.encode)),
        }
        planned = {"window": self.window, "tile": self.model.tiles.latent_tile}
        work = resume.ResumeFolder.open(target, key, planned)
        if work.plan != planned:
            self.window, self.model.tiles.latent_tile = work.plan["window"], work.plan["tile"]
            if self.settings.verbose:
                reporter.message(f"{info.path.name}: resuming with the earlier run's plan {work.plan}")
        return work

    def _encode_resumable(
        self, info: VideoInfo, work: resume.ResumeFolder, partial: Path, reporter: Reporter
    ) -> int:
        """--resume: encode into segment files that outlive a crash, after those an earlier run
        finished; then join them all into `partial` with the audio. Returns the frames written."""
        done = work.frames_done
        if done:
            reporter.message(f"{info.path.name}: resuming after {done} finished frames")
            reporter.advance(done)
        writer = resume.SegmentedWriter(
            work,
            self.writer_info(info),
            self.settings.scale,
            segments.segment_codec(partial, self.settings.encode),
            self.settings.segment_frames,
        )
        self._encode(info, writer, reporter, segments.FrameRange(done, None))
        return segments.concat_segments(work.segment_paths(), info, partial)

    def writer_info(self, info: VideoInfo) -> VideoInfo:
        """The facts the writer sizes its stream by: the input's (a side-by-side compare is wider)."""
        return info

    def _encode(self, info: VideoInfo, writer: VideoWriter, reporter: Reporter, span=segments.WHOLE) -> int:
        """Stream the video (or `span` of it) into `writer` (encoding in a background thread)."""
        encoder = BackgroundSink(lambda item: writer.write(item[0], item[1], host_array(item[2])))
        try:
            frames_written = self._stream(info, encoder, reporter, span)
            encoder.close()
            writer.close()
        except BaseException:
            # Ctrl-C or an error: drop the queued frames at once, release the file, re-raise.
            with contextlib.suppress(BaseException):
                encoder.abort()
            writer.abort()
            raise
        return frames_written

    def _stream(
        self, info: VideoInfo, encoder: BackgroundSink, reporter: Reporter, span=segments.WHOLE
    ) -> int:
        """The data path: decoded frames → windows → model → blended frames → encoder queue.

        Windows stay on the whole-video grid; for a `span`, decoding starts at the first window that
        touches it, only the windows that touch it run, and only its frames are written."""
        first, decoded = segments.read_span(info, span, self.window, self.overlap)
        frames = prefetch(decoded, depth=self.window + 2)
        blender = TemporalBlender()
        timing: dict[int, Frame] = {}  # frames decoded but not yet written, for their pts
        written = 0
        with contextlib.closing(frames):  # stops the decode thread at once, also on errors
            windows = sliding_windows(frames, self.window, self.overlap)
            for window in segments.on_grid(windows, first, self.overlap):
                if span.is_before(window.end):
                    continue
                if span.is_after(window.start):
                    break
                timing.update((f.index, f) for f in window.items)
                upscaled = self._run_model(window)
                for index, image in blender.add(window, upscaled):
                    written += self._emit_in(span, timing.pop(index), image, encoder, info)
                reporter.advance(span.count_new(window.start + window.shared_before, window.end))
        for index, image in blender.flush():
            written += self._emit_in(span, timing.pop(index), image, encoder, info)
        return written

    def _emit_in(self, span, frame: Frame, image: torch.Tensor, encoder: BackgroundSink, info) -> int:
        return self._emit(frame, image, encoder, info) if span.keeps(frame.index) else 0

    def _emit(self, frame: Frame, image: torch.Tensor, encoder: BackgroundSink, info: VideoInfo) -> int:
        encoder.put((frame.pts, frame.duration, to_host(image, frame.image.dtype)))
        return 1

    def _run_model(self, window: Window[Frame]) -> torch.Tensor:
        """Run the model on one window; on CUDA out-of-memory, halve the tile size and retry."""
        batch = to_tensor([f.image for f in window.items], self.device, self.dtype)
        real = batch.shape[0]
        if self.pad_windows and real < self.window:
            # A compiled model recompiles for every new batch size: give the short last window the
            # usual size by repeating its last frame (which is what a window end sees anyway).
            batch = torch.cat([batch, batch[-1:].expand(self.window - real, *batch.shape[1:])])
        while True:
            try:
                with torch.inference_mode():
                    return self.model.upscale(batch)[:real]
            except RuntimeError as exc:
                if not self._recoverable_oom(exc):
                    raise
            # Outside the except block, so the failed pass's tensors (held by the traceback) are freed.
            torch.cuda.empty_cache()
            if not self._shrink_tiles():
                raise DeviceError("out of GPU memory even with the smallest tiles; try --window 2")

    def _recoverable_oom(self, exc: BaseException) -> bool:
        """Only CUDA out-of-memory is retried with smaller tiles (host OOM cannot be caught)."""
        return self.device.type == "cuda" and is_out_of_memory(exc)

    def plan_video(self, info: VideoInfo, reporter: Reporter) -> None:
        """Size the tile (and on a GPU the window) for this video from the free device memory,
        unless they were set, and say so."""
        base = self.__dict__.setdefault("_base_window", self.window)  # before any per-file growth
        chosen = tuning.plan(self.model, self.device, self.dtype, base, self.overlap, self.settings.tile,
                             (info.width, info.height), auto_window=self.settings.window is None,
                             limit=self.settings.max_memory_bytes)  # fmt: skip
        self.window = chosen.window
        self.model.tiles.latent_tile = chosen.tile
        chosen.notes += self.speed_notes
        if self.settings.verbose:
            reporter.message(f"{info.path.name}: {chosen.describe()}")

    def _shrink_tiles(self) -> bool:
        tiles = self.model.tiles
        if tiles.latent_tile == 0:
            tiles.latent_tile = 128
        elif tiles.latent_tile // 2 >= 2 * tiles.latent_overlap and tiles.latent_tile > 16:
            tiles.latent_tile //= 2
        else:
            return False
        work = self._resume_work
        if work is not None:  # the frames from here on use this tile: so must a resumed run's
            work.plan["tile"] = tiles.latent_tile
        return True


def to_tensor(images: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(T, H, W, 3) uint8/uint16 images → (T, 3, H, W) floats in [0, 1] on the device."""
    stacked = torch.from_numpy(np.stack(images))
    peak = 65535.0 if stacked.dtype == torch.uint16 else 255.0
    if stacked.dtype == torch.uint16:
        stacked = stacked.to(torch.int32)
    if device.type == "cuda":
        stacked = stacked.pin_memory().to(device, non_blocking=True)
    # 16-bit samples are scaled in fp32: fp16 cannot hold 65535 (it becomes inf).
    scale_dtype = torch.float32 if peak > 255 else dtype
    return (stacked.permute(0, 3, 1, 2).to(scale_dtype) / peak).to(dtype).contiguous()


def to_image(frame: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(3, H, W) floats in [0, 1] → (H, W, 3) uint8 or uint16 for the encoder.

    Rounding and narrowing happen on the frame's device: from a GPU a uint8 frame crosses the bus
    in a quarter of the bytes of a float one, and the host does no per-pixel float work."""
    peak = 65535.0 if dtype == np.uint16 else 255.0
    narrow = torch.uint8 if dtype == np.uint8 else torch.int32  # torch has no general uint16 ops
    scaled = (frame.float().clamp(0, 1) * peak).round().to(narrow).permute(1, 2, 0).cpu()
    return scaled.numpy().astype(dtype, copy=False)


class HostImage:
    """A frame on its way from the GPU: a non-blocking copy into pinned host memory, and the event
    that marks its end. The encoder thread waits for it, so the main thread can queue the next
    window on the GPU instead of waiting for each frame to cross the bus."""

    def __init__(self, frame: torch.Tensor, dtype: np.dtype) -> None:
        peak = 65535.0 if dtype == np.uint16 else 255.0
        narrow = torch.uint8 if dtype == np.uint8 else torch.int32
        image = (frame.float().clamp(0, 1) * peak).round().to(narrow).permute(1, 2, 0).contiguous()
        self.host = torch.empty(image.shape, dtype=narrow, pin_memory=True)
        self.host.copy_(image, non_blocking=True)
        self.done = torch.cuda.Event()
        self.done.record(torch.cuda.current_stream(frame.device))  # the model's GPU, not GPU 0
        self.dtype = dtype

    def array(self) -> np.ndarray:
        self.done.synchronize()
        return self.host.numpy().astype(self.dtype, copy=False)


def to_host(frame: torch.Tensor, dtype: np.dtype) -> np.ndarray | HostImage:
    """`to_image`, except that a CUDA frame is copied without waiting (see `HostImage`)."""
    return HostImage(frame, dtype) if frame.device.type == "cuda" else to_image(frame, dtype)


def host_array(image: np.ndarray | HostImage) -> np.ndarray:
    return image.array() if isinstance(image, HostImage) else image


def check_output(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse before any work if the output would clobber something or cannot be written."""
    if source.resolve() == target.resolve():
        raise OutputError(f"output would overwrite the input: {target}")
    if target.is_dir():
        raise OutputError(f"output is a folder: {target}")
    if target.exists() and not overwrite:
        raise OutputError(f"output exists: {target} (use --overwrite to replace it)")
    if not source.exists():
        raise InputError(f"input not found: {source}")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")


@contextlib.contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it into place only if the block succeeds.

    On any error or interrupt the temporary file is removed and `target` is left as it was.
    """
    partial = target.with_name(f".{target.stem}.vsrup-partial{target.suffix}")
    try:
        yield partial
        os.replace(partial, target)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, InputError):
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
