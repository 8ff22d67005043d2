"""`span-video`: vsrup's video model on top of pretrained SPAN — frozen base, our trained parts.

What we train and ship (src/vsrup/assets/span_video_x{scale}.safetensors, a few hundred kB):

- a LoRA on every conv of the base (rank `rank`): W' = W + (alpha / rank) · B·A, B zero at the
  start, trained on compressed and clean LR so that compressed input is cleaned, not sharpened
  blocks. Merged into the base weights at load, so inference costs exactly what SPAN costs;
- a temporal module: the previous and next LR frames' conv_1 features, warped onto frame t by
  DIS optical flow between the LR frames (`flow.py`, computed inside the model on the CPU), are
  fused into frame t's features before SPAN's blocks reconstruct it. The fusion's last conv starts
  at zero, so an untrained module leaves the base exactly as it was. Besides the feature
  differences it sees how well each neighbour's warp matches the frame (|warped LR − LR|), which
  tells it where the flow is wrong (occlusion, new content).

Output t depends on frames t−1, t, t+1 (neighbourhood (1, 1)): the engine gives every frame its
neighbours from inside the same shot; a frame without one (a shot's first or last frame) uses
itself in its place, which is what training showed the model for a share of its windows.

The base weights are never shipped: they are the user's local conversion (`vsrup.weights.span_wheel`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from vsrup.models.base import InputSize, ModelDescription, Tiling, VSRModel
from vsrup.models.flow import warp, window_flows
from vsrup.models.span import LICENCE, SCALES, TILE_OVERLAP, SPANNet, channels_last
from vsrup.models.tiling import tiled_apply

NAME = "span-video"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
FUSION_RADIUS = 2  # the fusion's two 3×3 convs widen what a tile must see
OVERLAP = TILE_OVERLAP + FUSION_RADIUS


@dataclass
class AdapterConfig:
    scale: int = 4
    rank: int = 8  # LoRA rank of every base conv; 0: no LoRA (temporal module only)
    alpha: float = 8.0
    temporal: bool = True  # the flow-aligned neighbour fusion
    hidden: int = 48  # fusion channels


class LoRADelta(nn.Module):
    """Weight parametrisation W → W + (alpha / rank) · B·A, A (rank, in·k·k), B (out, rank)."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float) -> None:
        super().__init__()
        out_ch, fan_in = weight.shape[0], weight[0].numel()
        self.lora_A = nn.Parameter(torch.randn(rank, fan_in) / fan_in**0.5)
        self.lora_B = nn.Parameter(torch.zeros(out_ch, rank))
        self.factor = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.factor * (self.lora_B @ self.lora_A)).view_as(weight)


class NeighbourFusion(nn.Module):
    """f_t + conv(SiLU(conv([f_t, f_{t-1}→t − f_t, f_{t+1}→t − f_t, |e_{t-1}|, |e_{t+1}|])))."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3 * channels + 6, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as the identity: the base model, exactly
        nn.init.zeros_(self.out.bias)

    def forward(self, feat: torch.Tensor, prev: torch.Tensor, nxt: torch.Tensor, errors: torch.Tensor):
        x = torch.cat((feat, prev - feat, nxt - feat, errors), 1)
        return feat + self.out(F.silu(self.mix(x)))


def lora_convs(net: SPANNet) -> list[str]:
    return [name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]


class SPANVideoNet(nn.Module):
    """Trainable form: frozen base SPANNet + LoRA parametrisations + neighbour fusion."""

    def __init__(self, base: SPANNet, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config
        self.base = base.requires_grad_(False)
        if config.rank:
            for name in lora_convs(base):
                conv = base.get_submodule(name)
                parametrize.register_parametrization(
                    conv, "weight", LoRADelta(conv.weight, config.rank, config.alpha)
                )
        self.fusion = NeighbourFusion(base.channels, config.hidden) if config.temporal else None

    def forward(self, prev: torch.Tensor, cur: torch.Tensor, nxt: torch.Tensor, flows: torch.Tensor):
        """prev/cur/nxt: (N, 3, h, w) LR; flows (N, 4, h, w) aligning prev (0–1) and next (2–3) to cur."""
        if self.fusion is None:
            return self.base(cur)
        feats = self.base.features(torch.cat((prev, cur, nxt)))
        fp, fc, fn = feats.chunk(3)
        wp, wn = warp(fp, flows[:, :2]), warp(fn, flows[:, 2:])
        errors = torch.cat(((warp(prev, flows[:, :2]) - cur).abs(), (warp(nxt, flows[:, 2:]) - cur).abs()), 1)
        return self.base.reconstruct(self.fusion(fc, wp, wn, errors * 10))

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """What we ship: LoRA factors and the fusion, never the base's weights."""
        return {k: v.detach().float().contiguous() for k, v in self.state_dict().items() if _ours(k)}

    def merge(self) -> None:
        """Fold the LoRA into the conv weights (inference costs what the base costs)."""
        for name in lora_convs(self.base):
            conv = self.base.get_submodule(name)
            if parametrize.is_parametrized(conv, "weight"):
                parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)


