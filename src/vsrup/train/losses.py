"""Training losses over output windows (B, T, 3, H, W) against ground truth of the same shape."""

from __future__ import annotations

import torch


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """A smooth L1: robust like L1, differentiable at 0; the usual SR pixel loss."""
    return torch.sqrt((x - y) ** 2 + eps**2).mean()


def frequency(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between 2-D spectra (real and imaginary parts): pushes the model to restore the high
    frequencies a pixel loss alone tends to smooth away."""
    fx = torch.fft.rfft2(x.float(), norm="ortho")
    fy = torch.fft.rfft2(y.float(), norm="ortho")
    return (torch.view_as_real(fx) - torch.view_as_real(fy)).abs().mean()


def temporal(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame change of the output should equal that of the ground truth: penalises
    flicker (change where GT is static) and lag (missing change where GT moves) alike, with no
    flow needed."""
    if x.shape[1] < 2:
        return x.new_zeros(())
    return charbonnier(x[:, 1:] - x[:, :-1], y[:, 1:] - y[:, :-1])


WEIGHTS = {"pixel": 1.0, "frequency": 0.05, "temporal": 0.5}


def total(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    parts = {"pixel": charbonnier(x, y), "frequency": frequency(x, y), "temporal": temporal(x, y)}
    loss = sum(WEIGHTS[k] * v for k, v in parts.items())
    return loss, {k: float(v.detach()) for k, v in parts.items()}
