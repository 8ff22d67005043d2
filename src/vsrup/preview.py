"""`vsrup preview`: one moment of a video as a PNG — input, bicubic and the model side by side.

The picture answers "what will I get?" before an overnight run. Top row, each at the output size:
[input, nearest-neighbour enlarged | bicubic | model]. Bottom row: the same three, cropped to the
most detailed region of the frame (highest gradient energy) and enlarged `zoom` times more, so
the difference is visible without an image viewer. The chosen frame is upscaled by the stream loop
over a one-frame span: the same windows, neighbours and blending as in a real run.

Pictures are drawn with Pillow: it is already installed as a dependency of diffusers, and it gives
us a PNG encoder and a scalable font for the labels for free.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vsrup.compare import bicubic
from vsrup.errors import InputError, OutputError, UsageError
from vsrup.io.probe import VideoInfo, probe, video_pts
from vsrup.io.reader import Frame, to_8bit
from vsrup.labels import draw_text, label_height
from vsrup.pipeline.runner import to_image, to_tensor
from vsrup.pipeline.span import FrameRange

GAP = 4  # px of background between panels
BACKGROUND = (24, 24, 24)


@dataclass
class Preview:
    """What `make_preview` drew and where, so tests and callers can find each panel."""

    path: Path
    time_s: float  # presentation time of the chosen frame, from the start of the video
    frame_size: tuple[int, int]  # (width, height) of the input frame
    panel_size: tuple[int, int]  # (width, height) of each top panel = the output size
    crop: tuple[int, int, int, int]  # (x, y, width, height) of the zoomed region, in output pixels
    zoom: int
    boxes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)  # name → (x, y, w, h)


def make_preview(
    source: Path | str,
    output: Path | str | None = None,
    at: float | None = None,
    model: str = "tiny",
    scale: int | None = None,  # None: 4, or a community model file's own
    device: str = "auto",
    dtype: str = "auto",
    tile: int = 0,
    zoom: int = 3,
    overwrite: bool = False,
) -> Preview:
    """Upscale the frame at `at` seconds (default: the middle) and write the comparison PNG."""
    from vsrup.upscale import Upscaler, UpscaleSettings

    source = Path(source)
    if zoom < 1:
        raise UsageError(f"--zoom must be at least 1 (got {zoom})")
    info = probe(source)
    at = _pick_time(info, at)
    output = Path(output) if output else Path(f"{source.stem}-preview-{at:.2f}s.png")
    _check_png_output(output, overwrite)
    upscaler = Upscaler(UpscaleSettings(scale=scale, model=model, device=device, dtype=dtype, tile=tile))
    scale = upscaler.settings.scale
    pts = video_pts(info.path)  # the packets are read once: for the frame's index and its time
    index = frame_at(pts, info.time_base, at)
    decoded, upscaled = upscale_frame(upscaler, info, index)
    time_s = float((pts[index] - pts[0]) * info.time_base)
    with torch.inference_mode():
        batch = to_tensor([decoded.image], upscaler.device, torch.float32)
        base = bicubic(batch, scale)[0]
    frame = to_8bit(decoded.image)
    panels = {
        "input": np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1),
        "bicubic": to_image(base, np.uint8),
        "model": to_image(upscaled, np.uint8),
    }
    titles = {"input": f"input {info.width}×{info.height}, nearest ×{scale}", "bicubic": f"bicubic ×{scale}"}
    titles["model"] = f"{upscaler.description.name} ×{scale}"
    crop = detail_box(frame, scale, zoom)
    canvas, boxes = _layout(panels, titles, crop, zoom, time_s)
    _write_png(canvas, output)
    return Preview(output, time_s, (info.width, info.height), panels["model"].shape[1::-1], crop, zoom, boxes)


def _pick_time(info: VideoInfo, at: float | None) -> float:
    if at is None:
        return (info.duration or 0.0) / 2
    if at < 0 or (info.duration is not None and at > info.duration):
        length = f"{info.duration:.2f}" if info.duration is not None else "?"
        raise UsageError(f"--at {at:g} s is outside the video (0 to {length} s)")
    return at


def _check_png_output(output: Path, overwrite: bool) -> None:
    if output.suffix.lower() != ".png":
        raise UsageError(f"the preview is a PNG; name the output *.png (got {output.name})")
    if output.exists() and not overwrite:
        raise OutputError(f"output exists: {output} (use --overwrite to replace it)")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {output.parent}: {exc.strerror}") from None


def frame_at(pts: list[int], time_base: Fraction, at: float) -> int:
    """Index of the frame shown at `at` seconds from the first frame (the last one at or before it),
    from the sorted packet timestamps `pts`."""
    if not pts:
        raise InputError("the video has no frames")
    limit = at + 1e-6
    shown = [i for i, value in enumerate(pts) if float((value - pts[0]) * time_base) <= limit]
    return shown[-1] if shown else 0


def upscale_frame(upscaler, info: VideoInfo, index: int) -> tuple[Frame, torch.Tensor]:
    """Frame `index` and its upscaled image, made exactly as `vsrup upscale` makes it: the same plan,
    the same windows around it, the same blending (the stream loop run over a one-frame span)."""
    plan = upscaler.plan(info)
    items = upscaler.stream(info, plan, FrameRange(index, index + 1))
    with contextlib.closing(items):
        for frame, image in items:
            return frame, image
    raise InputError(f"frame {index} of {info.path} could not be decoded")


def detail_box(frame: np.ndarray, scale: int, zoom: int) -> tuple[int, int, int, int]:
    """The (x, y, w, h) region, in output pixels, with the most gradient energy in the input frame.

    The region is 1/zoom of the frame each way, so that enlarged `zoom` times it fills a panel.
    Gradient energy (|∂x| + |∂y| of the luma) is high on edges and texture, where upscalers differ;
    flat sky or walls would show nothing.
    """
    h, w = frame.shape[:2]
    bw, bh = max(1, w // zoom), max(1, h // zoom)
    luma = frame[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.abs(np.diff(luma, axis=1))
    energy[1:, :] += np.abs(np.diff(luma, axis=0))
    # Box sums of every bh×bw window from an integral image.
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[bh:, bw:] - integral[:-bh, bw:] - integral[bh:, :-bw] + integral[:-bh, :-bw]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x) * scale, int(y) * scale, bw * scale, bh * scale


def _layout(
    panels: dict[str, np.ndarray],
    titles: dict[str, str],
    crop: tuple[int, int, int, int],
    zoom: int,
    time_s: float,
) -> tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """Place the three panels, their labels and the zoomed crops on one canvas."""
    height, width = panels["model"].shape[:2]
    x, y, cw, ch = crop
    label_h = label_height(height)
    zoomed_w, zoomed_h = cw * zoom, ch * zoom
    canvas_w = 3 * width + 2 * GAP
    canvas_h = label_h + height + label_h + zoomed_h
    canvas = np.empty((canvas_h, canvas_w, 3), np.uint8)
    canvas[:] = BACKGROUND
    boxes = {}
    for column, name in enumerate(("input", "bicubic", "model")):
        left = column * (width + GAP)
        canvas[label_h : label_h + height, left : left + width] = panels[name]
        boxes[name] = (left, label_h, width, height)
        draw_text(canvas, titles[name], left + 4, 0, label_h)
        region = panels[name][y : y + ch, x : x + cw]
        top = 2 * label_h + height
        canvas[top : top + zoomed_h, left : left + zoomed_w] = region.repeat(zoom, 0).repeat(zoom, 1)
        boxes[f"{name}_zoom"] = (left, top, zoomed_w, zoomed_h)
    caption = f"t = {time_s:.2f} s   ·   zoom ×{zoom} of the most detailed region (x {x}, y {y}, {cw}×{ch})"
    draw_text(canvas, caption, 4, label_h + height, label_h)
    _outline(canvas, boxes["input"][0] + x, label_h + y, cw, ch)
    return canvas, boxes


def _outline(canvas: np.ndarray, x: int, y: int, w: int, h: int, color=(255, 220, 0)) -> None:
    """A 1-px frame around the zoomed region on the input panel, so the eye finds it."""
    canvas[y, x : x + w] = canvas[y + h - 1, x : x + w] = color
    canvas[y : y + h, x] = canvas[y : y + h, x + w - 1] = color


def _write_png(canvas: np.ndarray, path: Path) -> None:
    from PIL import Image

    try:
        Image.fromarray(canvas).save(path, optimize=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
