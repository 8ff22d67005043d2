"""vsrup's own small one-step latent VSR model: the embedded default that needs no download.

Same pipeline shape as the big latent-diffusion models, at a size that runs on a laptop CPU:

- encode: a compact conv encoder maps each LR frame to a latent at LR resolution (×4) or LR/2
  (×2, `latent_stride`). The latent carries the LR image itself in its first channels (losslessly,
  as space-to-depth when strided) beside `width` learned feature channels, so the decoder can add
  detail on top of a bicubic skip. With `aligned_inputs` (v3) the encoder also sees the previous
  and next frames, warped onto the frame by the flow below, as differences from it.
- temporal_fuse: BasicVSR-style bidirectional recurrent propagation over the whole window
  (`tiny_temporal.FlowPropagation`): hidden states are warped from frame to frame by OpenCV DIS
  optical flow between the LR frames (`flow.py`), computed inside the model on the CPU, so
  inference needs nothing but the frames. With `temporal=False` every frame is its own window of
  one, which is exactly per-frame inference with the same weights.
- denoise: one residual refinement step over the fused latent (no scheduler loop).
- decode: a conv to (scale·stride)² × 3 channels, pixel shuffle to the output size, added to the
  bicubic upsampling of the LR image channels.

The model does not detect scene cuts: the engine splits the stream into shots, and a window's
first frame never looks across a window boundary. Weights live in
`vsrup/assets/tiny_x{scale}.safetensors` beside a JSON config (architecture sizes and the
training command, seed and time that produced them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsrup.errors import WeightsError
from vsrup.models.base import ModelDescription, OneStepLatentVSR, Tiling
from vsrup.models.flow import resize_flow, warp, window_flows
from vsrup.models.tiling import tiled_apply
from vsrup.models.tiny_temporal import FlowPropagation, NeighbourAlign, ResBlock, neighbours, offset_fuse

__all__ = ["TinyConfig", "TinyVSR", "load_tiny", "save_tiny", "warp"]

ASSETS = Path(__file__).resolve().parent.parent / "assets"
IMAGE_CHANNELS = 3
PAD = 2  # LR pixels of replicate padding around each frame
ALIGN_MODES = ("flow", "offset", "none")
TILE_OVERLAP = 20  # latent pixels each side of a spatial tile (see `upscale`)
TILE_MINIMUM = 8  # latent pixels
SCALES = (2, 4)  # the shipped weights' scales
LICENCE = "Apache-2.0"
# Measured peak (fp32, CPU, window of 8 at 180p→720p): activation bytes per output pixel and frame.
BYTES_PER_OUTPUT_PIXEL = 160


@dataclass
class TinyConfig:
    scale: int = 4
    width: int = 32  # learned latent channels
    encoder_blocks: int = 1
    refiner_blocks: int = 4
    # Temporal module: "flow" (recurrent propagation warped by DIS flow), "offset" (the previous
    # model's learned ±1-frame offsets; ablation) or "none" (a per-frame model; ablation).
    align: str = "flow"
    prop_blocks: int = 1  # residual blocks in each propagation branch
    offset_width: int = 16  # hidden channels of the offset predictor ("offset" only)
    max_offset: float = 4.0  # latent pixels ("offset" only)
    # Latent resolution = LR / latent_stride. ×4 works at LR resolution; ×2 at LR/2, which keeps
    # its cost per output pixel the same as ×4's (the latent then holds the LR image losslessly
    # as 3·stride² space-to-depth channels).
    latent_stride: int = 1
    # Early fusion ("flow" only): the encoder also sees the previous and next LR frames, warped
    # onto this one by the same DIS flow, as differences from the frame. Raw aligned pixels carry
    # the sub-pixel samples a neighbour adds directly. Differences, not the warped frames: those
    # are nearly copies of the frame, so their gradient is mostly the frame's own, noise around a
    # trained optimum, and Adam barely moved them (a trial: mean |w| 0.003 after 1300 steps);
    # the difference channels carry only what is new. Off in weights saved before it (v2).
    aligned_inputs: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> TinyConfig:
        known = {f.name for f in fields(cls)}
        # Configs written before the flow module have no "align": they are offset models.
        return cls(**({"align": "offset"} | {k: v for k, v in data.items() if k in known}))


class TinyVSR(OneStepLatentVSR):
    compile_targets = ("encoder", "refiner")

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        if config.align not in ALIGN_MODES:
            raise ValueError(f"align must be one of {ALIGN_MODES}, not {config.align!r}")
        self.config = config
        self.scale = config.scale
        self.stride = config.latent_stride
        self.image_channels = IMAGE_CHANNELS * self.stride**2
        self.temporal = True
        # Frames per window when a batch of windows is flattened into one (N, 3, h, w) tensor
        # (training); None means the whole tensor is one window (the engine's case).
        self.window_len: int | None = None
        # The current piece's flows, padded like its frames; set by _upscale_whole.
        self._flows: torch.Tensor | None = None
        if config.aligned_inputs and config.align != "flow":
            raise ValueError("aligned_inputs needs align='flow' (it reuses the flow)")
        ch = config.width
        inputs = self.image_channels * (3 if config.aligned_inputs else 1)
        self.encoder = nn.Sequential(
            nn.Conv2d(inputs, ch, 3, padding=1),
            *[ResBlock(ch) for _ in range(config.encoder_blocks)],
        )
        if config.align == "flow":
            self.propagate = FlowPropagation(ch, config.prop_blocks)
        elif config.align == "offset":
            self.align = NeighbourAlign(ch, config.offset_width, config.max_offset)
        if config.align != "none":
            # (features, two temporal inputs) → residual. Same name and shape in both modules, so
            # a flow model can warm-start from an offset model (its propagation starts per-frame).
            self.fuse = nn.Conv2d(3 * ch, ch, 3, padding=1)
        self.refiner = nn.Sequential(*[ResBlock(ch) for _ in range(config.refiner_blocks)])
        # One latent pixel → a (scale·stride)² block of output pixels.
        self.to_pixels = nn.Conv2d(ch, IMAGE_CHANNELS * (config.scale * self.stride) ** 2, 3, padding=1)
        # The model starts as bicubic: the learned residual is zero until training moves it.
        nn.init.zeros_(self.to_pixels.weight)
        nn.init.zeros_(self.to_pixels.bias)

    @property
    def description(self) -> ModelDescription:
        """The recurrence makes every output depend on the whole window (neighbourhood None).
        Context: frames wanted on each side; the engine overlaps windows by twice this. The
        recurrence already reaches every frame of the (8-frame) window, so one frame each side
        is enough to give window-edge frames a neighbour; more would multiply the work (context 2
        halves the new frames per 8-frame window), for frames that alignment errors make worth
        less the farther they are. Tiles are latent pixels (LR / latent_stride)."""
        return ModelDescription(
            name="tiny",
            scale=self.scale,
            scales=SCALES,
            neighbourhood=None,
            context=1 if self.temporal and self.config.align != "none" else 0,
            tiling=Tiling("latent", TILE_MINIMUM, TILE_OVERLAP, per_input=1 / self.stride),
            dtypes=("float32", "float16", "bfloat16"),
            bytes_per_output_pixel=BYTES_PER_OUTPUT_PIXEL,
            licence=LICENCE,
        )

    # The template's steps, in order -------------------------------------------------------------

    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        """Flow is estimated once on the whole frames, then (with a latent `tile`, from the
        engine's memory planner or the OOM fallback) the frame is done in overlapping spatial
        tiles, blended, each tile getting its crop of the flow: memory follows the tile, not the
        frame. Tiles overlap by TILE_OVERLAP latent pixels, feathered: with v3's six refiner
        blocks, 16 left seams of up to 1.4 levels at ×4; 20 keeps them under one 8-bit level
        (tested against the untiled result)."""
        t = self.window_len or frames.shape[0]
        flows = None
        if self._uses_flow(t):
            # Kept in float32 whatever the model's dtype: fp16 flow loses 1/16 px beyond 64 px.
            flows = window_flows(frames, t)
        tile, overlap = tile * self.stride, TILE_OVERLAP * self.stride
        if tile <= 0:
            return self._upscale_whole(frames, flows)
        # Tiles must start on the latent grid (a multiple of the stride), the last one included.
        h, w = frames.shape[-2:]
        pad = (0, -w % self.stride, 0, -h % self.stride)
        padded = F.pad(frames, pad, mode="replicate")
        extras = [(F.pad(flows, pad, mode="replicate"), 1)] if flows is not None else []
        out = tiled_apply(self._upscale_whole, padded, tile, overlap, out_scale=self.scale, extras=extras)
        return out[..., : h * self.scale, : w * self.scale]

    def _uses_flow(self, t: int) -> bool:
        return self.config.align == "flow" and self.temporal and t > 1

    def _upscale_whole(self, frames: torch.Tensor, flows: torch.Tensor | None = None) -> torch.Tensor:
        h, w = frames.shape[-2:]
        self._flows = self._pad_flows(flows) if flows is not None else None
        try:
            out = super().upscale(frames)
        finally:
            self._flows = None
        p = PAD * self.scale
        return out[..., p : p + h * self.scale, p : p + w * self.scale]

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
        return F.pad(frames * 2 - 1, self._padding(frames), mode="replicate")

    def _padding(self, frames: torch.Tensor) -> tuple[int, int, int, int]:
        h, w = frames.shape[-2:]
        extra_h, extra_w = -(h + 2 * PAD) % self.stride, -(w + 2 * PAD) % self.stride
        return (PAD, PAD + extra_w, PAD, PAD + extra_h)

    def encode(self, cond: torch.Tensor, tile: int = 0) -> torch.Tensor:
        image = F.pixel_unshuffle(cond, self.stride)
        inputs = image
        if self.config.aligned_inputs:
            aligned = [F.pixel_unshuffle(x - cond, self.stride) for x in self._aligned_neighbours(cond)]
            inputs = torch.cat((image, *aligned), 1)
        return torch.cat((image, self.encoder(inputs)), 1)

    def _window(self, n: int) -> int:
        """Frames per window of the (B·T, …) tensor being processed; 1 for per-frame inference."""
        return (self.window_len or n) if self.temporal else 1

    def _pad_flows(self, flows: torch.Tensor) -> torch.Tensor:
        """Flows estimated on the unpadded frames, padded the way `prepare` pads the frames."""
        return F.pad(flows, self._padding(flows), mode="replicate")

    def _padded_flows(self) -> torch.Tensor | None:
        """The current piece's padded flows, or None when there is no neighbour to align."""
        flows = self._flows
        if flows is None or self._window(flows.shape[0]) < 2:
            return None
        return flows

    def _aligned_neighbours(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Previous and next padded frame warped onto each frame. A window's end frames (zero
        flow there) and per-frame inference use the frame itself, as at a missing neighbour."""
        flows = self._padded_flows()
        if flows is None:
            return cond, cond
        prev, nxt = neighbours(cond, self._window(cond.shape[0]))
        return warp(prev, flows[:, :2]), warp(nxt, flows[:, 2:])

    def temporal_fuse(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        image, feats = latents[:, : self.image_channels], latents[:, self.image_channels :]
        t = self._window(feats.shape[0])
        if self.config.align == "flow":
            flows = self._padded_flows()
            flows = resize_flow(flows, self.stride) if flows is not None else None
            backward, forward = self.propagate(feats, t, flows)
            fused = feats + self.fuse(torch.cat((feats, backward, forward), 1))
        elif self.config.align == "offset":
            fused = offset_fuse(self.align, self.fuse, feats, t)
        else:
            fused = feats
        return torch.cat((image, fused), 1)

    def denoise(self, fused: torch.Tensor, latents: torch.Tensor, tile: int = 0) -> torch.Tensor:
        image, feats = fused[:, : self.image_channels], fused[:, self.image_channels :]
        return torch.cat((image, feats + self.refiner(feats)), 1)

    def decode(self, x0: torch.Tensor, tile: int = 0) -> torch.Tensor:
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
    if scale not in SCALES:
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
