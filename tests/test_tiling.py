"""The one overlap-and-blend helper: ramps, tile placement, and seam-free tiled application."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vsrup.models.tiling import piece_starts, ramp, tiled_apply


def test_ramp_rises_and_falls_across_the_overlaps():
    w = ramp(10, 3, 2)
    assert torch.all(w > 0)
    assert torch.all(w[1:4] >= w[0:3])  # rising over the first 3
    assert torch.all(w[3:8] == 1)
    assert w[8] > w[9]


@pytest.mark.parametrize(
    ("size", "piece", "overlap"), [(100, 32, 8), (33, 32, 8), (64, 32, 0), (10, 32, 8), (97, 17, 5)]
)
def test_pieces_cover_everything_with_the_overlap(size, piece, overlap):
    starts = piece_starts(size, piece, overlap)
    covered = torch.zeros(size, dtype=torch.int32)
    for s in starts:
        covered[s : s + piece] += 1
    assert torch.all(covered >= 1)
    assert starts[-1] + min(piece, size) == size
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + piece - b >= overlap


def test_tiled_identity_is_exact():
    x = torch.rand(2, 3, 70, 53)
    assert torch.allclose(tiled_apply(lambda t: t, x, tile=24, overlap=8), x, atol=1e-6)


def test_tiled_resizing_functions_give_the_right_shape():
    latent = torch.rand(1, 4, 20, 28)
    up = tiled_apply(lambda t: t.repeat_interleave(8, -1).repeat_interleave(8, -2), latent, 8, 4, out_scale=8)
    assert up.shape == (1, 4, 160, 224)
    assert torch.allclose(up[..., ::8, ::8], latent, atol=1e-6)
    image = torch.rand(1, 3, 64, 96)
    down = tiled_apply(lambda t: t[..., ::8, ::8], image, 32, 16, out_scale=0.125)
    assert down.shape == (1, 3, 8, 12)


def test_extras_are_cut_at_the_matching_place():
    latent = torch.rand(1, 1, 16, 16)
    image = latent.repeat_interleave(8, -1).repeat_interleave(8, -2)

    def check(lat, img):
        assert torch.allclose(img[..., ::8, ::8], lat)
        return lat

    tiled_apply(check, latent, 8, 4, extras=[(image, 8)])


def test_tile_seams_stay_invisible_on_gradient_and_texture():
    """A small conv net run tiled vs whole on a smooth gradient plus texture: bounded difference."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GELU(), nn.Conv2d(16, 3, 3, padding=1))
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    texture = 0.1 * torch.sin(x * 60) * torch.cos(y * 45)
    image = torch.stack([x, y, (x + y) / 2]).unsqueeze(0) + texture
    with torch.no_grad():
        whole = net(image)
        tiled = tiled_apply(net, image, tile=40, overlap=12)
    diff = (whole - tiled).abs()
    # A receptive field of 2 px is far inside the 12 px overlap: only float noise remains.
    assert diff.max() < 1e-5
    # And with a field wider than the overlap, errors are bounded and spread, not a hard seam.
    deep = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(10)])
    with torch.no_grad():
        whole, tiled = deep(image), tiled_apply(deep, image, tile=40, overlap=12)
    assert (whole - tiled).abs().mean() < 0.01 * whole.abs().mean()
