"""Comparison videos: bicubic and the model in one picture, written by the ordinary upscale path.

`CompareModel` wraps any model: for each window it runs the model and a bicubic upscale of the
same frames and composes them, so temporal windows, blending, tiling, OOM fallback, timestamps and
audio passthrough all work exactly as for a normal upscale (`upscale --compare MODE` is an
`Upscaler` whose model is wrapped). Its description is the inner model's with its own name, its
output size (`panels`) and its memory (the inner model's and bicubic's side by side), so the
writer and the planner need nothing special.

- `split`: one frame at the output size, bicubic on the left half and the model on the right,
  with a thin white divider in the middle. Same size as the normal output.
- `side`: the two full frames next to each other, [bicubic | model]; the output is twice as wide.

Each half carries a small label (the method's name) in its top corner, burnt into the pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vsrup.errors import UsageError
from vsrup.models.base import ModelDescription, VSRModel
from vsrup.models.bicubic import Bicubic

MODES = ("split", "side")


def bicubic(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """The reference every preview and comparison shows: bicubic, no antialias, clamped."""
    return F.interpolate(frames, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def divider_width(width: int) -> int:
    """A divider visible at any size but thin: 2 px up to 1080p-wide frames, wider beyond."""
    return max(2, width // 960)


def compose(base: torch.Tensor, model: torch.Tensor, mode: str) -> torch.Tensor:
    """(T, 3, H, W) bicubic and model frames → the comparison frames for `mode`."""
    if mode == "side":
        return torch.cat([base, model], dim=-1)
    if mode != "split":
        raise UsageError(f"--compare must be one of {', '.join(MODES)} (got {mode!r})")
    width = base.shape[-1]
    half, line = width // 2, divider_width(width)
    out = torch.cat([base[..., :half], model[..., half:]], dim=-1)
    out[..., half - line // 2 : half - line // 2 + line] = 1.0
    return out


class CompareModel(VSRModel):
    """Runs `inner` and bicubic on the same window and composes them (see module docstring)."""

    def __init__(self, inner: VSRModel, mode: str = "split", labels: bool = True) -> None:
        super().__init__()
        if mode not in MODES:
            raise UsageError(f"--compare must be one of {', '.join(MODES)} (got {mode!r})")
        self.inner, self.mode, self.labels = inner, mode, labels
        described = inner.description
        # The bicubic frames and the composed ones live beside the model's own peak.
        per_pixel = (
            described.bytes_per_output_pixel + Bicubic(described.scale).description.bytes_per_output_pixel
        )
        self._description = described.but(
            name=f"compare-{mode}({described.name})",
            panels=described.panels * (2 if mode == "side" else 1),
            bytes_per_output_pixel=per_pixel,
        )

    @property
    def description(self) -> ModelDescription:
        return self._description

    @property
    def compile_targets(self) -> tuple[str, ...]:
        return tuple(f"inner.{path}" for path in self.inner.compile_targets)

    def set_channels_last(self, enabled: bool = True) -> CompareModel:
        self.inner.set_channels_last(enabled)
        return self

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        upscaled = self.inner.upscale(frames, tile)
        base = bicubic(frames, self._description.scale).to(upscaled.dtype)
        if self.labels:
            base, upscaled = (
                self._label(base, "bicubic", "left"),
                self._label(upscaled, self.inner.description.name, "right"),
            )
        return compose(base, upscaled, self.mode)

    def _label(self, frames: torch.Tensor, text: str, corner: str) -> torch.Tensor:
        from vsrup.labels import stamp_label

        # In split mode the model's half is the right one, so its label goes top right.
        where = corner if self.mode == "split" else "left"
        return stamp_label(frames, text, where)
