"""`SDLatentVSR`: the template steps the one-step Stable Diffusion 2.1 models (DLoRAL, OSEDiff)
share — the references' enlargement → VAE encode (posterior mean) → … → VAE decode (tiled where
asked) → colour fix. Components and bundles: `sd_build`; colour fixes: `color`; the references'
PIL resizes: `reference_resize`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsrup.errors import WeightsError
from vsrup.models.base import ModelDescription, OneStepLatentVSR, Tiling
from vsrup.models.color import COLOR_FIXES
from vsrup.models.reference_resize import pil_resize, reference_enlarge, truncate_8bit
from vsrup.models.sd_build import (
    PROMPT_KEY,
    SCALING_FACTOR,
    build_unet,
    build_vae,
    load_weights,
    read_bundle,
    subdict,
)
from vsrup.models.tiling import tiled_apply

SCALES = (2, 4)  # the references are ×4 models; ×2 runs them on a half-size enlargement
TILE_MINIMUM = 8  # latent pixels
TILE_OVERLAP = 16  # latent pixels each side of a tile (UNet, VAE decoder; 8× that for the encoder)
# Peak activation bytes per output pixel and frame for the engine's memory planner: measured
# with benchmarks/dloral_fullsize.py (fp32, CPU, 2 frames 180p→720p, untiled): peak RSS 6.8 GiB
# of which ~4 GiB are weights.
BYTES_PER_OUTPUT_PIXEL = 1536


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


# ---------------------------------------------------------------------------------------------
# The shared template steps


class SDLatentVSR(OneStepLatentVSR):
    """SD2.1-base one-step SR: the steps DLoRAL and OSEDiff share; subclasses add denoise (and fuse).

    Switches (model-internal, set at construction or by tests and benchmarks): `chunk` (frames per
    UNet call), `vae_chunk` (frames per VAE call), `vae_encode_tile` (image px) / `vae_decode_tile`
    (latent px) for the VAE (None: follow the latent `tile` of the `upscale` call; 0: off),
    `color_fix` ("adain", "wavelet", "none"), `process_size` (inputs whose upscaled short side is
    smaller are first enlarged to it, as the reference does; 0 disables).

    Pre- and post-processing: `reference_preprocess` (default on) prepares frames as the references
    do, with PIL on 8-bit images (`reference_enlarge`); off, torch bicubic (a = −0.75) and
    replication padding to a multiple of 8, which stays on the device. `reference_postprocess`
    (a construction option, default off) finishes as the references do: the decoded image truncated to 8 bit, colour-fixed,
    truncated again, and resized back to h·scale × w·scale with PIL on 8 bit. Off, the same steps in
    float (no truncation: it darkens by half a level on average and a 10-bit output would lose its
    extra bits), the resize back with PIL on float planes.
    """

    compile_targets = ("unet", "vae.encoder", "vae.decoder", "cfr")
    # Each family's facts for its description.
    name: str = "sd"
    neighbourhood: tuple[int, int] = (0, 0)
    licence: str = "unknown"

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
        self.tile_overlap = TILE_OVERLAP  # latent px each side; declared in the description
        self.vae_chunk = 1
        self.vae_encode_tile: int | None = None  # image px; None: follow the call's latent tile
        self.vae_decode_tile: int | None = None  # latent px; None: follow the call's latent tile
        self.color_fix = "adain"
        self.process_size = 512
        self.reference_preprocess = True
        self.reference_postprocess = False

    @property
    def description(self) -> ModelDescription:
        return ModelDescription(
            name=self.name,
            scale=self.scale,
            scales=SCALES,
            neighbourhood=self.neighbourhood,
            tiling=Tiling("latent", TILE_MINIMUM, self.tile_overlap, per_input=self.scale / 8),
            dtypes=("float32", "float16", "bfloat16"),
            bytes_per_output_pixel=BYTES_PER_OUTPUT_PIXEL,
            licence=self.licence,
            prompt=True,
            reference_postprocess=True,
        )

    # -- memory-layout switch --------------------------------------------------------------
    def set_channels_last(self, enabled: bool = True) -> SDLatentVSR:
        """NHWC weights for the convolution-heavy UNet and VAE (faster with cuDNN in fp16)."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.unet.to(memory_format=fmt)
        self.vae.to(memory_format=fmt)
        return self

    # -- the template ----------------------------------------------------------------------
    def upscale(self, frames: torch.Tensor, tile: int = 0) -> torch.Tensor:
        """Prepare frames at the processing size (a multiple of 8), run the steps, and return
        exactly (h·scale, w·scale): resized back with PIL bicubic whenever the processing size
        differs. (DLoRAL's reference resizes back only what it enlarged, so a frame it merely
        squeezed to a multiple of 8 comes out a few pixels short; OSEDiff's never resizes back.)"""
        height, width = frames.shape[-2:]
        size = (height * self.scale, width * self.scale)
        if not self.reference_preprocess:
            return self._upscale_padded(frames, tile)
        out = super().upscale(frames, tile)
        if out.shape[-2:] == size:
            return out
        sizes, filters = [(size[1], size[0])], ["bicubic"]
        return pil_resize(out, sizes, filters).to(device=out.device, dtype=out.dtype)

    def _upscale_padded(self, frames: torch.Tensor, tile: int) -> torch.Tensor:
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
        out = super().upscale(work, tile)[..., : h * self.scale, : w * self.scale]
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

    # The VAE follows the call's latent tile unless its own tile is set: one tile (and the
    # engine's out-of-memory halving) then bounds the VAE's memory too.
    def encode(self, cond: torch.Tensor, tile: int = 0) -> torch.Tensor:
        tile = self.vae_encode_tile if self.vae_encode_tile is not None else tile * 8
        mean = vae_encode_mean(self.vae, cond, tile, self.tile_overlap * 8, chunk=self.vae_chunk)
        return mean * self.scaling_factor

    def decode(self, x0: torch.Tensor, tile: int = 0) -> torch.Tensor:
        tile = self.vae_decode_tile if self.vae_decode_tile is not None else tile
        return vae_decode(self.vae, x0 / self.scaling_factor, tile, self.tile_overlap, chunk=self.vae_chunk)

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
        prompt: str = "",
        reference_postprocess: bool = False,
    ) -> SDLatentVSR:
        """Load a converted bundle (see `vsrup.models.convert`), ready for inference, cast to
        `dtype` whatever the bundle's; a `prompt` other than the one converted with is encoded (and
        cached) by `vsrup.weights.prompt`; an empty one means the converted one.
        `reference_postprocess`: finish as the references do (see the class docstring)."""
        config, tensors = read_bundle(path)
        if config.get("model") != cls.name:
            raise WeightsError(f"{path} holds a {config.get('model')!r} bundle, not {cls.name!r}")
        unet, vae, embeds = cls.components_from_bundle(config, tensors)
        if prompt and prompt != config.get("prompt", ""):  # empty: the prompt converted with
            from vsrup.weights.prompt import prompt_embeds

            embeds = prompt_embeds(config, prompt)
            if embeds.shape[-1] != unet.config.cross_attention_dim:
                raise WeightsError(
                    f"the prompt embedding is {embeds.shape[-1]} wide; the UNet expects"
                    f" {unet.config.cross_attention_dim}: the recorded text encoder does not fit this bundle"
                )
        model = cls.assemble(config, tensors, unet, vae, embeds, scale)
        model.timestep = int(config.get("timestep", cls.timestep))
        model.process_size = int(config.get("process_size", model.process_size))  # 0 in test bundles
        model.reference_postprocess = reference_postprocess
        if torch.device(device).type == "cpu" or dtype == torch.float32:
            # One frame per UNet call: a batched call rounds differently with the batch's size, so
            # only then is a frame the same bit for bit whatever window it sits in (the CPU gains
            # nothing from batching these convolutions; half precision on a GPU keeps batches).
            model.chunk = 1
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
