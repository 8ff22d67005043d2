"""Bicubic interpolation as a model: the quality baseline and the I/O floor for benchmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vsrup.models.base import VSRModel


class Bicubic(VSRModel):
    name = "bicubic"
    temporal_context = 0
    neighbourhood = (0, 0)

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        # A buffer so the model has a device and dtype like any other.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def upscale(self, frames: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(frames, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up.clamp(0, 1)
