"""Optical flow between neighbouring LR frames (OpenCV DIS) and the bilinear warp that applies it.

The tiny model aligns its recurrent state with classical flow instead of a learned flow network:
DIS (Kroeger et al., 2016) costs a few milliseconds per 320×180 pair on one CPU core, needs no
training, and generalises to any motion size its pyramid covers. Flow is always computed on the CPU
in float32 from 8-bit luma, whatever device and dtype the model runs in.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# DIS preset: MEDIUM works at full LR resolution (finest scale 1); FAST/ULTRAFAST stop at 1/4, which
# at 180p leaves flow too coarse to align textures.
PRESET = "MEDIUM"
LUMA = (0.299, 0.587, 0.114)
# DIS refuses frames smaller than its patch pyramid needs (about 12 px); smaller frames are
# edge-padded up to this size for the flow, which is then cropped back.
MIN_FLOW_SIDE = 16


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


def _luma_u8(frames: torch.Tensor) -> np.ndarray:
    """(N, 3, h, w) RGB in [0, 1] → (N, h, w) uint8 luma, on the CPU."""
    weights = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    y = (frames.detach().float().cpu().clamp(0, 1) * weights).sum(1) * 255
    return y.round().to(torch.uint8).numpy()


def _dis():
    import cv2

    # One thread: the model's own threads already use the cores, and training pins to one.
    cv2.setNumThreads(1)
    return cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{PRESET}"))


def pair_flow(dis, cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Flow (h, w, 2) such that cur(x) ≈ ref(x + flow(x)): `warp(ref, flow)` aligns ref to cur."""
    h, w = cur.shape
    pad = ((0, max(0, MIN_FLOW_SIDE - h)), (0, max(0, MIN_FLOW_SIDE - w)))
    if pad[0][1] or pad[1][1]:
        cur, ref = np.pad(cur, pad, mode="edge"), np.pad(ref, pad, mode="edge")
    return dis.calc(cur, ref, None)[:h, :w]


def window_flows(frames: torch.Tensor, window: int) -> torch.Tensor:
    """Flows of every frame of (B·T, 3, h, w) RGB windows in [0, 1] to its neighbours.

    Returns (B·T, 4, h, w) float32 on the frames' device: channels 0–1 align the previous frame to
    this one, 2–3 the next frame. Window ends (no neighbour) get zero flow, never a flow across
    windows (the batch's windows are unrelated clips)."""
    n, _, h, w = frames.shape
    luma = _luma_u8(frames)
    out = np.zeros((n, 4, h, w), dtype=np.float32)
    if window > 1:
        dis = _dis()
        for i in range(n):
            if i % window:  # a previous frame exists in this window
                out[i, :2] = pair_flow(dis, luma[i], luma[i - 1]).transpose(2, 0, 1)
            if (i + 1) % window:
                out[i, 2:] = pair_flow(dis, luma[i], luma[i + 1]).transpose(2, 0, 1)
    return torch.from_numpy(out).to(frames.device)


def resize_flow(flow: torch.Tensor, stride: int) -> torch.Tensor:
    """Flow at LR resolution → flow on a latent grid `stride` times coarser (vectors shrink too)."""
    if stride == 1:
        return flow
    return F.avg_pool2d(flow, stride) / stride
