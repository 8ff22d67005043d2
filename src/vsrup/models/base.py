"""The one interface every vsrup model implements, and the one-step latent template.

The engine only ever calls `VSRModel.upscale(frames)` on a temporal window of frames. Latent
diffusion models (DLoRAL, OSEDiff, our own) share `OneStepLatentVSR`, whose `upscale` reads as the
algorithm: prepare → encode → temporal fuse → one denoising step → decode → finish. Models differ by
their components, not by copied loops; memory tricks (tiling) are switches, not branches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TileSettings:
    """Spatial tiling switches. Sizes are in latent pixels; 0 disables tiling."""

    latent_tile: int = 0
    latent_overlap: int = 16


class VSRModel(nn.Module):
    """Upscales a window of consecutive frames.

    `upscale` takes a float tensor (T, 3, h, w), RGB in [0, 1], on the model's device and dtype,
    and returns (T, 3, h * scale, w * scale) in [0, 1]. Frame t of the output belongs to frame t
    of the input; a model may look at any frame of the window (the engine overlaps windows so that
    every frame gets context, and blends the overlaps).
    """

    name: str = "model"
    scale: int = 4
    # Frames of context a model wants before the frame it upscales; the engine's default overlap.
    temporal_context: int = 1
    # The neighbourhood output frame t depends on: it is exact only when frames t − context_before
    # … t + context_after are in the window (or do not exist: the video starts or ends there). The
    # engine ignores the first context_before and last context_after outputs of a window that does
    # not start (end) at the video's first (last) frame.
    context_before: int = 0
    context_after: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.tiles = TileSettings()

    def upscale(self, frames: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.upscale(frames)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.float32


class OneStepLatentVSR(VSRModel):
    """Template for one-step latent super-resolution over a window of frames.

    Subclasses provide the components; the steps below are the algorithm, in order. Each step takes
    and returns whole-window tensors; `tiling.tiled_apply` is used inside steps that need it.
    """

    def upscale(self, frames: torch.Tensor) -> torch.Tensor:
        cond = self.prepare(frames)  # e.g. bicubic upsample to output size, scale to [-1, 1]
        latents = self.encode(cond)  # (T, C, h', w')
        fused = self.temporal_fuse(latents, cond)  # adjacent-frame module
        x0 = self.denoise(fused, latents)  # a single denoising step, no scheduler loop
        images = self.decode(x0)  # (T, 3, H, W) in [-1, 1]
        return self.finish(images, cond)  # colour fix, clamp, back to [0, 1]

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, cond: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def temporal_fuse(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return latents

    def denoise(self, fused: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def finish(self, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return ((images.clamp(-1, 1) + 1) / 2).to(cond.dtype)
