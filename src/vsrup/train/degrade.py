"""Degradations that turn HR frame windows into realistic LR training inputs.

One function, `degrade`, maps an HR window (T, 3, H, W) in [0, 1] to its LR window at 1/scale:
blur (anisotropic Gaussian, varied size and angle) → downscale (bicubic, bilinear or area) →
noise (Gaussian, colour or grey) → compression (JPEG per frame, or the window encoded as H.264
with PyAV). `sample_params` draws one recipe; a *consistent* window uses one recipe for every frame,
a *frame-varying* window jitters blur, noise and JPEG quality per frame — the progressive curriculum
moves from the first to the second (cf. OASIS). A fraction of windows is plain bicubic downscale
(`downscale`), the very LR the quality benchmark feeds the model.

All randomness comes from the numpy Generator passed in, so a seed reproduces a window exactly.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from fractions import Fraction

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

DOWN_KERNELS = ("bicubic", "bilinear", "area")


def downscale(x: torch.Tensor, scale: int, kernel: str = "bicubic") -> torch.Tensor:
    """Downscale (N, 3, H, W) by an integer factor; bicubic/bilinear with antialiasing (like PIL
    and MATLAB imresize), so high frequencies are filtered instead of aliased."""
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    if kernel == "area":
        return F.interpolate(x, size=(h, w), mode="area")
    return F.interpolate(x, size=(h, w), mode=kernel, antialias=True, align_corners=False).clamp(0, 1)


@dataclass(frozen=True)
class Recipe:
    blur_sigma: tuple[float, float] = (0.0, 0.0)  # HR pixels, along the two kernel axes
    blur_angle: float = 0.0
    kernel: str = "bicubic"
    noise_sigma: float = 0.0  # in [0, 1] units
    noise_grey: bool = False
    jpeg_quality: int = 0  # 0 = no JPEG
    h264_crf: int = 0  # 0 = no H.264


def sample_params(rng: np.random.Generator, clean_fraction: float = 0.5) -> Recipe:
    """Draw a degradation recipe; with probability `clean_fraction` it is plain bicubic."""
    if rng.random() < clean_fraction:
        return Recipe()
    sigma = (0.0, 0.0)
    if rng.random() < 0.7:
        s1 = float(rng.uniform(0.3, 2.5))
        s2 = float(s1 * rng.uniform(0.5, 1.0)) if rng.random() < 0.5 else s1
        sigma = (s1, s2)
    compression = rng.random()
    return Recipe(
        blur_sigma=sigma,
        blur_angle=float(rng.uniform(0, math.pi)),
        kernel=str(rng.choice(DOWN_KERNELS)),
        noise_sigma=float(rng.uniform(1, 10) / 255) if rng.random() < 0.5 else 0.0,
        noise_grey=bool(rng.random() < 0.4),
        jpeg_quality=int(rng.integers(40, 95)) if compression < 0.35 else 0,
        h264_crf=int(rng.integers(18, 34)) if 0.35 <= compression < 0.7 else 0,
    )


def jitter(recipe: Recipe, rng: np.random.Generator) -> Recipe:
    """The same recipe with per-frame variation (blur strength, noise level, JPEG quality)."""
    s1, s2 = recipe.blur_sigma
    f = float(rng.uniform(0.8, 1.25))
    q = recipe.jpeg_quality
    return replace(
        recipe,
        blur_sigma=(s1 * f, s2 * f),
        blur_angle=recipe.blur_angle + float(rng.normal(0, 0.2)),
        noise_sigma=recipe.noise_sigma * float(rng.uniform(0.6, 1.4)),
        jpeg_quality=int(np.clip(q + rng.integers(-10, 11), 20, 98)) if q else 0,
    )


def gaussian_kernel(sigma: tuple[float, float], angle: float) -> torch.Tensor:
    """A normalised anisotropic Gaussian (k, k) with k odd and about 3 sigma wide on each side."""
    s1, s2 = max(sigma[0], 1e-3), max(sigma[1], 1e-3)
    k = 2 * math.ceil(3 * max(s1, s2)) + 1
    r = torch.arange(k, dtype=torch.float64) - k // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    kern = torch.exp(-0.5 * ((u / s1) ** 2 + (v / s2) ** 2))
    return (kern / kern.sum()).float()


def blur(x: torch.Tensor, sigma: tuple[float, float], angle: float) -> torch.Tensor:
    if max(sigma) <= 0:
        return x
    kern = gaussian_kernel(sigma, angle)
    k = kern.shape[-1]
    padded = F.pad(x, (k // 2,) * 4, mode="reflect" if min(x.shape[-2:]) > k // 2 else "replicate")
    weight = kern.expand(x.shape[1], 1, k, k)
    return F.conv2d(padded, weight, groups=x.shape[1])


def add_noise(x: torch.Tensor, recipe: Recipe, rng: np.random.Generator) -> torch.Tensor:
    if recipe.noise_sigma <= 0:
        return x
    shape = (x.shape[0], 1 if recipe.noise_grey else x.shape[1], *x.shape[2:])
    noise = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)) * recipe.noise_sigma
    return (x + noise).clamp(0, 1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(T, 3, h, w) in [0, 1] → (T, h, w, 3) uint8."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def from_uint8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def h264(frames: np.ndarray, crf: int, x264_params: str = "") -> np.ndarray:
    """Encode a (T, h, w, 3) uint8 window as H.264 (yuv420p, one thread) and decode it.
    `x264_params` go to x264 as they are; "mbtree=0" makes the bytes the same on every run (with
    the macroblock tree, x264 here encodes the same frames differently from run to run)."""
    t, h, w, _ = frames.shape
    ph, pw = h + h % 2, w + w % 2  # 4:2:0 needs even sizes
    padded = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        if x264_params:
            stream.options = stream.options | {"x264-params": x264_params}
        stream.codec_context.time_base = Fraction(1, 25)
        for i, frame in enumerate(padded):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as inp:
        decoded = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    return np.stack(decoded)[:, :h, :w]


def degrade(
    hr: torch.Tensor, scale: int, recipe: Recipe, rng: np.random.Generator, vary: bool = False
) -> torch.Tensor:
    """HR window (T, 3, H, W) in [0, 1] → LR window (T, 3, H/scale, W/scale) in [0, 1].

    `vary=True` jitters the recipe per frame (frame-varying degradation); otherwise every frame
    gets the same recipe (noise samples still differ per frame, as real sensor noise does)."""
    recipes = [jitter(recipe, rng) if vary else recipe for _ in range(hr.shape[0])]
    frames = []
    for frame, r in zip(hr, recipes, strict=True):
        x = blur(frame[None], r.blur_sigma, r.blur_angle)
        x = downscale(x, scale, r.kernel)
        frames.append(add_noise(x, r, rng))
    lr = torch.cat(frames)
    if recipe.jpeg_quality or recipe.h264_crf:
        data = to_uint8(lr)
        if recipe.h264_crf:
            data = h264(data, recipe.h264_crf)
        else:
            data = np.stack([jpeg(f, r.jpeg_quality) for f, r in zip(data, recipes, strict=True)])
        lr = from_uint8(data)
    return lr
