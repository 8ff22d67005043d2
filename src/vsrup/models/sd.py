"""Stable Diffusion 2.1-base pieces shared by the one-step diffusion models (DLoRAL, OSEDiff).

Building the diffusers UNet/VAE from config dicts, reading and writing our converted weight bundles
(one safetensors file + config.json, memory-mapped, no pickles), VAE encode (posterior mean) and
decode with optional tiling, colour correction, and `SDLatentVSR`: the template steps both models
share (bicubic upsample → VAE encode → … → VAE decode → colour fix).
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsrup.errors import WeightsError
from vsrup.models.base import OneStepLatentVSR
from vsrup.tiling import tiled_apply

# The published stabilityai/stable-diffusion-2-1-base configs (unet/config.json, vae/config.json),
# minus bookkeeping keys. Kept here so conversion and the benchmark need no download for configs.
SD21_BASE_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "use_linear_projection": True,
}
SD21_BASE_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SCALING_FACTOR = 0.18215  # SD2.1 VAE latent scale (vae/config.json scaling_factor)
PROMPT_KEY = "prompt_embeds"  # (1, 77, cross_attention_dim) text embedding stored in every bundle
BUNDLE_WEIGHTS, BUNDLE_CONFIG = "model.safetensors", "config.json"
BUNDLE_FORMAT = "vsrup-bundle/1"


def sd21_alphas_cumprod(
    steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """ᾱ_t of SD2.1's DDPM "scaled_linear" schedule, computed as diffusers' DDPMScheduler does (fp32):
    β = linspace(√β₀, √β₁, 1000)², ᾱ = cumprod(1 − β)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


# ---------------------------------------------------------------------------------------------
# Building components and moving weights


def _clean(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def build_unet(config: Mapping[str, Any], empty: bool = False) -> nn.Module:
    """A diffusers UNet2DConditionModel from a config dict; `empty` builds it on the meta device
    (no memory, no random init) for `load_weights(..., assign=True)` to fill."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta") if empty else nullcontext():
        return UNet2DConditionModel.from_config(_clean(config))


def build_vae(config: Mapping[str, Any], empty: bool = False) -> nn.Module:
    """A diffusers AutoencoderKL from a config dict (see `build_unet` for `empty`)."""
    from diffusers import AutoencoderKL

    with torch.device("meta") if empty else nullcontext():
        return AutoencoderKL.from_config(_clean(config))


def load_weights(
    module: nn.Module, state: Mapping[str, torch.Tensor], what: str, assign: bool = False
) -> None:
    """Strict `load_state_dict` that names the first mismatching keys in a WeightsError (a wrong
    or truncated checkpoint is a user-fixable problem, not a traceback)."""
    missing, unexpected = module.load_state_dict(dict(state), strict=False, assign=assign)
    if missing or unexpected:
        raise WeightsError(
            f"{what}: checkpoint does not match the model "
            f"(missing {len(missing)} keys, e.g. {missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]})"
        )
    if assign:
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if tensor.is_meta:
                raise WeightsError(f"{what}: no weight for {name}")


def subdict(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix.` with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


# Old diffusers (< 0.15) saved the VAE's mid-block attention as query/key/value/proj_attn; the SD2.1
# mirrors still ship files saved that way. diffusers renames them when loading (its
# `_convert_deprecated_attention_blocks`); we do the same rename for plain state dicts.
_OLD_VAE_ATTENTION = {
    ".query.": ".to_q.",
    ".key.": ".to_k.",
    ".value.": ".to_v.",
    ".proj_attn.": ".to_out.0.",
}


def rename_deprecated_vae_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if ".attentions." in key:
            for old, new in _OLD_VAE_ATTENTION.items():
                key = key.replace(old, new)
            if value.ndim == 4 and value.shape[-2:] == (1, 1) and (".to_" in key):
                value = value[:, :, 0, 0]  # some exports store these Linear weights as 1×1 convs
        out[key] = value
    return out


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file (memory-mapped) or, only in conversion, a torch pickle loaded
    with weights_only=True (tensors, containers and numbers only; no code runs)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return load_pickle(path)


def load_pickle(path: Path) -> Any:
    """torch.load(weights_only=True); a file that needs arbitrary code is refused with a clear error."""
    last: Exception | None = None
    for mmap in (True, False):  # mmap keeps a 3.6 GB checkpoint out of RAM; it needs the zip format
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as exc:
            raise WeightsError(
                f"{path}: refused: it cannot be loaded with torch.load(weights_only=True), "
                f"which allows only tensors and plain containers ({exc})"
            ) from exc
        except (RuntimeError, OSError, EOFError) as exc:
            last = exc
    raise WeightsError(f"{path}: not a readable torch checkpoint ({last})")


def write_bundle(out_dir: Path, tensors: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> Path:
    """Write model.safetensors + config.json into `out_dir` (atomically: temp names, then rename)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_weights, tmp_config = out_dir / (BUNDLE_WEIGHTS + ".tmp"), out_dir / (BUNDLE_CONFIG + ".tmp")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(tmp_weights), metadata={"format": BUNDLE_FORMAT}
    )
    tmp_config.write_text(json.dumps({"format": BUNDLE_FORMAT, **config}, indent=2) + "\n")
    tmp_weights.replace(out_dir / BUNDLE_WEIGHTS)
    tmp_config.replace(out_dir / BUNDLE_CONFIG)  # config last: its presence marks a complete bundle
    return out_dir


