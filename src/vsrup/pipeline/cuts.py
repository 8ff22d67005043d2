"""Shot changes, found cheaply on the decoded frames: temporal context must never cross a cut, or
the first frames of a shot show ghosts of the last one.

Each frame is reduced to a 32×18 luma thumbnail; a cut is where both its grey-level histogram and
the thumbnail itself change far more than motion, flashes or noise change them between
consecutive frames of one shot. A few thousand operations per frame, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

THUMB = (18, 32)  # rows, columns
BINS = 16
HISTOGRAM_JUMP = 0.3  # L1 distance of normalised histograms, 0…2 (within a shot here: ≤ 0.13)
PICTURE_JUMP = 0.1  # mean |difference| of thumbnails on [0, 1] (within a shot here: ≤ 0.05)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8/uint16 → (18, 32) luma in [0, 1], by block means (any frame size)."""
    peak = 65535.0 if image.dtype == np.uint16 else 255.0
    step = max(1, min(image.shape[0] // (4 * THUMB[0]), image.shape[1] // (4 * THUMB[1])))
    image = image[::step, ::step]  # a 4K frame need not be read whole to make 32×18 means
    luma = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / peak
    rows = np.array_split(np.arange(luma.shape[0]), THUMB[0])
    cols = np.array_split(np.arange(luma.shape[1]), THUMB[1])
    row_means = np.stack([luma[r].mean(axis=0) for r in rows if len(r)])
    return np.stack([row_means[:, c].mean(axis=1) for c in cols if len(c)], axis=1)


def is_cut(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether thumbnails `before` → `after` (consecutive frames) cross a shot change."""
    hist_a = np.histogram(before, BINS, (0.0, 1.0))[0] / before.size
    hist_b = np.histogram(after, BINS, (0.0, 1.0))[0] / after.size
    return bool(
        np.abs(hist_a - hist_b).sum() > HISTOGRAM_JUMP and np.abs(before - after).mean() > PICTURE_JUMP
    )


def shot_changes(thumbs: Iterable[np.ndarray]) -> Iterator[int]:
    """Indices of the frames that start a new shot among consecutive thumbnails (not frame 0)."""
    previous = None
    for index, thumb in enumerate(thumbs):
        if previous is not None and is_cut(previous, thumb):
            yield index
        previous = thumb


def last_cut(thumbs: Iterable[np.ndarray]) -> int:
    """Index of the first frame of the last shot among consecutive thumbnails (0 if one shot)."""
    return max(shot_changes(thumbs), default=0)


def cuts(images: Iterable[np.ndarray]) -> list[int]:
    """Indices of the frames that start a new shot (frame 0 not included)."""
    return list(shot_changes(thumbnail(image) for image in images))
