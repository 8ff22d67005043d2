"""DLoRAL's cross-frame retrieval (CFR): SPyNet optical flow, flow warping, thresholded attention.

Written from the equations of the DLoRAL reference (github yjsunnn/DLoRAL,
src/cross_frame_retrieval/cfr_main.py and uncertainty_topk.py, MIT); module and parameter names
match its `CFR_model` so the checkpoint's `state_dict_bpp` loads by key. Per (previous, current)
pair, with both images already downsampled ÷8 to the latent size:

    flow      = SPyNet(current, previous)                  # current → previous, in pixels
    prev'     = warp(previous latent, flow)                # bilinear, zero padding
    Q, K, V   = Wq·current latent, Wk·prev', Wv·prev'      # 1×1 convs, 9 heads × 64 channels
    A         = relu((QKᵀ/√64 − fc(Q)) / 3000)             # learned per-query threshold, no softmax
    fused     = current latent + Wo·(A V)

The reference's uncertainty map never reaches the output and is left out; its other submodules
(feat_extract, weight_predict*, reconstruction_feat, conv_hr, conv_last) are built but unused
there, so their checkpoint keys are dropped on load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from vsrup.models.sd_build import load_weights

# Official CFR submodules that the reference builds and saves but never calls at inference.
UNUSED_PREFIXES = (
    "feat_extract.",
    "weight_predict.",
    "weight_predict_final.",
    "reconstruction_feat.",
    "conv_hr.",
    "conv_last.",
)


def flow_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Sample x (N, C, H, W) at pixel positions (x + flow_x, y + flow_y); flow is (N, 2, H, W) in
    pixels. Bilinear with align_corners=True, i.e. pixel i sits at −1 + 2i/(size−1), as mmagic's
    flow_warp that DLoRAL copies.

    Grid and sampling are float32 whatever `x`'s dtype: fp16 coordinates are off by most of a
    pixel at widths near 1000 (and `arange` is wrong from 2048). fp32 input is used as is."""
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=torch.float32),
        torch.arange(w, device=x.device, dtype=torch.float32),
        indexing="ij",
    )
    gx = 2.0 * (xs + flow[:, 0].float()) / max(w - 1, 1) - 1.0
    gy = 2.0 * (ys + flow[:, 1].float()) / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=3)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return out.to(x.dtype)


