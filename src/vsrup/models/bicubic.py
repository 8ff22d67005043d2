"""Bicubic interpolation as a model: the quality baseline and the I/O floor for benchmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vsrup.models.base import ModelDescription, VSRModel

SCALES = (2, 4)
# Measured peak (fp32, CPU, window of 8 at 180p→720p): the interpolation's input and output.
BYTES_PER_OUTPUT_PIXEL = 48


class Bicubic(VSRModel):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self._description = ModelDescription(
            name="bicubic",
            scale=scale,
            scales=SCALES,
            neighbourhood=(0, 0),
            dtypes=("float32", "float16", "bfloat16"),
            bytes_per_output_pixel=BYTES_PER_OUTPUT_PIXEL,
            licence="-",
        )
        # A buffer so the model has a device and dtype like any other.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def description(self) -> ModelDescription:
        return self._description

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        """Whole frames always (the description's tiling is `none`): `tile` is ignored."""
        up = F.interpolate(frames, scale_factor=self._description.scale, mode="bicubic", align_corners=False)
        return up.clamp(0, 1)