def read_bundle(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, tensors) of a converted bundle directory; tensors are memory-mapped safetensors."""
    from safetensors.torch import load_file

    path = Path(path)
    config_path, weights_path = path / BUNDLE_CONFIG, path / BUNDLE_WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        raise WeightsError(
            f"{path} is not a converted vsrup bundle (needs {BUNDLE_CONFIG} and {BUNDLE_WEIGHTS})"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{config_path}: not valid JSON ({exc})") from exc
    if config.get("format") != BUNDLE_FORMAT:
        raise WeightsError(f"{config_path}: unknown bundle format {config.get('format')!r}")
    return config, load_file(str(weights_path))


# ---------------------------------------------------------------------------------------------
# VAE and colour


def _chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int) -> torch.Tensor:
    chunk = max(1, chunk)
    return torch.cat([fn(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])


def vae_encode_mean(
    vae: nn.Module, images: torch.Tensor, tile: int = 0, overlap: int = 64, chunk: int = 1
) -> torch.Tensor:
    """Posterior mean of the VAE for images in [-1, 1] (N, 3, H, W), H and W multiples of 8;
    `tile`/`overlap` in image pixels (multiples of 8), 0 = whole image. Not scaled."""

    def mean(x: torch.Tensor) -> torch.Tensor:
        moments = vae.encoder(x)
        if getattr(vae, "quant_conv", None) is not None:
            moments = vae.quant_conv(moments)
        return moments[:, : moments.shape[1] // 2]  # (mean, logvar) → mean: deterministic

    return _chunked(lambda x: tiled_apply(mean, x, tile, overlap, out_scale=Fraction(1, 8)), images, chunk)


def vae_decode(
    vae: nn.Module, latents: torch.Tensor, tile: int = 0, overlap: int = 8, chunk: int = 1
) -> torch.Tensor:
    """Decode unscaled latents (N, 4, h, w) to images (N, 3, 8h, 8w); `tile`/`overlap` in latent px."""

    def decode(z: torch.Tensor) -> torch.Tensor:
        if getattr(vae, "post_quant_conv", None) is not None:
            z = vae.post_quant_conv(z)
        return vae.decoder(z)

    return _chunked(lambda z: tiled_apply(decode, z, tile, overlap, out_scale=8), latents, chunk)


def _mean_std(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    return flat.mean(-1)[..., None, None], (flat.var(-1) + eps).sqrt()[..., None, None]


def adain_color_fix(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give each frame's channels the mean and std of the reference's (both (N, C, H, W)).
    As in the DLoRAL/OSEDiff `adaptive_instance_normalization`: unbiased variance + 1e-5."""
    mean, std = _mean_std(images.float())
    ref_mean, ref_std = _mean_std(reference.float())
    return ((images.float() - mean) / std * ref_std + ref_mean).to(images.dtype)


def _wavelet_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    # The 3×3 binomial kernel (1 2 1)ᵀ(1 2 1)/16, made on x's device: a kernel built from Python
    # numbers lives on the host, and copying it to the GPU on every call waits for the GPU's queue.
    taps = 2.0 - (torch.arange(3, device=x.device, dtype=x.dtype) - 1).abs()
    kernel = (taps[:, None] * taps[None, :] / 16)[None, None].repeat(x.shape[1], 1, 1, 1)
    x = F.pad(x, (radius,) * 4, mode="replicate")
    return F.conv2d(x, kernel, groups=x.shape[1], dilation=radius)


