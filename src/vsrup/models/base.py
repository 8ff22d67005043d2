"""The one contract every vsrup model implements, and the one-step latent template.

A model is known to the rest of vsrup only through two things:
- `description`: a frozen `ModelDescription` — what it is and what it needs (scales, the frames
  an output depends on, input size, how it tiles, dtypes, memory, licence). The planner, the
  estimate, `--compare`, bench and the workers read this and nothing else: no attribute probes, no
  tables keyed by model name.
- `upscale(frames, tile=0)`: one temporal window in, the upscaled window out. Runtime choices
  (the tile, and the device/dtype the model was loaded on) are arguments, never state that other
  code writes into the model.

Latent diffusion models (DLoRAL, OSEDiff, our own) share `OneStepLatentVSR`, whose `upscale` reads
as the algorithm: prepare → encode → temporal fuse → one denoising step → decode → finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import nn

TileSpace = Literal["latent", "pixel", "none"]


@dataclass(frozen=True)
class Tiling:
    """How a model splits a frame spatially. Sizes are in the model's tiling space: latent pixels
    for `latent`, input pixels for `pixel`; `none` means the model takes whole frames only.
    `per_input`: tiling-space pixels per input pixel along a side (a latent model at ×4 with an
    8× VAE has 0.5), so the planner can size a tile for a frame."""

    space: TileSpace = "none"
    minimum: int = 0
    overlap: int = 0
    per_input: float = 1.0

    @property
    def smallest(self) -> int:
        """The smallest tile a user may ask for: the declared minimum, and room for the overlap on
        both sides (tiles overlap by `overlap` each side)."""
        return max(self.minimum, 2 * self.overlap)


@dataclass(frozen=True)
class InputSize:
    """What frame sizes a model takes: at least `minimum` pixels a side; a model whose network
    needs a `multiple` pads (and crops) by itself, so the engine never has to."""

    minimum: int = 1
    multiple: int = 1


@dataclass(frozen=True)
class ModelDescription:
    """Everything the engine may know about a loaded model (see the module docstring)."""

    name: str
    scale: int  # the scale this loaded model runs at
    scales: tuple[int, ...]  # every scale the model family offers
    # (before, after): the frames output t depends on (t-before … t+after); the stream then takes
    # each frame from a window that holds all of them instead of blending windows. None: the output
    # depends on the whole window (windows overlap by 2 × `context` and are blended).
    neighbourhood: tuple[int, int] | None = (0, 0)
    context: int = 0  # frames of context wanted each side, for a whole-window model
    input: InputSize = field(default_factory=InputSize)
    tiling: Tiling = field(default_factory=Tiling)
    dtypes: tuple[str, ...] = ("float32",)  # torch dtype names it runs in
    # Peak activation bytes per output pixel and frame at fp32 (half precision halves it): the
    # planner's memory estimate and tile choice come from it.
    bytes_per_output_pixel: int = 4096
    licence: str = "unknown"
    prompt: bool = False  # takes a text prompt (--prompt)
    reference_postprocess: bool = False  # offers the official 8-bit post-processing
    panels: int = 1  # upscaled frames placed side by side in one output frame (`--compare side`: 2)

    @property
    def temporal(self) -> bool:
        """Looks at other frames than the one it makes (so shot changes matter)."""
        if self.neighbourhood is not None:
            return any(self.neighbourhood)
        return self.context > 0

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the frames `upscale` makes from width×height input: the writer is
        sized by it, so a model whose output is not simply `scale` times larger needs no special case."""
        return width * self.scale * self.panels, height * self.scale

    def but(self, **changes) -> ModelDescription:
        """This description with some fields changed (a wrapper's, e.g. `--compare`)."""
        return replace(self, **changes)


class VSRModel(nn.Module):
    """Upscales a window of consecutive frames.

    `upscale(frames, tile)` takes a float tensor (T, 3, h, w), RGB in [0, 1], on the device and in
    the dtype the model was loaded with, and returns `description.output_size` frames (T, 3, H, W)
    in [0, 1]. Frame t of the output belongs to frame t of the input; what else output t depends
    on is the description's `neighbourhood` (or, when None, the whole window). `tile` is in the
    description's tiling space (0: whole frames); a model whose tiling space is `none` ignores it.
    """

    # Speed switches the engine may turn on when it loads a model on a GPU (`tuning.accelerate`):
    # the heavy submodules worth `torch.compile` (dotted paths), and NHWC weights.
    compile_targets: tuple[str, ...] = ()

    @property
    def description(self) -> ModelDescription:  # pragma: no cover - abstract
        """The model's declared contract (see the module docstring)."""
        raise NotImplementedError

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def set_channels_last(self, enabled: bool = True) -> VSRModel:
        """NHWC weights (faster convolutions with cuDNN); a model may limit it to some parts."""
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

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

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        cond = self.prepare(frames)  # e.g. bicubic upsample to output size, scale to [-1, 1]
        latents = self.encode(cond, tile)  # (T, C, h', w')
        fused = self.temporal_fuse(latents, cond)  # adjacent-frame module
        x0 = self.denoise(fused, latents, tile)  # a single denoising step, no scheduler loop
        images = self.decode(x0, tile)  # (T, 3, H, W) in [-1, 1]
        return self.finish(images, cond)  # colour fix, clamp, back to [0, 1]

    # `tile` (latent pixels, 0: whole frames) is handed to the steps that may split a frame.
    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, cond: torch.Tensor, tile: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def temporal_fuse(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return latents

    def denoise(self, fused: torch.Tensor, latents: torch.Tensor, tile: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, x0: torch.Tensor, tile: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def finish(self, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return ((images.clamp(-1, 1) + 1) / 2).to(cond.dtype)
