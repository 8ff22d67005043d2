"""Training and monitor data for span-video: HR windows from the shared clips, split in time.

Each clip's first `train_part` of frames feeds training; windows from its last tenth (never
trained on) make the monitor that the log reports. That monitor measures progress only: the
benchmark's held-out sequences (`data.HELD_OUT`) are refused here as in `data.py`.

Each training sample degrades a 5-frame HR window as one clip (so H.264 codes the middle frames
as P/B frames, as in real footage) and keeps the middle three: previous, current, next.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vsrup.models.flow import _dis, _luma_u8, pair_flow
from vsrup.train.data import _check_not_held_out, _still_crops, read_frames
from vsrup.train.degrade import Recipe, degrade, downscale, sample_params

WINDOW = 5  # frames degraded together; the model sees the middle three
VAL_CRF = 26  # the benchmark's web-like compression


def build_split_cache(
    sources: list[Path],
    cache_dir: Path,
    seed: int,
    crop: int,
    windows: int,
    train_part: float = 0.85,
    stills: list[Path] = (),
    per_still: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) uint8 arrays (N, WINDOW, crop, crop, 3): train windows spread over each clip's
    first `train_part`, plus `per_still` moving-camera windows per still photograph (`motion.py`),
    and eight monitor windows per clip from its last tenth. Cached on disk."""
    _check_not_held_out([*sources, *stills])
    spec = {"sources": [s.name for s in sources], "seed": seed, "crop": crop, "windows": windows}
    spec |= {"train_part": train_part, "window": WINDOW, "val_windows_per_clip": 8}
    if stills:  # (keeps the key of caches built without stills)
        spec |= {"stills": [str(p.relative_to(p.parents[1])) for p in stills], "per_still": per_still}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir / f"span_split_{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            return data["train"], data["val"]
    rng = np.random.default_rng(seed)
    train, val = [], []
    for source in sources:
        frames = read_frames(source)
        n, (h, w) = len(frames), frames[0].shape[:2]
        cut = int(n * train_part)
        for s in np.linspace(0, cut - WINDOW, num=windows).astype(int):
            for _ in range(3):
                y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
                train.append(_crop(frames[s : s + WINDOW], y, x, crop))
        for s in np.linspace(min(int(n * 0.9), n - WINDOW), n - WINDOW, num=4).astype(int):
            for _ in range(2):
                y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
                val.append(_crop(frames[s : s + WINDOW], y, x, crop))
        del frames
    if stills:
        train += _still_crops(list(stills), rng, WINDOW, crop, per_still)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, train=np.stack(train), val=np.stack(val))
    tmp.replace(path)
    return np.stack(train), np.stack(val)


def _crop(frames: list[np.ndarray], y: int, x: int, crop: int) -> np.ndarray:
    """A copy, never a view: a view would keep the whole 720p frames alive in the cache lists."""
    return np.stack([f[y : y + crop, x : x + crop] for f in frames])


def sample_recipe(rng: np.random.Generator, clean: float, blur_scale: float = 1.0) -> Recipe:
    """clean bicubic (`clean`), else: H.264 CRF 18–32 after bicubic (half of the rest), JPEG
    (a sixth), or `degrade.sample_params`' blur/noise/kernel/codec mix (a third), its blur σ
    multiplied by `blur_scale` (σ up to 2.5 HR px is strong at ×2: the model then learns to
    sharpen what is sharp already, and loses on clean input)."""
    u = rng.random()
    if u < clean:
        return Recipe()
    u = (u - clean) / (1 - clean)
    if u < 0.5:
        return Recipe(h264_crf=int(rng.integers(18, 33)))
    if u < 2 / 3:
        return Recipe(jpeg_quality=int(rng.integers(40, 91)))
    recipe = sample_params(rng, clean_fraction=0.0)
    if blur_scale != 1.0:
        recipe = replace(recipe, blur_sigma=tuple(blur_scale * v for v in recipe.blur_sigma))
    return recipe


def centre_flows(lr: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3, h, w) LR triples → (B, 4, h, w) DIS flows aligning frames 0 and 2 onto frame 1."""
    b, _, _, h, w = lr.shape
    luma = _luma_u8(lr.flatten(0, 1)).reshape(b, 3, h, w)
    dis, out = _dis(), np.zeros((b, 4, h, w), np.float32)
    for i in range(b):
        out[i, :2] = pair_flow(dis, luma[i, 1], luma[i, 0]).transpose(2, 0, 1)
        out[i, 2:] = pair_flow(dis, luma[i, 1], luma[i, 2]).transpose(2, 0, 1)
    return torch.from_numpy(out)


def to_tensor(windows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(windows)).permute(0, 1, 4, 2, 3).float() / 255


def make_triples(
    hr: torch.Tensor,
    scale: int,
    rng: np.random.Generator,
    clean: float,
    vary: float,
    lone: float,
    blur_scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HR windows (B, WINDOW, 3, H, W) → (LR triples (B, 3, 3, h, w), flows (B, 4, h, w), HR centres).
    With probability `lone` a neighbour is replaced by the frame itself (zero flow): a shot's
    first or last frame, as the engine gives it."""
    lrs = []
    for window in hr:
        recipe = sample_recipe(rng, clean, blur_scale)
        lrs.append(degrade(window, scale, recipe, rng, vary=rng.random() < vary)[1:4])
    lr = torch.stack(lrs)
    flows = centre_flows(lr)
    for i in range(lr.shape[0]):
        for side, ch in ((0, slice(0, 2)), (2, slice(2, 4))):
            if rng.random() < lone:
                lr[i, side], flows[i, ch] = lr[i, 1], 0
    return lr, flows, hr[:, 2]


def monitor_inputs(val: np.ndarray, scale: int) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The monitor's fixed LR triples: clean bicubic, and bicubic then H.264 CRF 26."""
    hr = to_tensor(val)
    clean = torch.stack([downscale(w, scale)[1:4] for w in hr])
    rng = np.random.default_rng(0)
    coded = torch.stack([degrade(w, scale, Recipe(h264_crf=VAL_CRF), rng)[1:4] for w in hr])
    return {name: (lr, centre_flows(lr), hr[:, 2]) for name, lr in (("clean", clean), ("h264", coded))}


def psnr_y(x: torch.Tensor, y: torch.Tensor, border: int) -> torch.Tensor:
    """PSNR of BT.601 luma per image (N,), `border` pixels shaved (the usual SR convention)."""
    weights = torch.tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255
    dy = ((x.clamp(0, 1) - y) * weights).sum(1)[:, border:-border, border:-border]
    return 10 * torch.log10(1 / dy.pow(2).mean((1, 2)).clamp_min(1e-10))


def gain_over_bicubic(net, inputs: dict, scale: int) -> dict[str, float]:
    """Mean PSNR-Y gain (dB) over bicubic of `net(prev, cur, next, flows)` per monitor input."""
    out = {}
    with torch.no_grad():
        for name, (lr, flows, hr) in inputs.items():
            sr = net(lr[:, 0], lr[:, 1], lr[:, 2], flows)
            bic = torch.nn.functional.interpolate(lr[:, 1], scale_factor=scale, mode="bicubic")
            out[name] = round(float((psnr_y(sr, hr, scale) - psnr_y(bic, hr, scale)).mean()), 4)
    return out
