"""Training data: HR frame windows from real videos, frame folders and moving-camera stills,
cached once as one .npy.

Decoding 720p H.264 for every step would make training decode-bound, so `build_cache` decodes each
source once (videos through vsrup's own inference reader, `vsrup.io.reader.read_frames`, so training
sees the colour matrix and range that `vsrup upscale` feeds the model), cuts `per_window` random HR
crops out of windows of consecutive frames spread over the whole clip, adds `still_windows`
synthetic camera windows per photograph (`motion.py`), and stores them as a uint8 array
(N, T, H, W, 3). `sample_windows` then draws training windows from that array with random
sub-crops, flips and time reversal.

Only HR is cached. Degradations are drawn per step, so the LR (and the DIS flow the model computes
from it, inside the model, a few milliseconds per batch) always matches what the model sees.

The held-out evaluation data (`HELD_OUT`) is refused here so it can never leak into training.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from vsrup.errors import InputError, UsageError
from vsrup.io.probe import probe
from vsrup.io.reader import read_frames as read_video
from vsrup.io.reader import to_8bit
from vsrup.train.motion import still_windows

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
# Never trained on: the quality benchmark's held-out clips and frame folders.
HELD_OUT = {"05_default_juggle.mp4", "bedroom.mp4", "reds_demo_lr", "vimeo_septuplet"}
# The shared data sits beside the project: <project root>/../shared/data (override with --data-root).
PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"


def portable_path(path: Path) -> str:
    """`path` as the weights' JSON records it: relative to the project root when it is beside it
    (`../shared/data/...`), so no machine's absolute layout ships with the model."""
    path = path.resolve()
    if path.is_relative_to(PROJECT_ROOT.parent):
        return os.path.relpath(path, PROJECT_ROOT)
    return str(path)


def default_sources(root: Path = DEFAULT_DATA) -> list[Path]:
    """Every video and frame folder under `root` except the held-out ones."""
    found = [p for p in sorted((root / "clips").glob("*")) if p.suffix.lower() in VIDEO_SUFFIXES]
    found += [p for p in sorted((root / "frames").glob("*")) if p.is_dir()]
    return [p for p in found if p.name not in HELD_OUT]


def read_frames(source: Path, max_frames: int | None = None) -> list[np.ndarray]:
    """All frames (or the first `max_frames`) of a video or an image folder, as HWC uint8 RGB."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"no image frames in {source}")
        return [np.asarray(Image.open(p).convert("RGB")) for p in files[:max_frames]]
    # Videos are read by the reader `vsrup upscale` uses, so training sees the RGB inference sees.
    frames = []
    for frame in read_video(probe(source)):
        frames.append(to_8bit(frame.image))
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise InputError(f"no video frames in {source}")
    return frames


def still_images(folder: Path) -> list[Path]:
    """Every photograph under `folder` (recursively), sorted: the stills for camera windows."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _crops_from_source(
    frames: list[np.ndarray], rng: np.random.Generator, length: int, crop: int, windows: int, per_window: int
) -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    if len(frames) < length or h < crop or w < crop:
        return []
    starts = np.linspace(0, len(frames) - length, num=min(windows, len(frames) - length + 1)).astype(int)
    out = []
    for s in starts:
        window = np.stack(frames[s : s + length])
        for _ in range(per_window):
            y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            out.append(window[:, y : y + crop, x : x + crop])
    return out


def _check_not_held_out(sources: list[Path]) -> None:
    for s in sources:
        if s.name in HELD_OUT or any(part in HELD_OUT for part in s.parts):
            raise UsageError(f"{s.name} is held out for evaluation and must not be trained on")


def _still_crops(
    stills: list[Path], rng: np.random.Generator, length: int, crop: int, count: int
) -> list[np.ndarray]:
    Image.MAX_IMAGE_PIXELS = None  # wallpapers reach 5000×3000; they are trusted package files
    out = []
    for path in stills:
        photo = np.asarray(Image.open(path).convert("RGB"))
        out += still_windows(photo, rng, count, length, crop)
    return out


def build_cache(
    sources: list[Path],
    cache_dir: Path,
    seed: int = 0,
    length: int = 5,
    crop: int = 160,
    windows: int = 40,
    per_window: int = 3,
    stills: list[Path] = (),
    per_still: int = 8,
) -> np.ndarray:
    """Decode `sources` once into HR crop windows (N, length, crop, crop, 3) uint8, plus
    `per_still` camera windows per still photograph, cached on disk (keyed by all the inputs)."""
    _check_not_held_out([*sources, *stills])
    spec = {"sources": [str(s) for s in sources], "seed": seed, "length": length, "crop": crop}
    spec |= {"windows": windows, "per_window": per_window}
    if stills:  # (keeps the key of caches built before stills existed)
        spec |= {"stills": [str(s) for s in stills], "per_still": per_still}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir / f"hr_crops_{key}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    rng = np.random.default_rng(seed)
    crops: list[np.ndarray] = []
    for source in sources:
        crops += _crops_from_source(read_frames(source), rng, length, crop, windows, per_window)
    crops += _still_crops(list(stills), rng, length, crop, per_still)
    if not crops:
        raise InputError(f"no training windows of {length} frames ≥ {crop}px in {len(sources)} sources")
    data = np.stack(crops)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A temporary name of this process's own: the ×4 and ×2 runs launched side by side build the
    # same cache at once, and a shared name would let one rename the other's half-written file.
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, data)
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(spec | {"shape": list(data.shape)}, indent=2))
    return data


def sample_windows(
    cache: np.ndarray, rng: np.random.Generator, batch: int, frames: int, crop: int
) -> np.ndarray:
    """Draw `batch` HR windows (B, frames, crop, crop, 3) with random sub-crop, flips, transpose
    and time reversal (all label-preserving for super-resolution)."""
    n, length, h, w, _ = cache.shape
    out = []
    for _ in range(batch):
        i, t = int(rng.integers(n)), int(rng.integers(length - frames + 1))
        y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        win = np.asarray(cache[i, t : t + frames, y : y + crop, x : x + crop])
        if rng.random() < 0.5:
            win = win[:, :, ::-1]
        if rng.random() < 0.5:
            win = win[:, ::-1]
        if rng.random() < 0.5:
            win = win.transpose(0, 2, 1, 3)
        if rng.random() < 0.5:
            win = win[::-1]
        out.append(np.ascontiguousarray(win))
    return np.stack(out)