def _ours(key: str) -> bool:
    return "lora_" in key or key.startswith("fusion.")


class SPANVideo(VSRModel):
    """The engine-facing model: a window (T, 3, h, w) in, each frame fused with t±1."""

    name = NAME

    def __init__(self, net: SPANVideoNet) -> None:
        super().__init__()
        self.net = net
        self.scale = net.config.scale

    @property
    def description(self) -> ModelDescription:
        return ModelDescription(
            name=self.name,
            scale=self.scale,
            scales=SCALES,
            neighbourhood=(1, 1) if self.net.fusion is not None else (0, 0),
            tiling=Tiling(space="pixel", minimum=2 * OVERLAP + 16, overlap=OVERLAP),
            input=InputSize(minimum=1),
            dtypes=("float32", "bfloat16"),
            bytes_per_output_pixel=max(96, 4 * 48 * 12 * 4 // self.scale**2),
            licence=f"Apache-2.0 (our adapter); base: {LICENCE}",
        )

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        flows = window_flows(frames, frames.shape[0]).to(frames.dtype)
        out = tiled_apply(
            channels_last(self._whole), frames, tile, OVERLAP, out_scale=self.scale, extras=[(flows, 1)]
        )
        return out.clamp(0, 1)

    def _whole(self, frames: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
        prev = torch.cat((frames[:1], frames[:-1]))  # a window's first frame stands in for its own
        nxt = torch.cat((frames[1:], frames[-1:]))  # previous (zero flow there), the last likewise
        return self.net(prev, frames, nxt, flows)


def asset_paths(scale: int, assets: Path = ASSETS) -> tuple[Path, Path]:
    return assets / f"span_video_x{scale}.safetensors", assets / f"span_video_x{scale}.json"


def save_adapter(net: SPANVideoNet, path: Path, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(net.adapter_state(), str(tmp))
    tmp.replace(path)
    meta = {"model": NAME, "adapter": asdict(net.config), **(extra or {})}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_adapter(net_base: SPANNet, path: Path) -> SPANVideoNet:
    """Base + adapter file (and its JSON config) → SPANVideoNet, LoRA not yet merged."""
    from safetensors.torch import load_file

    from vsrup.errors import WeightsError

    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        config = AdapterConfig(**meta["adapter"])
        net = SPANVideoNet(net_base, config)
        missing, unexpected = net.load_state_dict(load_file(str(path)), strict=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"cannot load the span-video adapter {path}: {exc}") from exc
    if unexpected or [k for k in missing if _ours(k)]:
        raise WeightsError(f"{path} does not fit the SPAN base (missing {missing}, unexpected {unexpected})")
    return net


def load_span_video(
    scale: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    adapter: Path | None = None,
) -> SPANVideo:
    """The `span-video` model: the local SPAN base with our shipped adapter, LoRA merged."""
    from vsrup.errors import WeightsError
    from vsrup.models.span import load_span_net
    from vsrup.weights.span_wheel import require_base

    adapter = adapter or asset_paths(scale)[0]
    if not adapter.is_file():
        raise WeightsError(f"span-video has no ×{scale} adapter in this install ({adapter.name} is missing)")
    net = load_adapter(load_span_net(require_base(scale)), adapter)
    net.merge()
    return SPANVideo(net).to(device=device, dtype=dtype).to(memory_format=torch.channels_last)
