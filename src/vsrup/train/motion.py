"""Training videos from still photographs: smooth synthetic camera motion.

A high-resolution photograph is first shrunk (antialiased, area filter) so its detail has the
density of real video frames, then filmed by a virtual camera that pans with a sub-pixel
velocity (plus a small acceleration), zooms and rotates slowly. Every frame is rendered from the
shrunk photo by one affine warp (Lanczos), so neighbouring frames are related by exactly known,
smooth, mostly sub-pixel motion: the case that multi-frame super-resolution exploits.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def _trajectory(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame camera offset (frames, 2) in HR pixels, zoom (frames,) and angle (frames,) radians."""
    still = rng.random() < 0.1  # some static shots: the model must not invent motion
    speed = 0.0 if still else float(rng.choice([rng.uniform(0, 2), rng.uniform(2, 8), rng.uniform(8, 16)]))
    heading = rng.uniform(0, 2 * math.pi)
    velocity = speed * np.array([math.cos(heading), math.sin(heading)])
    accel = rng.normal(0, 0.3, 2) * (not still)
    k = np.arange(frames)[:, None]
    offset = velocity * k + 0.5 * accel * k**2
    zoom_rate = 0.0 if still or rng.random() < 0.5 else rng.uniform(-0.01, 0.01)
    spin_rate = 0.0 if still or rng.random() < 0.6 else math.radians(rng.uniform(-0.4, 0.4))
    return offset, (1 + zoom_rate) ** k[:, 0], spin_rate * k[:, 0]


def shrink(
    photo: np.ndarray, rng: np.random.Generator, short_side: tuple[int, int] = (720, 1440)
) -> np.ndarray:
    """Area-downscale so the short side is a random video-like size (never upscales)."""
    h, w = photo.shape[:2]
    target = rng.uniform(*short_side)
    factor = min(1.0, target / min(h, w))
    if factor >= 1.0:
        return photo
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA)


def camera_window(photo: np.ndarray, rng: np.random.Generator, frames: int, crop: int) -> np.ndarray | None:
    """One (frames, crop, crop, 3) uint8 window of a virtual camera moving over `photo` (H, W, 3).
    None if the photo is too small for the trajectory drawn."""
    h, w = photo.shape[:2]
    offset, zoom, angle = _trajectory(rng, frames)
    # Room the camera needs around its path: half the (rotated, zoomed-out) crop plus the path.
    reach = crop * 0.75 / zoom.min() + np.abs(offset).max(0) + 4
    if w <= 2 * reach[0] or h <= 2 * reach[1]:
        return None
    start = np.array([rng.uniform(reach[0], w - reach[0]), rng.uniform(reach[1], h - reach[1])])
    centre = start + offset - offset.mean(0)  # the path is centred on the start point
    out = np.empty((frames, crop, crop, 3), dtype=np.uint8)
    half = (crop - 1) / 2
    for i in range(frames):
        c, s = math.cos(angle[i]) / zoom[i], math.sin(angle[i]) / zoom[i]
        # Output pixel (u, v) → photo pixel centre + R·(u - half, v - half) / zoom (inverse map).
        m = np.array(
            [[c, -s, centre[i, 0] - c * half + s * half], [s, c, centre[i, 1] - s * half - c * half]]
        )
        out[i] = cv2.warpAffine(
            photo,
            m,
            (crop, crop),
            flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )
    return out


def still_windows(
    photo: np.ndarray, rng: np.random.Generator, count: int, frames: int, crop: int
) -> list[np.ndarray]:
    """`count` camera windows over one photo, each at its own shrink factor and trajectory."""
    out = []
    for _ in range(count * 3):  # a few retries when a fast trajectory does not fit
        window = camera_window(shrink(photo, rng), rng, frames, crop)
        if window is not None:
            out.append(window)
        if len(out) == count:
            break
    return out
