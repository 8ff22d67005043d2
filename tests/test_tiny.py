"""The tiny model: shapes, ranges, odd sizes, temporal behaviour, flow, and the shipped weights."""

import pytest
import torch
import torch.nn.functional as F

from vsrup.errors import WeightsError
from vsrup.models.flow import warp, window_flows
from vsrup.models.tiny import TinyConfig, TinyVSR, load_tiny, save_tiny
from vsrup.train.data import DEFAULT_DATA as DATA


def small_model(
    scale: int = 4, seed: int = 0, stride: int = 1, align: str = "flow", aligned: bool = False
) -> TinyVSR:
    """A small random model whose learned residuals are switched on (the real init starts at zero)."""
    torch.manual_seed(seed)
    config = TinyConfig(
        scale=scale,
        width=8,
        refiner_blocks=1,
        offset_width=4,
        latent_stride=stride,
        align=align,
        aligned_inputs=aligned,
    )
    model = TinyVSR(config).eval()
    torch.nn.init.normal_(model.to_pixels.weight, std=0.05)
    if align == "flow":
        for branch in (model.propagate.backward_branch, model.propagate.forward_branch):
            torch.nn.init.normal_(branch[0].weight, std=0.1)
    elif align == "offset":
        torch.nn.init.normal_(model.align.offset.weight, std=0.05)
    return model