def _wavelet_split(x: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    high = torch.zeros_like(x)
    for i in range(levels):
        low = _wavelet_blur(x, 2**i)
        high = high + (x - low)
        x = low
    return high, x


def wavelet_color_fix(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """High frequencies of `images` + low frequencies of `reference` (5-level à-trous wavelet, as in
    the reference `wavelet_reconstruction`)."""
    high, _ = _wavelet_split(images.float())
    _, low = _wavelet_split(reference.float())
    return (high + low).to(images.dtype)


COLOR_FIXES = {"adain": adain_color_fix, "wavelet": wavelet_color_fix, "none": None}


# ---------------------------------------------------------------------------------------------
# The references' pre- and post-processing: PIL on 8-bit images
#
# DLoRAL (src/test_DLoRAL.py) and OSEDiff (test_osediff.py) prepare each frame with PIL: small
# frames are enlarged (BICUBIC, sizes floored by int()) until ×scale reaches the processing size,
# enlarged ×scale (BICUBIC), and squeezed to a multiple of 8 with LANCZOS; every resize rounds to
# 8 bit. PIL's bicubic is a = −0.5 and antialiases when shrinking; torch's is a = −0.75, no
# antialias: the models were trained on PIL's kind, so that is what they get.


def reference_sizes(width: int, height: int, scale: int, process_size: int) -> list[tuple[int, int]]:
    """The (width, height) after each of the references' resizes, in order: [enlarged to the
    processing size, if it is needed], ×scale, squeezed to a multiple of 8 (at least 8)."""
    sizes = []
    side = process_size // scale if process_size else 0
    if width < side or height < side:
        factor = side / min(width, height)  # the references' float arithmetic, floored by int()
        width, height = int(factor * width), int(factor * height)
        sizes.append((width, height))
    width, height = width * scale, height * scale
    sizes.append((width, height))
    sizes.append((max(8, width - width % 8), max(8, height - height % 8)))
    return sizes


def _to_planes(frame: torch.Tensor) -> list:
    """One frame (3, h, w) in [0, 1] as PIL images: one 8-bit RGB image when the values are
    multiples of 1/255 (8-bit video: exact), else three 32-bit float planes (no 8-bit rounding)."""
    from PIL import Image

    x = frame.detach().float().clamp(0, 1).mul(255).cpu()
    q = x.round()
    # fp16 frames hold k/255 only to ~0.06 of a level; a 10-bit frame is off by up to 0.4 level.
    tolerance = min(0.25, max(1e-3, 255 * torch.finfo(frame.dtype).eps))
    if (x - q).abs().max() <= tolerance:
        return [Image.fromarray(q.to(torch.uint8).permute(1, 2, 0).contiguous().numpy(), "RGB")]
    return [Image.fromarray(plane.numpy(), "F") for plane in x]


def _from_planes(planes: list) -> torch.Tensor:
    """(3, h, w) float32 in [0, 1] from `_to_planes` images, divided as torchvision's ToTensor."""
    import numpy as np

    if len(planes) == 1:
        return torch.from_numpy(np.asarray(planes[0]).copy()).permute(2, 0, 1).float().div(255)
    return torch.stack([torch.from_numpy(np.asarray(p).copy()) for p in planes]).div(255).clamp(0, 1)


def pil_resize(frames: torch.Tensor, sizes: list[tuple[int, int]], filters: list[str]) -> torch.Tensor:
    """Resize each frame (T, 3, h, w) in [0, 1] with PIL through `sizes` ((width, height) each, with
    its filter: "bicubic" or "lanczos"), rounding to 8 bit after each resize as the references do
    (frames that are not 8-bit are resized as float planes, unrounded). Returns float32 on the CPU."""
    from PIL import Image

    resample = {"bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
    out = []
    for frame in frames:
        planes = _to_planes(frame)
        for size, name in zip(sizes, filters, strict=True):
            planes = [p.resize(size, resample[name]) for p in planes]  # same size: PIL copies
        out.append(_from_planes(planes))
    return torch.stack(out)


def reference_enlarge(frames: torch.Tensor, scale: int, process_size: int) -> torch.Tensor:
    """The references' model input for frames (T, 3, h, w) in [0, 1]: float32 in [0, 1] on the CPU,
    (T, 3, H, W) with H, W multiples of 8 (see `reference_sizes`)."""
    height, width = frames.shape[-2:]
    sizes = reference_sizes(width, height, scale, process_size)
    return pil_resize(frames, sizes, ["bicubic"] * (len(sizes) - 1) + ["lanczos"])


def truncate_8bit(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] → multiples of 1/255, truncated as torchvision's ToPILImage does (`mul(255).byte()`)."""
    return images.float().mul(255).to(torch.uint8).float().div(255)


# ---------------------------------------------------------------------------------------------
# The shared template steps


class SDLatentVSR(OneStepLatentVSR):
    """SD2.1-base one-step SR: the steps DLoRAL and OSEDiff share; subclasses add denoise (and fuse).

    Switches: `chunk` (frames per UNet call), `vae_chunk` (frames per VAE call), `tiles.latent_tile`
    for the UNet (and the VAE, unless `vae_encode_tile` (image px) / `vae_decode_tile` (latent px)
    are set; 0 turns VAE tiling off),
    `color_fix` ("adain", "wavelet", "none"), `process_size` (inputs whose upscaled short side is
    smaller are first enlarged to it, as the reference does; 0 disables).

    Pre- and post-processing: `reference_preprocess` (default on) prepares frames as the references
    do, with PIL on 8-bit images (`reference_enlarge`); off, torch bicubic (a = −0.75) and
    replication padding to a multiple of 8, which stays on the device. `reference_postprocess`
    (default off) finishes as the references do: the decoded image truncated to 8 bit, colour-fixed,
    truncated again, and resized back to h·scale × w·scale with PIL on 8 bit. Off, the same steps in
    float (no truncation: it darkens by half a level on average and a 10-bit output would lose its
    extra bits), the resize back with PIL on float planes.
    """

    temporal_context = 1
    # Peak activation bytes per output pixel and frame for the engine's memory planner: measured
    # with benchmarks/dloral_fullsize.py (fp32, CPU, 2 frames 180p→720p, untiled): peak RSS 6.8 GiB
    # of which ~4 GiB are weights.
    bytes_per_output_pixel = 1536

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        prompt_embeds: torch.Tensor,
        scale: int = 4,
        scaling_factor: float = SCALING_FACTOR,
    ) -> None:
        super().__init__()
        self.unet, self.vae = unet, vae
        self.register_buffer(PROMPT_KEY, prompt_embeds.detach().clone(), persistent=True)
        self.scale = scale
        self.scaling_factor = scaling_factor
        self.chunk = 4
        self.vae_chunk = 1
        self.vae_encode_tile: int | None = None  # image px; None: follow tiles.latent_tile
        self.vae_decode_tile: int | None = None  # latent px; None: follow tiles.latent_tile
        self.color_fix = "adain"
        self.process_size = 512
        self.reference_preprocess = True
        self.reference_postprocess = False

    # -- memory-layout switch --------------------------------------------------------------
    def set_channels_last(self, enabled: bool = True) -> SDLatentVSR:
        """NHWC weights for the convolution-heavy UNet and VAE (faster with cuDNN in fp16)."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.unet.to(memory_format=fmt)
        self.vae.to(memory_format=fmt)
        return self

    # -- the template ----------------------------------------------------------------------
    def upscale(self, frames: torch.Tensor) -> torch.Tensor:
        """Prepare frames at the processing size (a multiple of 8), run the steps, and return
        exactly (h·scale, w·scale): resized back with PIL bicubic whenever the processing size
        differs. (DLoRAL's reference resizes back only what it enlarged, so a frame it merely
        squeezed to a multiple of 8 comes out a few pixels short; OSEDiff's never resizes back.)"""
        height, width = frames.shape[-2:]
        size = (height * self.scale, width * self.scale)
        if not self.reference_preprocess:
            return self._upscale_padded(frames)
        out = super().upscale(frames)
        if out.shape[-2:] == size:
            return out
        sizes, filters = [(size[1], size[0])], ["bicubic"]
        return pil_resize(out, sizes, filters).to(device=out.device, dtype=out.dtype)

    def _upscale_padded(self, frames: torch.Tensor) -> torch.Tensor:
        """torch bicubic enlargement, replication padding to a multiple of 8, crop, torch resize."""
        height, width = frames.shape[-2:]
        work = frames
        if self.process_size and min(height, width) * self.scale < self.process_size:
            factor = self.process_size / (min(height, width) * self.scale)
            size = (math.ceil(height * factor), math.ceil(width * factor))
            work = F.interpolate(frames, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        step = 8 // math.gcd(8, self.scale)  # LR multiple whose ×scale is a multiple of 8
        h, w = work.shape[-2:]
        pad_h, pad_w = (-h) % step, (-w) % step
        if pad_h or pad_w:
            work = F.pad(work, (0, pad_w, 0, pad_h), mode="replicate")
        out = super().upscale(work)[..., : h * self.scale, : w * self.scale]
        if (h, w) != (height, width):
            out = F.interpolate(
                out,
                size=(height * self.scale, width * self.scale),
                mode="bicubic",
                align_corners=False,
                antialias=True,
            ).clamp(0, 1)
        return out

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        if self.reference_preprocess:
            up = reference_enlarge(frames, self.scale, self.process_size)
            return (up * 2 - 1).to(device=frames.device, dtype=frames.dtype)
        up = F.interpolate(frames, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up.clamp(0, 1) * 2 - 1

    @property
    def latent_per_input(self) -> float:
        """Latent pixels per input pixel along each side (the engine's memory planner reads it)."""
        return self.scale / 8

    def _vae_tiles(self) -> tuple[int, int]:
        """The latent tiling (tile, overlap), which the VAE follows unless its own tile is set: one
        switch (and the engine's out-of-memory halving) then bounds the VAE's memory too."""
        return self.tiles.latent_tile, self.tiles.latent_overlap

    def encode(self, cond: torch.Tensor) -> torch.Tensor:
        tile, overlap = self._vae_tiles()
        tile = self.vae_encode_tile if self.vae_encode_tile is not None else tile * 8
        mean = vae_encode_mean(self.vae, cond, tile, overlap * 8, chunk=self.vae_chunk)
        return mean * self.scaling_factor

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        tile, overlap = self._vae_tiles()
        tile = self.vae_decode_tile if self.vae_decode_tile is not None else tile
        return vae_decode(self.vae, x0 / self.scaling_factor, tile, overlap, chunk=self.vae_chunk)

    def finish(self, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """[-1, 1] → [0, 1], colour fix against the model input (the references' `source`)."""
        fix = COLOR_FIXES[self.color_fix]
        if self.reference_postprocess:  # ToPILImage truncates; so does the colour fix's output
            images = truncate_8bit(images.float().clamp(-1, 1) * 0.5 + 0.5)
            if fix is not None:
                images = truncate_8bit(fix(images, (cond.float() + 1) / 2).clamp(0, 1))
            return images.to(cond.dtype)
        images = (images.clamp(-1, 1) + 1) / 2
        if fix is not None:
            images = fix(images, (cond + 1) / 2)
        return images.clamp(0, 1).to(cond.dtype)

    # -- helpers for subclasses ---------------------------------------------------------------
    def run_unet(self, sample: torch.Tensor, timestep: int) -> torch.Tensor:
        """One UNet evaluation of a batch at a constant timestep with the stored prompt."""
        prompt = self.prompt_embeds.to(sample.dtype).expand(sample.shape[0], -1, -1)
        t = torch.full((sample.shape[0],), timestep, device=sample.device, dtype=torch.long)
        return self.unet(sample, t, encoder_hidden_states=prompt, return_dict=False)[0]

    @classmethod
    def from_bundle(
        cls,
        path: Path,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        scale: int = 4,
    ) -> SDLatentVSR:
        """Load a converted bundle (see `vsrup.convert`), ready for inference."""
        config, tensors = read_bundle(path)
        if config.get("model") != cls.name:
            raise WeightsError(f"{path} holds a {config.get('model')!r} bundle, not {cls.name!r}")
        unet, vae, prompt = cls.components_from_bundle(config, tensors)
        model = cls.assemble(config, tensors, unet, vae, prompt, scale)
        model.timestep = int(config.get("timestep", cls.timestep))
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)

    @classmethod
    def assemble(cls, config, tensors, unet, vae, prompt, scale: int) -> SDLatentVSR:
        """Build the model from its bundle's filled components (each family adds its own parts)."""
        raise NotImplementedError

    @staticmethod
    def components_from_bundle(config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]):
        """(unet, vae, prompt_embeds) built empty and filled from bundle tensors (no random init)."""
        unet = build_unet(config["unet"], empty=True)
        load_weights(unet, subdict(tensors, "unet"), "bundle unet", assign=True)
        vae = build_vae(config["vae"], empty=True)
        load_weights(vae, subdict(tensors, "vae"), "bundle vae", assign=True)
        if PROMPT_KEY not in tensors:
            raise WeightsError(f"bundle has no {PROMPT_KEY}")
        return unet, vae, tensors[PROMPT_KEY]


def load_bundle(path: Path, scale: int, device: torch.device | str, dtype: torch.dtype) -> SDLatentVSR:
    """Load a converted DLoRAL or OSEDiff bundle directory, whichever its config.json names."""
    from vsrup.models.dloral import DLoRAL
    from vsrup.models.osediff import OSEDiff

    config_path = Path(path) / BUNDLE_CONFIG
    try:
        kind = json.loads(config_path.read_text()).get("model")
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a converted vsrup bundle ({exc})") from exc
    classes = {cls.name: cls for cls in (DLoRAL, OSEDiff)}
    if kind not in classes:
        raise WeightsError(f"{config_path}: unknown model {kind!r}; expected one of {', '.join(classes)}")
    return classes[kind].from_bundle(path, device, dtype, scale=scale)
