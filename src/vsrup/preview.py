"""`vsrup preview`: one moment of a video as a PNG — input, bicubic and the model side by side.

The picture answers "what will I get?" before an overnight run. Top row, each at the output size:
[input, nearest-neighbour enlarged | bicubic | model]. Bottom row: the same three, cropped to the
most detailed region of the frame (highest gradient energy) and enlarged `zoom` times more, so
the difference is visible without an image viewer. The model sees a whole temporal window around
the chosen frame (seek, then decode a few frames), as it would in a real run.

Pictures are drawn with Pillow: it is already installed as a dependency of diffusers, and it gives
us a PNG encoder and a scalable font for the labels for free.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vsrup.compare import bicubic
from vsrup.errors import InputError, OutputError, UsageError
from vsrup.video import Frame, VideoInfo, color_range_of, open_input, probe, rgb_matrix
from vsrup.windows import Window

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
    scale: int = 4,
    device: str = "auto",
    dtype: str = "auto",
    tile: int = 0,
    zoom: int = 3,
    overwrite: bool = False,
) -> Preview:
    """Upscale the frame at `at` seconds (default: the middle) and write the comparison PNG."""
    from vsrup.engine import Upscaler, UpscaleSettings, to_tensor

    source = Path(source)
    if zoom < 1:
        raise UsageError(f"--zoom must be at least 1 (got {zoom})")
    info = probe(source)
    at = _pick_time(info, at)
    output = Path(output) if output else Path(f"{source.stem}-preview-{at:.2f}s.png")
    _check_png_output(output, overwrite)
    upscaler = Upscaler(UpscaleSettings(scale=scale, model=model, device=device, dtype=dtype, tile=tile))
    images, target, time_s = decode_around(info, at, upscaler.window)
    window = Window(0, [Frame(i, None, None, image) for i, image in enumerate(images)], 0, 0)
    upscaled = upscaler._run_model(window)[target]  # as in a real run, with its OOM fallback
    with torch.inference_mode():
        batch = to_tensor(images[target : target + 1], upscaler.device, torch.float32)
        base = bicubic(batch, scale)[0]
    frame = to_uint8(images[target])
    panels = {
        "input": np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1),
        "bicubic": tensor_to_uint8(base),
        "model": tensor_to_uint8(upscaled),
    }
    titles = {"input": f"input {info.width}×{info.height}, nearest ×{scale}", "bicubic": f"bicubic ×{scale}"}
    titles["model"] = f"{upscaler.model.name} ×{scale}"
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


def decode_around(info: VideoInfo, at: float, count: int) -> tuple[list[np.ndarray], int, float]:
    """Decode `count` consecutive frames around time `at` (seconds from the start).

    Returns the RGB images, the index of the frame shown at `at` within them (the last frame whose
    time is ≤ `at`), and that frame's time. Seeks to the keyframe before `at` so that long videos
    are not decoded from the start; about half the window comes before the chosen frame.
    """
    before = count // 2
    rgb_format = "rgb48le" if info.bit_depth > 8 else "rgb24"
    matrix, color_range = rgb_matrix(info), color_range_of(info)
    with open_input(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = stream.start_time or 0
        rate = float(info.frame_rate or 25)
        margin = (before + 1) / rate  # seek early enough to have the frames before `at`
        if at - margin > 0:
            container.seek(start + int((at - margin) / stream.time_base), stream=stream, backward=True)
        kept: collections.deque = collections.deque(maxlen=count)  # (time, image)
        chosen: float | None = None  # time of the frame shown at `at`
        after = 0
        for index, frame in enumerate(container.decode(stream)):
            t = float((frame.pts - start) * stream.time_base) if frame.pts is not None else index / rate
            if chosen is None and t > at + 1e-6:  # `at` falls before this frame: show the one before
                chosen = kept[-1][0] if kept else t
            if chosen is not None and t > chosen:
                # Stop once the window is full with enough frames after; near the start, where
                # fewer frames come before, keep going so the model still sees a whole window.
                if len(kept) == count and after >= count - before - 1:
                    break
                after += 1
            image = frame.reformat(format=rgb_format, src_colorspace=matrix, src_color_range=color_range)
            kept.append((t, image.to_ndarray()))
    if not kept:
        raise InputError(f"no video frames could be decoded from {info.path} near {at:g} s")
    times = [t for t, _ in kept]
    chosen = times[-1] if chosen is None else chosen  # `at` is at or after the last frame
    return [image for _, image in kept], times.index(chosen), chosen


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        return (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    return image


def tensor_to_uint8(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) floats in [0, 1] → (H, W, 3) uint8."""
    return (frame.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


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
        _draw_text(canvas, titles[name], left + 4, 0, label_h)
        region = panels[name][y : y + ch, x : x + cw]
        top = 2 * label_h + height
        canvas[top : top + zoomed_h, left : left + zoomed_w] = region.repeat(zoom, 0).repeat(zoom, 1)
        boxes[f"{name}_zoom"] = (left, top, zoomed_w, zoomed_h)
    caption = f"t = {time_s:.2f} s   ·   zoom ×{zoom} of the most detailed region (x {x}, y {y}, {cw}×{ch})"
    _draw_text(canvas, caption, 4, label_h + height, label_h)
    _outline(canvas, boxes["input"][0] + x, label_h + y, cw, ch)
    return canvas, boxes


def _outline(canvas: np.ndarray, x: int, y: int, w: int, h: int, color=(255, 220, 0)) -> None:
    """A 1-px frame around the zoomed region on the input panel, so the eye finds it."""
    canvas[y, x : x + w] = canvas[y + h - 1, x : x + w] = color
    canvas[y : y + h, x] = canvas[y : y + h, x + w - 1] = color


def label_height(frame_height: int) -> int:
    return max(16, frame_height // 20)


@functools.lru_cache(maxsize=64)
def text_mask(text: str, height: int) -> np.ndarray:
    """Anti-aliased text as an (h, w) float coverage mask, `height` px tall."""
    from PIL import Image, ImageDraw, ImageFont

    text = text.replace("×", "x")  # Pillow's built-in font has no multiplication sign
    font = ImageFont.load_default(size=max(8, int(height * 0.75)))
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (max(1, right) + 2, height))
    ImageDraw.Draw(image).text((1, (height - bottom - top) / 2), text, fill=255, font=font)
    return np.asarray(image, np.float32) / 255.0


def _draw_text(canvas: np.ndarray, text: str, x: int, y: int, height: int) -> None:
    mask = text_mask(text, height)
    w = min(mask.shape[1], canvas.shape[1] - x)
    region = canvas[y : y + height, x : x + w].astype(np.float32)
    alpha = mask[:, :w, None]
    canvas[y : y + height, x : x + w] = (region * (1 - alpha) + 255 * alpha).round().astype(np.uint8)


def stamp_label(frames: torch.Tensor, text: str, corner: str = "left") -> torch.Tensor:
    """Burn `text` (white on a dark box) into the top-left or top-right corner of (T, 3, H, W)."""
    height, width = frames.shape[-2:]
    size = max(10, height // 28)
    mask = torch.from_numpy(text_mask(text, size)).to(frames.device, frames.dtype)
    pad = size // 3
    h, w = min(size, height), min(mask.shape[1], width - 2 * pad)
    if w <= 0:
        return frames
    x = pad if corner == "left" else width - w - pad
    out = frames.clone()
    box = out[..., pad : pad + h, x : x + w]
    alpha = mask[:h, :w]
    # Darken the box first so the label reads on bright and dark pictures alike.
    box.mul_(0.45).mul_(1 - alpha).add_(alpha)
    return out


def _write_png(canvas: np.ndarray, path: Path) -> None:
    from PIL import Image

    try:
        Image.fromarray(canvas).save(path, optimize=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
