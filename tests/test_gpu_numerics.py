"""GPU concerns proved on the CPU: warps sample where they should in fp16 and stay bit-identical in
fp32, and per-call helpers make no tensor on the host (on CUDA, copying one to the GPU makes the
host wait for the GPU's queue to drain)."""

from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vsrup.models.cfr import SPyNet, flow_warp
from vsrup.models.color import _wavelet_blur, wavelet_color_fix
from vsrup.models.tiling import tiled_apply
from vsrup.models.tiny import warp


def grid_in_input_dtype(x: torch.Tensor, offset: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """The warp as it was written before: coordinates and grid in x's own dtype."""
    _, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype)
    xs = torch.arange(w, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    px, py = gx + offset[:, 0].to(x.dtype), gy + offset[:, 1].to(x.dtype)
    grid = torch.stack((2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


WARPS = [(warp, "border"), (flow_warp, "zeros")]


def smooth_offsets(h: int, w: int, pixels: float, seed: int) -> torch.Tensor:
    """A smooth random (dx, dy) field of a few pixels, as a flow or learned offset would be."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 2, 2, 6, generator=g) * pixels
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)


@pytest.mark.parametrize(("fn", "padding"), WARPS)
@pytest.mark.parametrize("width", [1000, 1924])
def test_half_precision_warp_samples_where_the_fp32_warp_does(fn, padding, width):
    g = torch.Generator().manual_seed(width)
    x = torch.rand(1, 2, 4, width, generator=g).half()
    offset = smooth_offsets(4, width, 3.0, width).half()
    exact = fn(x.float(), offset.float())  # the same fp16 data, warped in fp32
    out = fn(x, offset)
    assert out.dtype == torch.float16
    # Only the rounding of the sampled values to fp16 remains (half an ulp near 1 is 2.4e-4).
    assert (out.float() - exact).abs().max() < 2e-3
    # A grid built in fp16 lands up to a pixel off: on per-pixel noise that is a visible error.
    old = grid_in_input_dtype(x, offset, padding).float()
    assert (old - exact).abs().max() > 0.05


@pytest.mark.parametrize(("fn", "padding"), WARPS)
def test_fp32_warp_is_unchanged_bit_for_bit(fn, padding):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 13, 37, generator=g)
    offset = torch.randn(2, 2, 13, 37, generator=g) * 4  # reaches past the borders too
    assert torch.equal(fn(x, offset), grid_in_input_dtype(x, offset, padding))


class _HostOps(TorchDispatchMode):
    """Records every operator that reads or makes a CPU tensor."""

    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(
            isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in tree_leaves((args, kwargs, out))
        ):
            self.seen.append(str(func))
        return out


class _HostData(TorchFunctionMode):
    """Records `torch.tensor(data, ...)`, which fills a host tensor before any device copy (that
    copy happens below the dispatcher, where `_HostOps` cannot see it)."""

    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.tensor, torch.as_tensor):
            self.seen.append(func.__name__)
        return func(*args, **(kwargs or {}))


@contextmanager
def host_tensors():
    """Run a block whose inputs live on the meta device; yields the host tensor work it did."""
    seen: list[str] = []
    with _HostData(seen), _HostOps(seen):
        yield seen


def test_the_host_tensor_probe_sees_host_made_tensors():
    with host_tensors() as seen:
        torch.tensor([1.0, 2.0], device="meta")
    assert seen == ["tensor"]
    with host_tensors() as seen:
        torch.ones(3).to("meta")
    assert seen
    with host_tensors() as seen:
        torch.ones(3, device="meta") * 2.0
    assert seen == []


def test_tiled_apply_makes_its_blend_weights_on_the_device():
    x = torch.empty(1, 3, 40, 56, device="meta")
    with host_tensors() as seen:
        out = tiled_apply(lambda t: F.interpolate(t, scale_factor=2), x, 16, 4, out_scale=2)
    assert out.shape == (1, 3, 80, 112)
    assert seen == []


def test_spynet_rescales_its_flow_without_a_host_tensor():
    torch.manual_seed(0)
    net = SPyNet().to("meta")
    ref, supp = torch.empty(1, 3, 40, 72, device="meta"), torch.empty(1, 3, 40, 72, device="meta")
    with host_tensors() as seen, torch.inference_mode():
        assert net(ref, supp).shape == (1, 2, 40, 72)
    assert seen == []


def test_spynet_in_place_rescale_matches_a_scale_tensor_and_keeps_gradients():
    torch.manual_seed(0)
    net = SPyNet()
    ref = (torch.rand(1, 3, 40, 72) * 2 - 1).requires_grad_()
    supp = torch.rand(1, 3, 40, 72) * 2 - 1
    flow = net(ref, supp)
    (grad,) = torch.autograd.grad(flow.square().sum(), ref)
    # The same flow, rescaled by a (1, 2, 1, 1) tensor as before: 40×72 runs padded to 64×96.
    up = [F.interpolate(t, size=(64, 96), mode="bilinear", align_corners=False) for t in (ref, supp)]
    coarse = F.interpolate(net._pyramid_flow(*up), size=(40, 72), mode="bilinear", align_corners=False)
    expected = coarse * torch.tensor([72 / 96, 40 / 64]).view(1, 2, 1, 1)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), ref)
    assert torch.equal(flow, expected)
    assert torch.equal(grad, expected_grad)


def test_wavelet_colour_fix_makes_its_kernel_on_the_device():
    images, reference = torch.empty(2, 3, 40, 56, device="meta"), torch.empty(2, 3, 40, 56, device="meta")
    with host_tensors() as seen:
        assert wavelet_color_fix(images, reference).shape == (2, 3, 40, 56)
    assert seen == []


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float16, 1e-3), (torch.bfloat16, 8e-3)])
def test_wavelet_blur_in_half_precision_is_the_binomial_blur(dtype, tolerance):
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    padded = F.pad(x, (2,) * 4, mode="replicate")
    taps = torch.tensor([1.0, 2.0, 1.0])
    kernel = (taps[:, None] * taps[None, :] / 16).expand(3, 1, 3, 3)
    exact = F.conv2d(padded, kernel, groups=3, dilation=2)
    assert torch.equal(_wavelet_blur(x, 2), exact)
    half = _wavelet_blur(x.to(dtype), 2)
    assert half.dtype == dtype
    assert (half.float() - exact).abs().max() < tolerance
