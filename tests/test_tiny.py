"""The tiny model: shapes, ranges, odd sizes, temporal behaviour, and the shipped weights."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vsrup.errors import WeightsError
from vsrup.models.tiny import TinyConfig, TinyVSR, load_tiny, save_tiny

DATA = Path("/work/shared/data")


def small_model(scale: int = 4, seed: int = 0, stride: int = 1) -> TinyVSR:
    """A small random model whose learned residual is switched on (the real init starts at zero)."""
    torch.manual_seed(seed)
    config = TinyConfig(scale=scale, width=8, refiner_blocks=1, offset_width=4, latent_stride=stride)
    model = TinyVSR(config).eval()
    torch.nn.init.normal_(model.to_pixels.weight, std=0.05)
    torch.nn.init.normal_(model.align.offset.weight, std=0.05)
    return model


@pytest.mark.parametrize(("scale", "stride"), [(2, 1), (2, 2), (4, 1)])
@pytest.mark.parametrize("size", [(7, 5), (16, 16), (1, 3)])
def test_output_shape_and_range_for_odd_sizes(scale, stride, size):
    frames = torch.rand(3, 3, *size)
    with torch.no_grad():
        out = small_model(scale, stride=stride).upscale(frames)
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


def test_temporal_module_uses_only_adjacent_frames():
    model, frames = small_model(), torch.rand(5, 3, 12, 12)
    changed = frames.clone()
    changed[0] = torch.rand(3, 12, 12)
    with torch.no_grad():
        a, b = model.upscale(frames), model.upscale(changed)
        model.temporal = False
        c = model.upscale(frames)
    diff = (a - b).abs().flatten(1).amax(1)
    assert diff[1] > 1e-4  # frame 1 sees its neighbour 0
    assert diff[2:].max() == 0  # frames 2.. do not
    assert (a[1:4] - c[1:4]).abs().max() > 1e-4  # temporal on and off differ where neighbours exist


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

    try:
        model = load_model("tiny", scale, torch.device("cpu"), torch.float32)
    except WeightsError:
        pytest.skip(f"tiny ×{scale} weights not shipped yet")
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
    """The planner and the OOM fallback set `tiles.latent_tile` when a frame is too big: the tiny
    model then works tile by tile, and the blended result is within 8-bit rounding of the whole frame
    (odd sizes too: at ×2 every tile must start on the LR/2 latent grid)."""
    from vsrup.models import load_model

    model = load_model("tiny", scale, torch.device("cpu"), torch.float32)
    torch.manual_seed(0)
    smooth = F.interpolate(torch.rand(3, 3, 20, 32), scale_factor=4, mode="bicubic").clamp(0, 1)
    frames = smooth[..., : size[0], : size[1]]
    calls = []
    model.encode = lambda cond, _encode=model.encode: calls.append(cond.shape[-2:]) or _encode(cond)
    with torch.no_grad():
        whole = model.upscale(frames)
        assert len(calls) == 1
        model.tiles.latent_tile = 32  # latent px: 32 LR px at ×4, 64 at ×2 (LR/2 latent)
        tiled = model.upscale(frames)
    assert len(calls) > 2 and all(max(shape) < 80 + 2 * 2 for shape in calls[1:])  # pieces, not the frame
    assert tiled.shape == whole.shape == (3, 3, size[0] * scale, size[1] * scale)
    assert (tiled - whole).abs().max() < 1 / 255