class _ConvAct(nn.Module):
    """mmcv ConvModule without norm: `.conv` then optional ReLU (key names `N.conv.weight`)."""

    def __init__(self, cin: int, cout: int, relu: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 7, 1, 3)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class _SPyNetLevel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        widths = [8, 32, 64, 32, 16, 2]
        self.basic_module = nn.Sequential(
            *[_ConvAct(a, b, relu=b != 2) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


class SPyNet(nn.Module):
    """Spatial-pyramid optical flow (Ranjan & Black 2017), BasicVSR variant: 6 levels, no BN."""

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList([_SPyNetLevel() for _ in range(6)])
        # ImageNet statistics; persistent so the official keys spynet.mean/std load too.
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _pyramid_flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        refs, supps = [(ref - self.mean) / self.std], [(supp - self.mean) / self.std]
        for _ in range(5):
            refs.append(F.avg_pool2d(refs[-1], 2, 2, count_include_pad=False))
            supps.append(F.avg_pool2d(supps[-1], 2, 2, count_include_pad=False))
        refs, supps = refs[::-1], supps[::-1]
        n, _, h, w = refs[0].shape
        flow = refs[0].new_zeros(n, 2, h, w)
        for level, module in enumerate(self.basic_module):
            if level > 0:  # coarse flow doubled in size and in value
                flow = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            warped = flow_warp(supps[level], flow, padding_mode="border")
            flow = flow + module(torch.cat([refs[level], warped, flow], 1))
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        """Flow (N, 2, H, W) from `ref` to `supp`: supp sampled at p + flow(p) matches ref at p."""
        h, w = ref.shape[-2:]
        h_up, w_up = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32  # 5 poolings need ÷32
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = F.interpolate(self._pyramid_flow(ref, supp), size=(h, w), mode="bilinear", align_corners=False)
        # Rescale by Python numbers, in place on this fresh tensor (interpolate's backward does not
        # need its output): a tensor of scales made on the host would be copied to the GPU on every
        # call, and that copy waits for the GPU's queue to drain.
        flow[:, 0] *= w / w_up
        flow[:, 1] *= h / h_up
        return flow


class CrossFrameAttention(nn.Module):
    """Thresholded ("absolute") cross-frame attention: rows are not normalised, a query with no key
    above its learned threshold retrieves nothing. Names follow `CrossFrameAbsoluteAttn`."""

    def __init__(
        self,
        channels: int = 4,
        embed_dim: int = 64,
        heads: int = 9,
        temperature: float = 3000.0,
        max_scores: int = 1 << 26,
    ) -> None:
        super().__init__()
        self.heads, self.embed_dim, self.temperature = heads, embed_dim, temperature
        self.max_scores = max_scores  # score elements held at once; bounds memory for big tiles
        self.query_conv = nn.Conv2d(channels, embed_dim * heads, 1)
        self.key_conv = nn.Conv2d(channels, embed_dim * heads, 1)
        self.value_conv = nn.Conv2d(channels, embed_dim * heads, 1)
        self.proj_out = nn.Conv2d(embed_dim * heads, channels, 1)
        self.threshold_fc = nn.Linear(embed_dim, 1)

    def forward(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        n, _, h, w = current.shape
        hw, heads, d = h * w, self.heads, self.embed_dim
        # (n, heads, hw, d); at least fp32: the scores are large before the /3000 and fp16 loses them.
        fp = torch.promote_types(current.dtype, torch.float32)
        q = self.query_conv(current).to(fp).view(n, heads, d, hw).transpose(2, 3)
        k = self.key_conv(previous).to(fp).view(n, heads, d, hw)
        v = self.value_conv(previous).to(fp).view(n, heads, d, hw).transpose(2, 3)
        thr = F.linear(q, self.threshold_fc.weight.to(fp), self.threshold_fc.bias.to(fp))  # (n, heads, hw, 1)
        out = torch.empty_like(q)
        # relu((q·k/√d − t)/T) = relu(q'·k − t') with q' = q/(√d·T), t' = t/T: one score buffer per
        # slice, updated in place (big fresh buffers are costly page faults on the host).
        q_scaled, thr_scaled = q / (math.sqrt(d) * self.temperature), thr / self.temperature
        # Rows are independent (no softmax), so queries go in slices to bound the hw × hw scores.
        rows = max(1, self.max_scores // max(1, n * heads * hw))
        for s in range(0, hw, rows):
            scores = torch.matmul(q_scaled[:, :, s : s + rows], k)
            scores.sub_(thr_scaled[:, :, s : s + rows]).relu_()
            out[:, :, s : s + rows] = torch.matmul(scores, v)
        out = out.transpose(2, 3).reshape(n, heads * d, h, w).to(current.dtype)
        return current + self.proj_out(out)


class CrossFrameRetrieval(nn.Module):
    """The parts of DLoRAL's `CFR_model` used at inference: `spynet` and `cross_attn_module`."""

    def __init__(self) -> None:
        super().__init__()
        self.spynet = SPyNet()
        self.cross_attn_module = CrossFrameAttention()

    def forward(
        self,
        prev_latent: torch.Tensor,
        cur_latent: torch.Tensor,
        prev_image: torch.Tensor,
        cur_image: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images are the pair's frames at latent resolution (÷8), in the [-1, 1] range the
        reference feeds SPyNet. Returns (previous latent warped onto current, fused current)."""
        flow = self.spynet(cur_image, prev_image)
        aligned = flow_warp(prev_latent, flow)
        return aligned, self.cross_attn_module(cur_latent, aligned)

    def load_official(self, state: Mapping[str, torch.Tensor], assign: bool = False) -> None:
        """Load a DLoRAL `state_dict_bpp`, dropping the submodules the reference never runs."""
        used = {k: v for k, v in state.items() if not k.startswith(UNUSED_PREFIXES)}
        load_weights(self, used, "DLoRAL state_dict_bpp (cross-frame retrieval)", assign=assign)
