"""DLoRAL-compatible one-step video SR: SD2.1-base UNet (8-channel input, LoRAs merged) + CFR.

Per frame t of a window, with its predecessor t−1 (frame 0 pairs with itself: exact only at the
start of a video, see `neighbourhood`), following the DLoRAL
reference (github yjsunnn/DLoRAL, src/DLoRAL_model.py `Generator_eval.forward`, MIT):

    z_t       = VAE.encode(bicubic×4(frame) in [−1, 1]).mean · 0.18215
    prev', z̃  = CFR(z_{t−1}, z_t, images ÷8)                  # warp + cross-frame attention
    x0        = z̃ − UNet([prev' ‖ z̃], t = 1, prompt)           # no scheduler step
    frame     = colour_fix(VAE.decode(x0 / 0.18215))

All pairs of a window go through the UNet together (`chunk` at a time). With latent tiling on,
each tile runs CFR + UNet on the same window of latents *and* ÷8 images (the reference cuts the
images wrongly).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsrup.models.cfr import CrossFrameRetrieval
from vsrup.models.sd import SDLatentVSR
from vsrup.models.sd_build import SCALING_FACTOR, subdict
from vsrup.models.tiling import tiled_apply


class DLoRAL(SDLatentVSR):
    name = "dloral"
    licence = "MIT (DLoRAL); base weights CreativeML Open RAIL++-M"
    timestep = 1  # the reference's constant `self.timesteps = [1]`
    # Output t is made from frames t-1 and t, as in the reference; a window's first frame pairs
    # with itself, which is right only at the start of the video (or of a shot).
    neighbourhood = (1, 0)

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        cfr: CrossFrameRetrieval,
        prompt_embeds: torch.Tensor,
        scale: int = 4,
        scaling_factor: float = SCALING_FACTOR,
    ) -> None:
        super().__init__(unet, vae, prompt_embeds, scale, scaling_factor)
        self.cfr = cfr

    def temporal_fuse(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Stack each frame with its predecessor: (T, 14, h, w) = [z_{t−1} ‖ z_t ‖ img_{t−1} ‖ img_t],
        images bicubic ÷8 (no antialias, as the reference) so they share the latents' grid. The
        retrieval itself runs in `denoise`, tile by tile, so fusion and denoising see one window."""
        images = F.interpolate(cond, scale_factor=0.125, mode="bicubic", align_corners=False)
        prev = torch.cat([latents[:1], latents[:-1]])
        prev_images = torch.cat([images[:1], images[:-1]])
        return torch.cat([prev, latents, prev_images, images], dim=1)

    def denoise(self, fused: torch.Tensor, latents: torch.Tensor, tile: int = 0) -> torch.Tensor:
        channels = latents.shape[1]
        pairs, images = fused[:, : 2 * channels], fused[:, 2 * channels :]
        return tiled_apply(self._pair_x0, pairs, tile, self.tile_overlap, extras=[(images, 1)])

    def _pair_x0(self, pairs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """x0 of the current frame of each (previous, current) pair, `chunk` pairs per UNet call."""
        c = pairs.shape[1] // 2
        out = []
        for i in range(0, pairs.shape[0], max(1, self.chunk)):
            p, im = pairs[i : i + self.chunk], images[i : i + self.chunk]
            aligned, fused = self.cfr(p[:, :c], p[:, c:], im[:, :3], im[:, 3:])
            out.append(fused - self.run_unet(torch.cat([aligned, fused], dim=1), self.timestep))
        return torch.cat(out)

    @classmethod
    def assemble(cls, config, tensors, unet, vae, prompt, scale: int) -> DLoRAL:
        with torch.device("meta"):
            cfr = CrossFrameRetrieval()
        cfr.load_official(subdict(tensors, "cfr"), assign=True)
        return cls(unet, vae, cfr, prompt, scale, config.get("scaling_factor", SCALING_FACTOR))
