"""OSEDiff-compatible one-step image SR applied frame by frame (SD2.1-base, LoRAs merged).

From the OSEDiff reference (github cswry/OSEDiff, osediff.py `OSEDiff_test.forward`, Apache-2.0):
the LoRA-tuned VAE encoder gives z, the UNet predicts noise ε at t = 999, and one DDPM step from
t = 999 with a single inference step is exactly the epsilon → x0 formula

    x0 = (z − √(1 − ᾱ₉₉₉) · ε) / √ᾱ₉₉₉

(ᾱ from SD2.1's scaled-linear schedule; the step's added variance is ~1e-10 and is left out).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vsrup.models.sd import SDLatentVSR
from vsrup.models.sd_build import SCALING_FACTOR, sd21_alphas_cumprod
from vsrup.models.tiling import tiled_apply


class OSEDiff(SDLatentVSR):
    name = "osediff"
    licence = "Apache-2.0 (OSEDiff); base weights CreativeML Open RAIL++-M"
    neighbourhood = (0, 0)  # a per-frame model: no neighbours needed
    timestep = 999

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        prompt_embeds: torch.Tensor,
        scale: int = 4,
        scaling_factor: float = SCALING_FACTOR,
        alpha_cumprod: float | None = None,
    ) -> None:
        super().__init__(unet, vae, prompt_embeds, scale, scaling_factor)
        self.alpha_cumprod = (
            float(sd21_alphas_cumprod()[self.timestep]) if alpha_cumprod is None else alpha_cumprod
        )

    def denoise(self, fused: torch.Tensor, latents: torch.Tensor, tile: int = 0) -> torch.Tensor:
        return tiled_apply(self._x0, fused, tile, self.tile_overlap)

    def _x0(self, z: torch.Tensor) -> torch.Tensor:
        a = self.alpha_cumprod
        out = []
        for i in range(0, z.shape[0], max(1, self.chunk)):
            zi = z[i : i + self.chunk]
            eps = self.run_unet(zi, self.timestep)
            out.append((zi - math.sqrt(1 - a) * eps) / math.sqrt(a))
        return torch.cat(out)

    @classmethod
    def assemble(cls, config, tensors, unet, vae, prompt, scale: int) -> OSEDiff:
        factor = config.get("scaling_factor", SCALING_FACTOR)
        return cls(unet, vae, prompt, scale, factor, config.get("alpha_cumprod"))
