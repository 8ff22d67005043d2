"""Quality metrics on inputs with known answers, and the benchmark end to end."""

import math

import numpy as np
import pytest
import torch
from helpers import write_rgb
from PIL import Image

from vsrup.evaluate import PSNR_CAP, evaluate, flicker, lanczos, make_lr, psnr_y, ssim_y, upscale_clip
from vsrup.models.tiny import TinyConfig, TinyVSR

Y_GAIN = 65.481 + 128.553 + 24.966  # BT.601: a grey step of d in RGB moves Y by 219·d (8-bit units)


def grey(t=2, h=24, w=24, value=0.5):
    return torch.full((t, 3, h, w), value)


def test_psnr_of_identical_frames_is_capped():
    x = torch.rand(2, 3, 20, 20)
    assert psnr_y(x, x) == PSNR_CAP


def test_psnr_of_a_known_luma_error():
    gt = grey()
    sign = torch.where(torch.rand(2, 1, 24, 24) > 0.5, 1.0, -1.0)
    out = gt + sign * (2 / Y_GAIN)  # |ΔY| = 2 everywhere → MSE 4
    assert psnr_y(out, gt) == pytest.approx(10 * math.log10(255**2 / 4), abs=1e-4)


def test_psnr_ignores_the_border():
    gt = grey()
    out = gt.clone()
    out[..., :4, :] = 0  # damage only the 4-pixel border
    assert psnr_y(out, gt, border=4) == PSNR_CAP
    assert psnr_y(out, gt, border=0) < 30


def test_ssim_is_one_for_identical_frames_and_drops_with_noise():
    x = torch.rand(2, 3, 32, 32)
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert ssim_y(x, x) == pytest.approx(1.0, abs=1e-6)
    assert 0 < ssim_y(noisy, x) < 0.9


def test_flicker_measures_change_that_the_truth_does_not_have():
    gt = grey(t=4)
    steady = gt + 0.1  # a constant error does not flicker
    blinking = gt + torch.tensor([0, 1, 0, 1.0]).view(4, 1, 1, 1) * (3 / Y_GAIN)  # ±3 Y per step
    assert flicker(steady, gt) == pytest.approx(0, abs=1e-9)
    assert flicker(blinking, gt) == pytest.approx(3, abs=1e-4)
    assert flicker(gt[:1], gt[:1]) == 0


def test_lanczos_keeps_flat_frames_flat_and_scales():
    out = lanczos(grey(t=1, h=5, w=7, value=100 / 255), 4)
    assert out.shape == (1, 3, 20, 28)
    assert torch.allclose(out, torch.full_like(out, 100 / 255), atol=1 / 255)


def test_eval_upscale_is_exactly_what_vsrup_upscale_writes(tmp_path):
    """`vsrup eval` scores the product: the same windows, overlaps, blending and 8-bit rounding as
    `vsrup upscale` (compared through a lossless RGB video, so the encode changes nothing)."""
    import av

    from vsrup import models
    from vsrup.upscale import Upscaler, UpscaleSettings

    torch.manual_seed(0)
    model = TinyVSR(TinyConfig(scale=2, width=8, refiner_blocks=1)).eval()
    torch.nn.init.normal_(model.to_pixels.weight, std=0.05)
    models.register("eval-test", lambda scale, device, dtype, options: model)
    lr = (torch.rand(11, 3, 10, 12) * 255).round() / 255
    clip = write_rgb(
        tmp_path / "lr.mkv", list((lr * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    )
    settings = UpscaleSettings(scale=2, model="eval-test", device="cpu", window=4, overlap=2)
    settings.encode.codec, settings.encode.pix_fmt = "ffv1", "bgr0"
    Upscaler(settings).upscale_file(clip, tmp_path / "up.mkv")
    with av.open(str(tmp_path / "up.mkv")) as written:
        frames = [f.to_ndarray(format="rgb24") for f in written.decode(video=0)]
    upscaled = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(upscale_clip(model, lr, window=4, overlap=2), upscaled)
    with torch.no_grad():  # and the blending is real: it differs from one whole-clip window
        whole = (model.upscale(lr).clamp(0, 1) * 255).round() / 255
    assert not torch.equal(upscaled, whole)


def test_lr_variants_are_bicubic_and_a_fixed_degradation():
    hr = torch.rand(3, 3, 32, 32)
    bic, deg = make_lr(hr, 4, "bicubic"), make_lr(hr, 4, "degraded")
    assert bic.shape == deg.shape == (3, 3, 8, 8)
    assert torch.equal(deg, make_lr(hr, 4, "degraded"))  # same input for every run and method
    assert not torch.equal(bic, deg)


def test_benchmark_runs_end_to_end_on_a_frame_folder(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    for i in range(3):
        frame = Image.fromarray(np.roll(base, i, axis=1)).resize((64, 48), Image.BICUBIC)
        frame.save(tmp_path / f"{i}.png")
    result = evaluate([tmp_path], model="bicubic", scale=4, frames=3, variants=("bicubic",))
    rows = {r["method"]: r for r in result["rows"]}
    # the model *is* bicubic here, so its row and the baseline's are one
    assert set(rows) == {"bicubic", "bicubic per-frame", "lanczos (PIL)"}
    assert rows["bicubic"]["psnr_y"] == rows["bicubic per-frame"]["psnr_y"]  # no temporal module
    assert 15 < rows["bicubic"]["psnr_y"] < 60
    assert result["mean"][0]["source"] == "mean"
