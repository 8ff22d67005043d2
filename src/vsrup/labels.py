"""Text burnt into pictures: the preview's panel titles and the comparison video's labels."""

from __future__ import annotations

import functools

import numpy as np
import torch


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


def draw_text(canvas: np.ndarray, text: str, x: int, y: int, height: int) -> None:
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
