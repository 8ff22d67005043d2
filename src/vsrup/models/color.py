"""Colour correction of a diffusion model's output against its upsampled input (AdaIN, wavelet), as
the DLoRAL and OSEDiff references do it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _mean_std(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    return flat.mean(-1)[..., None, None], (flat.var(-1) + eps).sqrt()[..., None, None]


def adain_color_fix(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give each frame's channels the mean and std of the reference's (both (N, C, H, W)).
    As in the DLoRAL/OSEDiff `adaptive_instance_normalization`: unbiased variance + 1e-5."""
    mean, std = _mean_std(images.float())
    ref_mean, ref_std = _mean_std(reference.float())
    return ((images.float() - mean) / std * ref_std + ref_mean).to(images.dtype)


def _wavelet_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    # The 3×3 binomial kernel (1 2 1)ᵀ(1 2 1)/16, made on x's device: a kernel built from Python
    # numbers lives on the host, and copying it to the GPU on every call waits for the GPU's queue.
    taps = 2.0 - (torch.arange(3, device=x.device, dtype=x.dtype) - 1).abs()
    kernel = (taps[:, None] * taps[None, :] / 16)[None, None].repeat(x.shape[1], 1, 1, 1)
    x = F.pad(x, (radius,) * 4, mode="replicate")
    return F.conv2d(x, kernel, groups=x.shape[1], dilation=radius)


def _wavelet_split(x: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    high = torch.zeros_like(x)
    for i in range(levels):
        low = _wavelet_blur(x, 2**i)
        high = high + (x - low)
        x = low
    return high, x


def wavelet_color_fix(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """High frequencies of `images` + low frequencies of `reference` (5-level à-trous wavelet, as in
    the reference `wavelet_reconstruction`)."""
    high, _ = _wavelet_split(images.float())
    _, low = _wavelet_split(reference.float())
    return (high + low).to(images.dtype)


COLOR_FIXES = {"adain": adain_color_fix, "wavelet": wavelet_color_fix, "none": None}


# ---------------------------------------------------------------------------------------------