def smooth_texture(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """(3, h, w) smooth random texture: enough structure for optical flow to lock onto."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, size[0] // 4 + 2, size[1] // 4 + 2, generator=g)
    return F.interpolate(base, scale_factor=4, mode="bicubic")[0, :, : size[0], : size[1]].clamp(0, 1)


@pytest.mark.parametrize(("scale", "stride"), [(2, 1), (2, 2), (4, 1)])
@pytest.mark.parametrize("size", [(7, 5), (16, 16), (1, 3), (23, 41)])
@pytest.mark.parametrize(("align", "aligned"), [("flow", False), ("flow", True), ("offset", False)])
def test_output_shape_and_range_for_odd_sizes(scale, stride, size, align, aligned):
    frames = torch.rand(3, 3, *size)
    with torch.no_grad():
        out = small_model(scale, stride=stride, align=align, aligned=aligned).upscale(frames)
    assert out.shape == (3, 3, size[0] * scale, size[1] * scale)
    assert out.min() >= 0 and out.max() <= 1


def test_single_frame_window_equals_per_frame_inference():
    model, frames = small_model(), torch.rand(4, 3, 9, 11)
    with torch.no_grad():
        alone = model.upscale(frames[2:3])
        model.temporal = False
        per_frame = model.upscale(frames)
    assert alone.shape == (1, 3, 36, 44)
    torch.testing.assert_close(alone, per_frame[2:3], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("scale", "stride"), [(4, 1), (2, 2)])
def test_fresh_model_is_bicubic(scale, stride):
    # The residual output conv starts at zero, so training starts from the bicubic skip exactly
    # (with a strided latent too: the LR image rides along losslessly as space-to-depth channels).
    model = TinyVSR(TinyConfig(scale=scale, width=8, refiner_blocks=1, latent_stride=stride)).eval()
    frames = torch.rand(2, 3, 11, 13)
    with torch.no_grad():
        out = model.upscale(frames)
    bicubic = F.interpolate(frames, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(out, bicubic, rtol=0, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("aligned", [False, True])
def test_per_frame_switch_equals_single_frame_calls(stride, aligned):
    model, frames = small_model(stride=stride, aligned=aligned), torch.rand(4, 3, 20, 22)
    with torch.no_grad():
        alone = torch.cat([model.upscale(f[None]) for f in frames])
        model.temporal = False
        per_frame = model.upscale(frames)
        model.temporal = True
        temporal = model.upscale(frames)
    torch.testing.assert_close(per_frame, alone, rtol=0, atol=1e-5)
    assert (temporal - per_frame).abs().max() > 1e-3  # the switch does switch something off
    assert model.description.context == 1 and model.description.neighbourhood is None


def test_flow_propagation_reaches_the_whole_window_and_only_it():
    model = small_model()
    frames = torch.stack([smooth_texture((24, 24), seed=i) for i in range(5)])
    changed = frames.clone()
    changed[0] = smooth_texture((24, 24), seed=99)
    with torch.no_grad():
        a, b = model.upscale(frames), model.upscale(changed)
        windows = model.upscale_windows(torch.stack((frames, changed)))
        model.temporal = False
        c, d = model.upscale(frames), model.upscale(changed)
    diff = (a - b).abs().flatten(1).amax(1)
    assert diff[4] > 1e-5  # the recurrence carries frame 0 to the window's far end
    assert ((c - d).abs().flatten(1).amax(1)[1:] == 0).all()  # per-frame: no frame sees another
    torch.testing.assert_close(windows[0], a, rtol=0, atol=1e-5)  # batched windows stay apart


@pytest.mark.parametrize("stride", [1, 2])
def test_aligned_neighbours_are_warped_onto_the_frame(stride):
    """The encoder's extra inputs: the previous and next frame, warped by the flow so that they
    line up with the frame (padding and all); a window's end frames get themselves."""
    model = small_model(stride=stride, aligned=True)
    big = smooth_texture((80, 96), seed=5)[None]
    shifts = [(0.0, 0.0), (2.5, -1.0), (4.0, -1.5)]
    frames = torch.cat(
        [warp(big, torch.tensor([-dx, -dy]).view(1, 2, 1, 1).expand(1, 2, 80, 96)) for dx, dy in shifts]
    )
    frames = frames[..., 8:-8, 8:-8]
    cond = model.prepare(frames)
    model._flows = model._pad_flows(window_flows(frames, 3))
    prev, nxt = model._aligned_neighbours(cond)
    inner = (slice(None), slice(None), slice(10, -10), slice(10, -10))
    err_prev, err_next = (prev - cond)[inner].abs().mean((1, 2, 3)), (nxt - cond)[inner].abs().mean((1, 2, 3))
    unaligned = (cond[1] - cond[0])[inner[1:]].abs().mean()
    assert max(err_prev[0], err_next[2]) < 1e-5  # window ends: the frame itself (zero flow)
    assert err_prev[1:].max() < 0.15 * unaligned and err_next[:2].max() < 0.15 * unaligned


def test_offset_module_uses_only_adjacent_frames():
    model, frames = small_model(align="offset"), torch.rand(5, 3, 12, 12)
    changed = frames.clone()
    changed[0] = torch.rand(3, 12, 12)
    with torch.no_grad():
        a, b = model.upscale(frames), model.upscale(changed)
    diff = (a - b).abs().flatten(1).amax(1)
    assert diff[1] > 1e-4 and diff[2:].max() == 0


@pytest.mark.parametrize(("dx", "dy"), [(3, -2), (1.5, 0.5)])
def test_estimated_flow_warps_a_shifted_frame_back(dx, dy):
    """Frame 1 is frame 0 moved by (dx, dy): the flow the model computes must align them."""
    big = smooth_texture((80, 96), seed=3)[None]
    shift = torch.zeros(1, 2, 80, 96)
    shift[:, 0], shift[:, 1] = -dx, -dy
    moved = warp(big, shift)  # moved(x) = big(x - d): the content moved by +d
    frames = torch.cat((big, moved))[..., 8:-8, 8:-8]
    flows = window_flows(frames, window=2)
    assert flows.shape == (2, 4, 64, 80)
    aligned = warp(frames[:1], flows[1:, :2])  # previous frame brought onto frame 1
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    err = (aligned - frames[1:])[inner].abs().mean()
    unaligned = (frames[:1] - frames[1:])[inner].abs().mean()
    assert err < 0.15 * unaligned and err < 0.01
    torch.testing.assert_close(flows[1, 0, 20:40, 20:40].mean(), torch.tensor(-float(dx)), atol=0.15, rtol=0)
    torch.testing.assert_close(flows[1, 1, 20:40, 20:40].mean(), torch.tensor(-float(dy)), atol=0.15, rtol=0)
    assert flows[0, :2].abs().max() == 0 and flows[1, 2:].abs().max() == 0  # no neighbour: zero flow


def test_legacy_config_without_align_loads_as_offset_model():
    assert TinyConfig.from_dict({"scale": 4, "width": 32}).align == "offset"
    assert TinyConfig.from_dict({"scale": 4, "align": "flow"}).align == "flow"
    with pytest.raises(ValueError, match="align"):
        TinyVSR(TinyConfig(align="sideways"))


def test_batched_windows_do_not_leak_into_each_other():
    model, windows = small_model(), torch.rand(2, 3, 3, 8, 10)
    with torch.no_grad():
        batched = model.upscale_windows(windows)
        separate = torch.stack([model.upscale(w) for w in windows])
    torch.testing.assert_close(batched, separate, rtol=0, atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    model = small_model()
    save_tiny(model, tmp_path / "m.safetensors", {"training": {"seed": 3}})
    loaded = load_tiny(tmp_path / "m.safetensors").eval()
    x = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded.upscale(x), model.upscale(x), rtol=0, atol=0)


def test_missing_weights_raise_weights_error(tmp_path):
    with pytest.raises(WeightsError):
        load_tiny(tmp_path / "absent.safetensors")


@pytest.mark.skipif(not (DATA / "frames" / "reds_demo_lr").is_dir(), reason="shared data absent")
@pytest.mark.parametrize("scale", [4, 2])
def test_shipped_weights_beat_bicubic_on_held_out_frames(scale):
    from vsrup.evaluate import load_hr, make_lr, psnr_y
    from vsrup.models import load_model

    # The weights are committed: a loader that cannot read them fails here, it is not a skip.
    model = load_model("tiny", scale, torch.device("cpu"), torch.float32)
    hr = load_hr(DATA / "frames" / "reds_demo_lr", frames=3, scale=scale)[..., 20:140, 60:220]
    lr = make_lr(hr, scale, "bicubic")
    with torch.no_grad():
        out = model.upscale(lr)
    bicubic = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    gain = psnr_y(out, hr, scale) - psnr_y(bicubic, hr, scale)
    assert gain > 0.5


def test_shipped_weights_are_checked_against_their_pin(tmp_path, monkeypatch):
    from vsrup.errors import WeightsError
    from vsrup.models import tiny

    shipped, _ = tiny.asset_paths(4)
    tiny.verify_shipped(shipped)  # the committed file matches weights.toml
    edited = tmp_path / shipped.name
    data = bytearray(shipped.read_bytes())
    data[-1] ^= 1
    edited.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        tiny.verify_shipped(edited)


@pytest.mark.parametrize("scale", [4, 2])
@pytest.mark.parametrize("size", [(80, 128), (79, 127)])
def test_tiles_bound_memory_without_visible_seams(scale, size):
    """The planner and the OOM fallback pass a latent `tile` when a frame is too big: the tiny
    model then works tile by tile, and the blended result is within 8-bit rounding of the whole frame
    (odd sizes too: at ×2 every tile must start on the LR/2 latent grid)."""
    from vsrup.models import load_model

    model = load_model("tiny", scale, torch.device("cpu"), torch.float32)
    torch.manual_seed(0)
    smooth = F.interpolate(torch.rand(3, 3, 20, 32), scale_factor=4, mode="bicubic").clamp(0, 1)
    frames = smooth[..., : size[0], : size[1]]
    calls = []
    model.encode = lambda cond, tile=0, _encode=model.encode: (
        calls.append(cond.shape[-2:]) or _encode(cond, tile)
    )
    with torch.no_grad():
        whole = model.upscale(frames)
        assert len(calls) == 1
        smallest = model.description.tiling.smallest
        assert smallest == 40  # twice the overlap (latent px; ×2: LR/2)
        tiled = model.upscale(frames, smallest)
    whole_area = calls[0][0] * calls[0][1]
    assert len(calls) > 2 and all(h * w < whole_area for h, w in calls[1:])  # pieces, not the frame
    assert tiled.shape == whole.shape == (3, 3, size[0] * scale, size[1] * scale)
    assert (tiled - whole).abs().max() < 1 / 255
