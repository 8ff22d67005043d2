"""Overlap-and-blend, in time (frame windows) and in space (tiles).

Long inputs are cut into overlapping pieces; each piece's output is multiplied by a weight that
ramps up across the overlap it shares with the previous piece and down across the next one, summed
into the result, and divided by the summed weights at the end. The ramps make neighbouring pieces
fade into each other instead of switching, so no seam or temporal jump can appear. The same 1-D
ramp serves the temporal windows (`windows.py`) and, as an outer product, the 2-D tiles here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

import torch


def ramp(
    length: int, fade_in: int, fade_out: int, edge: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """Weights for one piece of `length` items: rising over the first `fade_in`, falling over the
    last `fade_out`, 1 in between. The outermost `edge` items of each fade get zero weight: a tile's
    border pixels saw zero padding instead of image, so the neighbouring tile alone decides there.
    Otherwise weights stay > 0, so a lone piece still normalises cleanly. Built on `device` (float32)
    so that a GPU caller needs no host-to-device copy, which would stall until the GPU's queue drains."""
    w = torch.ones(length, dtype=torch.float32, device=device)
    for fade, flip in ((fade_in, False), (fade_out, True)):
        n = min(fade, length)
        if n <= 0:
            continue
        skip = min(edge, fade - 1)
        rise = ((torch.arange(n, device=device) + 1.0 - skip) / (fade + 1.0 - skip)).clamp(min=0)
        part = w.flip(0)[:n] if flip else w[:n]
        part.copy_(torch.minimum(part, rise))
        if flip:
            w[length - n :] = part.flip(0)
    return w


def piece_starts(size: int, piece: int, overlap: int) -> list[int]:
    """Start offsets of pieces of length `piece` covering [0, size) with at least `overlap` shared.
    The last piece is pulled back to end exactly at `size` (never padded)."""
    if piece <= 0 or piece >= size:
        return [0]
    if not 0 <= overlap < piece:
        raise ValueError(f"overlap {overlap} must be in [0, {piece})")
    stride = piece - overlap
    starts = list(range(0, size - piece, stride))
    starts.append(size - piece)
    return starts


def _scaled(value: int, factor: Fraction, what: str) -> int:
    scaled = value * factor
    if scaled.denominator != 1:
        raise ValueError(f"{what} {value} is not divisible by the scale {factor}")
    return int(scaled)


def tiled_apply(
    fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    out_scale: Fraction | int | float = 1,
    extras: Sequence[tuple[torch.Tensor, int]] = (),
) -> torch.Tensor:
    """Apply `fn` to overlapping spatial tiles of `x` (N, C, H, W) and blend the results.

    `fn(x_tile, *extra_tiles)` must return (N, C', h * out_scale, w * out_scale). `extras` are
    tensors aligned with `x` at an integer `factor` of its resolution (e.g. the image beside its
    latent); the matching window of each is cut and passed along. `tile <= 0` or a tile larger than
    the input runs `fn` once on the whole input.
    """
    out_scale = Fraction(out_scale).limit_denominator(64)
    height, width = x.shape[-2:]
    if tile <= 0 or (tile >= height and tile >= width):
        return fn(x, *(e for e, _ in extras))
    ys, xs = piece_starts(height, tile, overlap), piece_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    out = weight_sum = None
    out_dtype = x.dtype
    for y in ys:
        for x0 in xs:
            crops = [e[..., y * f : (y + th) * f, x0 * f : (x0 + tw) * f] for e, f in extras]
            result = fn(x[..., y : y + th, x0 : x0 + tw], *crops)
            oy, ox = _scaled(y, out_scale, "tile offset"), _scaled(x0, out_scale, "tile offset")
            oh, ow = result.shape[-2:]
            if out is None:
                out_dtype = result.dtype
                full = (_scaled(height, out_scale, "height"), _scaled(width, out_scale, "width"))
                out = result.new_zeros(*result.shape[:-2], *full, dtype=torch.float32)
                weight_sum = torch.zeros(full, dtype=torch.float32, device=result.device)
            fade = _scaled(overlap, out_scale, "overlap")
            edge = fade // 4
            dev = result.device  # weights made there: a per-tile host copy would stall the GPU
            wy = ramp(oh, fade if y > 0 else 0, fade if y + th < height else 0, edge, dev)
            wx = ramp(ow, fade if x0 > 0 else 0, fade if x0 + tw < width else 0, edge, dev)
            w = wy[:, None] * wx[None, :]
            out[..., oy : oy + oh, ox : ox + ow] += result.float() * w
            weight_sum[oy : oy + oh, ox : ox + ow] += w
    return (out / weight_sum).to(out_dtype)
