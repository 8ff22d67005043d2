"""Full-reference video quality metrics: PSNR-Y, SSIM-Y and temporal flicker.

Frames are (T, 3, H, W) RGB in [0, 1]; every metric works on BT.601 luma in 8-bit units (the usual
super-resolution convention), with an optional border cropped (the SR scale, by convention).
"""

from __future__ import annotations

import torch

from vsrup.errors import UsageError

PSNR_CAP = 100.0  # identical images have infinite PSNR; report this instead so JSON stays valid


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-range Y in 8-bit units (16..235) from RGB (…, 3, H, W) in [0, 1]."""
    r, g, b = x.unbind(-3)
    return 16 + 65.481 * r + 128.553 * g + 24.966 * b


def _crop(y: torch.Tensor, border: int) -> torch.Tensor:
    return y[..., border : y.shape[-2] - border, border : y.shape[-1] - border] if border else y


def psnr_y(out: torch.Tensor, gt: torch.Tensor, border: int = 0) -> float:
    """Mean over frames of PSNR on Y; frames are (T, 3, H, W) in [0, 1]."""
    diff = _crop(luma(out.double()) - luma(gt.double()), border)
    mse = diff.pow(2).flatten(1).mean(1)
    per_frame = torch.where(mse > 0, 10 * torch.log10(255**2 / mse), torch.full_like(mse, PSNR_CAP))
    return float(per_frame.clamp(max=PSNR_CAP).mean())


def _gauss_blur(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Valid (unpadded) Gaussian filtering of (N, H, W), separable, as weighted sums of shifted
    slices: on CPU this is much faster than a one-channel conv2d."""
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - size // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).tolist()  # python floats: the result keeps x's dtype
    h, w = x.shape[-2] - size + 1, x.shape[-1] - size + 1
    rows = sum(g[i] * x[..., i : i + h, :] for i in range(size))
    return sum(g[i] * rows[..., :, i : i + w] for i in range(size))


def ssim_y(out: torch.Tensor, gt: torch.Tensor, border: int = 0) -> float:
    """Mean SSIM on Y (Wang et al. 2004: 11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03)."""
    if min(out.shape[-2:]) - 2 * border < 11:
        raise UsageError("frames too small for SSIM's 11×11 window")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    scores = []
    for o, g in zip(out, gt, strict=True):  # frame by frame: float32 arrays that stay in cache
        # Centred on 128 so the float32 second moments keep their precision; SSIM's means are
        # shifted back, its (co)variances do not change under the shift.
        x, y = _crop(luma(o) - 128, border), _crop(luma(g) - 128, border)
        mx, my = _gauss_blur(x), _gauss_blur(y)
        sxx = _gauss_blur(x * x) - mx**2
        syy = _gauss_blur(y * y) - my**2
        sxy = _gauss_blur(x * y) - mx * my
        mx, my = mx + 128, my + 128
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
        scores.append(float(s.double().mean()))
    return sum(scores) / len(scores)


def flicker(out: torch.Tensor, gt: torch.Tensor, border: int = 0) -> float:
    """Mean |Δout − Δgt| over consecutive frames, on Y in 8-bit units (0 for a single frame)."""
    if out.shape[0] < 2:
        return 0.0
    yo, yg = _crop(luma(out.double()), border), _crop(luma(gt.double()), border)
    return float(((yo[1:] - yo[:-1]) - (yg[1:] - yg[:-1])).abs().mean())
