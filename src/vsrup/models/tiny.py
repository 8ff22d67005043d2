"""vsrup's own small one-step latent VSR model: the embedded default that needs no download.

Same pipeline shape as the big latent-diffusion models, at a size that runs on a laptop CPU:

- encode: a compact conv encoder maps each LR frame to a latent at LR resolution (×4) or LR/2
  (×2, `latent_stride`). The latent carries the LR image itself in its first channels (losslessly,
  as space-to-depth when strided) beside `width` learned feature channels, so the decoder can add
  detail on top of a bicubic skip.
- temporal_fuse: for each frame, its two neighbours in the window are aligned to it by a small
  learned offset field (flow-free: predicted from the two latents, applied with a bilinear warp),
  gated, and fused into its latent. With `temporal=False` each frame is its own neighbour, which is
  exactly per-frame inference (used for the flicker comparison).
- denoise: one residual refinement step over the fused latent (no scheduler loop).
- decode: a conv to (scale·stride)² × 3 channels, pixel shuffle to the output size, added to the
  bicubic upsampling of the LR image channels.

Weights live in `vsrup/assets/tiny_x{scale}.safetensors` beside a JSON config (architecture sizes
and the training command, seed and time that produced them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsrup.errors import WeightsError
from vsrup.models.base import OneStepLatentVSR
from vsrup.pipeline.tiling import tiled_apply

ASSETS = Path(__file__).resolve().parent.parent / "assets"
IMAGE_CHANNELS = 3
PAD = 2  # LR pixels of replicate padding around each frame


@dataclass
class TinyConfig:
    scale: int = 4
    width: int = 32  # learned latent channels
    encoder_blocks: int = 1
    refiner_blocks: int = 4
    offset_width: int = 16  # hidden channels of the offset predictor
    max_offset: float = 4.0  # latent pixels; offsets are tanh-bounded so warps stay local
    # Latent resolution = LR / latent_stride. ×4 works at LR resolution; ×2 at LR/2, which keeps
    # its cost per output pixel the same as ×4's (the latent then holds the LR image losslessly
    # as 3·stride² space-to-depth channels).
    latent_stride: int = 1

    @classmethod
    def from_dict(cls, data: dict) -> TinyConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


def warp(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Sample `x` (N, C, h, w) at pixel positions shifted by `offset` (N, 2, h, w) as (dx, dy).

    The grid is built, and sampled, in float32 whatever `x`'s dtype: in fp16 the pixel coordinates
    and the normalised grid lose most of a pixel at widths near 1000 (and `arange` itself is wrong
    from 2048), so a half-precision model would warp to the wrong place. fp32 input is used as is.
    """
    n, _, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=torch.float32)
    xs = torch.arange(w, device=x.device, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    px = gx + offset[:, 0].float()
    py = gy + offset[:, 1].float()
    # grid_sample wants [-1, 1] coordinates (align_corners=True: -1 and 1 are the edge pixel centres)
    grid = torch.stack((2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1), dim=-1)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(x.dtype)


def neighbours(x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Previous and next frame of every frame of (B·T, C, h, w) windows of length t. A window's
    first and last frames use themselves for the missing neighbour (per-frame behaviour there)."""
    w = x.unflatten(0, (-1, t))
    prev = torch.cat((w[:, :1], w[:, :-1]), 1).flatten(0, 1)
    nxt = torch.cat((w[:, 1:], w[:, -1:]), 1).flatten(0, 1)
    return prev, nxt


class NeighbourAlign(nn.Module):
    """Aligns a neighbour's latent to the current one with a predicted offset field and a gate."""

    def __init__(self, ch: int, hidden: int, max_offset: float) -> None:
        super().__init__()
        self.max_offset = max_offset
        self.hidden = nn.Conv2d(2 * ch, hidden, 3, padding=1)
        self.offset = nn.Conv2d(hidden, 2, 3, padding=1)
        self.gate = nn.Conv2d(hidden, 1, 3, padding=1)
        # Start as the identity warp with an open gate: training only has to learn corrections.
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, cur: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.hidden(torch.cat((cur, nb), 1)), 0.1)
        offset = self.max_offset * torch.tanh(self.offset(h))
        return warp(nb, offset) * torch.sigmoid(self.gate(h))


class TinyVSR(OneStepLatentVSR):
    name = "tiny"
    temporal_context = 1

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.scale = config.scale
        self.stride = config.latent_stride
        self.image_channels = IMAGE_CHANNELS * self.stride**2
        self.temporal = True
        # Frames per window when a batch of windows is flattened into one (N, 3, h, w) tensor
        # (training); None means the whole tensor is one window (the engine's case).
        self.window_len: int | None = None
        ch = config.width
        self.encoder = nn.Sequential(
            nn.Conv2d(self.image_channels, ch, 3, padding=1),
            *[ResBlock(ch) for _ in range(config.encoder_blocks)],
        )
        self.align = NeighbourAlign(ch, config.offset_width, config.max_offset)
        self.fuse = nn.Conv2d(3 * ch, ch, 3, padding=1)
        self.refiner = nn.Sequential(*[ResBlock(ch) for _ in range(config.refiner_blocks)])
        # One latent pixel → a (scale·stride)² block of output pixels.
        self.to_pixels = nn.Conv2d(ch, IMAGE_CHANNELS * (config.scale * self.stride) ** 2, 3, padding=1)
        # The model starts as bicubic: the learned residual is zero until training moves it.
        nn.init.zeros_(self.to_pixels.weight)
        nn.init.zeros_(self.to_pixels.bias)

    # The template's steps, in order -------------------------------------------------------------

    def upscale(self, frames: torch.Tensor) -> torch.Tensor:
        """With `tiles.latent_tile` set (the engine's memory planner, the OOM fallback), the frame
        is done in overlapping spatial tiles, blended: memory then follows the tile, not the frame.
        The receptive field is about 20 LR pixels, so the default 16-pixel overlap, feathered, keeps
        seams below visibility (tested against the untiled result)."""
        tile, overlap = self.tiles.latent_tile * self.stride, self.tiles.latent_overlap * self.stride
        if tile <= 0:
            return self._upscale_whole(frames)
        # Tiles must start on the latent grid (a multiple of the stride), the last one included.
        h, w = frames.shape[-2:]
        padded = F.pad(frames, (0, -w % self.stride, 0, -h % self.stride), mode="replicate")
        out = tiled_apply(self._upscale_whole, padded, tile, overlap, out_scale=self.scale)
        return out[..., : h * self.scale, : w * self.scale]

    def _upscale_whole(self, frames: torch.Tensor) -> torch.Tensor:
        h, w = frames.shape[-2:]
        out = super().upscale(frames)
        p = PAD * self.scale
        return out[..., p : p + h * self.scale, p : p + w * self.scale]

    @property
    def latent_per_input(self) -> float:
        """Latent pixels per LR pixel along a side (the memory planner sizes tiles with it)."""
        return 1 / self.stride

    def upscale_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """Upscale a batch of windows (B, T, 3, h, w) at once, each window fused on its own."""
        b, t = windows.shape[:2]
        self.window_len = t
        try:
            out = self.upscale(windows.flatten(0, 1))
        finally:
            self.window_len = None
        return out.unflatten(0, (b, t))

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        # Any h, w works: replicate padding keeps zero-padded conv borders from darkening the edge
        # pixels and rounds the size up to a multiple of the latent stride. `upscale` crops it off.
        h, w = frames.shape[-2:]
        extra_h, extra_w = -(h + 2 * PAD) % self.stride, -(w + 2 * PAD) % self.stride
        return F.pad(frames * 2 - 1, (PAD, PAD + extra_w, PAD, PAD + extra_h), mode="replicate")

    def encode(self, cond: torch.Tensor) -> torch.Tensor:
        image = F.pixel_unshuffle(cond, self.stride)
        return torch.cat((image, self.encoder(image)), 1)

    def temporal_fuse(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        image, feats = latents[:, : self.image_channels], latents[:, self.image_channels :]
        t = self.window_len or feats.shape[0]
        if self.temporal and t > 1:
            prev, nxt = neighbours(feats, t)
            aligned_prev, aligned_next = self.align(feats, prev), self.align(feats, nxt)
        else:
            aligned_prev = aligned_next = self.align(feats, feats)
        fused = feats + self.fuse(torch.cat((feats, aligned_prev, aligned_next), 1))
        return torch.cat((image, fused), 1)

    def denoise(self, fused: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        image, feats = fused[:, : self.image_channels], fused[:, self.image_channels :]
        return torch.cat((image, feats + self.refiner(feats)), 1)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        image, feats = x0[:, : self.image_channels], x0[:, self.image_channels :]
        image = F.pixel_shuffle(image, self.stride)
        skip = F.interpolate(image, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return skip + F.pixel_shuffle(self.to_pixels(feats), self.scale * self.stride)

    def finish(self, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # Clamp in [0, 1] space; the crop to the unpadded size happens in `upscale`.
        return ((images + 1) / 2).clamp(0, 1).to(cond.dtype)


def asset_paths(scale: int, assets: Path = ASSETS) -> tuple[Path, Path]:
    return assets / f"tiny_x{scale}.safetensors", assets / f"tiny_x{scale}.json"


def save_tiny(model: TinyVSR, weights: Path, extra: dict | None = None) -> None:
    """Write weights (safetensors) and the JSON config beside them (same stem)."""
    from safetensors.torch import save_file

    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    meta = {"architecture": asdict(model.config), **(extra or {})}
    weights.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_tiny(
    weights: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> TinyVSR:
    """Build a TinyVSR from a safetensors file and its JSON config."""
    from safetensors.torch import load_file

    config_path = weights.with_suffix(".json")
    if not weights.is_file() or not config_path.is_file():
        raise WeightsError(f"tiny model weights not found: {weights} (and {config_path.name})")
    try:
        meta = json.loads(config_path.read_text())
        model = TinyVSR(TinyConfig.from_dict(meta["architecture"]))
        model.load_state_dict(load_file(str(weights)))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise WeightsError(f"cannot load tiny model from {weights}: {exc}") from exc
    return model.to(device=device, dtype=dtype)


def load_shipped(
    scale: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> TinyVSR:
    if scale not in (2, 4):
        from vsrup.errors import UsageError

        raise UsageError(f"the tiny model has ×2 and ×4 weights, not ×{scale}")
    weights_path = asset_paths(scale)[0]
    verify_shipped(weights_path)
    return load_tiny(weights_path, device, dtype)


def verify_shipped(path: Path) -> None:
    """Refuse shipped weights that differ from their weights.toml pin (a broken or edited install).
    Hashing 0.6 MB costs about a millisecond."""
    from vsrup import weights

    for spec in weights.get_entry("tiny").files:
        if spec.name == path.name and spec.pinned:
            weights.verify_file(path, spec.sha256, spec.size)
