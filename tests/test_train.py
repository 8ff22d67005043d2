"""Training pieces: degradations, the HR crop cache, and a resumable 3-step run."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vsrup.errors import UsageError
from vsrup.train.data import build_cache, sample_windows, still_images
from vsrup.train.degrade import Recipe, degrade, downscale, gaussian_kernel, h264, sample_params
from vsrup.train.loop import TrainSettings, train


def textured(t: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    """A smooth-plus-detail HR window, so blur and compression visibly change it."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(t, 3, size // 8, size // 8, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear")
    return (0.7 * smooth + 0.3 * torch.rand(t, 3, size, size, generator=g)).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean()))


def test_degradation_is_deterministic_under_a_seed():
    hr = textured()
    recipe = Recipe(blur_sigma=(1.2, 0.8), noise_sigma=0.02, jpeg_quality=50)
    a = degrade(hr, 4, recipe, np.random.default_rng(7), vary=True)
    b = degrade(hr, 4, recipe, np.random.default_rng(7), vary=True)
    c = degrade(hr, 4, recipe, np.random.default_rng(8), vary=True)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert sample_params(np.random.default_rng(3), 0) == sample_params(np.random.default_rng(3), 0)


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe(blur_sigma=(2.0, 2.0)),
        Recipe(noise_sigma=0.05),
        Recipe(jpeg_quality=20),
        Recipe(h264_crf=40),
    ],
)
def test_each_degradation_moves_the_lr_away_from_clean_bicubic(recipe):
    hr = textured(size=64)
    clean = downscale(hr, 4)
    lr = degrade(hr, 4, recipe, np.random.default_rng(0))
    assert lr.shape == clean.shape
    assert 15 < psnr(lr, clean) < 45


def test_plain_recipe_is_exactly_bicubic_downscale():
    hr = textured()
    assert torch.equal(degrade(hr, 4, Recipe(), np.random.default_rng(0)), downscale(hr, 4))


def test_frame_varying_windows_differ_per_frame_but_consistent_ones_do_not():
    hr = textured(t=1).expand(3, -1, -1, -1).contiguous()  # a static window
    recipe = Recipe(blur_sigma=(1.5, 1.0), jpeg_quality=60)
    same = degrade(hr, 2, recipe, np.random.default_rng(1), vary=False)
    varied = degrade(hr, 2, recipe, np.random.default_rng(1), vary=True)
    assert torch.equal(same[0], same[2])
    assert (varied[0] - varied[2]).abs().max() > 1 / 255


def test_gaussian_kernel_is_normalised_and_centred():
    k = gaussian_kernel((1.5, 0.7), 0.4)
    assert k.shape[0] % 2 == 1
    assert abs(float(k.sum()) - 1) < 1e-5
    assert torch.allclose(k, k.flip(0).flip(1))  # point-symmetric about the centre


def test_h264_round_trip_keeps_odd_sizes_and_content():
    ramp = torch.linspace(0, 1, 19)[None, None, None, :] * torch.linspace(0.2, 1, 21)[None, None, :, None]
    window = ramp.expand(4, 3, 21, 19)
    frames = (window * 255).round().byte().permute(0, 2, 3, 1).numpy()
    out = h264(frames, crf=20)
    assert out.shape == frames.shape
    error = np.abs(out.astype(int) - frames.astype(int)).mean()
    assert 0 < error < 6  # lossy, but still the same picture


def _frame_folder(path, n=6, size=40):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)).save(path / f"{i:03d}.png")
    return path


def test_cache_refuses_held_out_clips(tmp_path):
    with pytest.raises(UsageError, match="held out"):
        build_cache([tmp_path / "bedroom.mp4"], tmp_path)


def test_cache_is_built_once_and_windows_are_sampled_deterministically(tmp_path):
    folder = _frame_folder(tmp_path / "clip")
    cache = build_cache([folder], tmp_path / "c", length=3, crop=32, windows=4, per_window=2)
    assert cache.shape == (8, 3, 32, 32, 3)
    again = build_cache([folder], tmp_path / "c", length=3, crop=32, windows=4, per_window=2)
    assert np.array_equal(np.asarray(again), cache)
    a = sample_windows(cache, np.random.default_rng(5), 2, 2, 16)
    b = sample_windows(cache, np.random.default_rng(5), 2, 2, 16)
    assert a.shape == (2, 2, 16, 16, 3) and np.array_equal(a, b)


def _settings(tmp_path, folder, run):
    return TrainSettings(
        out=str(tmp_path / run / "final.safetensors"),
        steps=3,
        batch=2,
        frames=3,
        crop=16,
        data=[str(folder)],
        run_dir=str(tmp_path / run),
        cache_dir=str(tmp_path / "cache"),
        width=8,
        refiner_blocks=1,
        ckpt_every=1,
        log_every=1,
        eval_every=1,
        cache_frames=3,
        cache_crop=32,
        cache_windows=2,
        stills=str(folder.parent / "stills") if (folder.parent / "stills").is_dir() else "",
        per_still=2,
    )


def test_interrupted_run_resumes_bit_identically(tmp_path):
    folder = _frame_folder(tmp_path / "clip")
    train(_settings(tmp_path, folder, "a"), progress=False)
    stopped = _settings(tmp_path, folder, "b")
    assert train(stopped, progress=False, stop_after=2)["stopped"]
    assert json.loads((tmp_path / "b" / "state.json").read_text())["step"] == 2
    train(stopped, resume=True, progress=False)
    a = load_file(str(tmp_path / "a" / "final.safetensors"))
    b = load_file(str(tmp_path / "b" / "final.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["loss"] > 0 for r in log)
    # The output conv starts at zero (bicubic); three steps of training must have moved it.
    assert a["to_pixels.weight"].abs().max() > 0
    meta = json.loads((tmp_path / "a" / "final.json").read_text())
    assert meta["training"]["seed"] == 0 and meta["training"]["steps"] == 3


def test_resume_with_other_settings_is_refused(tmp_path):
    folder = _frame_folder(tmp_path / "clip")
    s = _settings(tmp_path, folder, "a")
    train(s, progress=False, stop_after=1)
    s.lr = 1e-4
    with pytest.raises(UsageError, match="other settings"):
        train(s, resume=True, progress=False)


def test_reschedule_changes_only_the_step_count_and_is_recorded(tmp_path):
    folder = _frame_folder(tmp_path / "clip")
    s = _settings(tmp_path, folder, "a")
    train(s, progress=False, stop_after=1)
    s.steps = 2
    with pytest.raises(UsageError, match="other settings"):
        train(s, resume=True, progress=False)  # a new step count needs --reschedule
    s.lr = 1e-4
    with pytest.raises(UsageError, match="other settings"):
        train(s, resume=True, progress=False, reschedule=True)  # and nothing else may change
    s.lr = _settings(tmp_path, folder, "a").lr
    summary = train(s, resume=True, progress=False, reschedule=True)
    assert summary["steps"] == 2
    assert summary["reschedules"] == [{"at_step": 1, "steps_from": 3, "steps_to": 2}]


def test_warm_start_copies_every_matching_tensor(tmp_path):
    from vsrup.models.tiny import TinyConfig, TinyVSR, save_tiny
    from vsrup.train.loop import _load_matching

    x4 = TinyVSR(TinyConfig(scale=4, width=8, refiner_blocks=1))
    torch.nn.init.normal_(x4.to_pixels.weight)
    save_tiny(x4, tmp_path / "x4.safetensors")
    # The ×2 model's latent is at LR/2, so one latent pixel maps to the same 4×4 output block as
    # in ×4: only the first conv (12 space-to-depth input channels instead of 3) starts fresh.
    x2 = TinyVSR(TinyConfig(scale=2, width=8, refiner_blocks=1, latent_stride=2))
    fresh = _load_matching(x2, tmp_path / "x4.safetensors")
    assert fresh == ["encoder.0.weight"]
    assert torch.equal(x2.to_pixels.weight, x4.to_pixels.weight)
    assert torch.equal(x2.refiner[0].conv1.weight, x4.refiner[0].conv1.weight)


@pytest.mark.parametrize("stride", [1, 2])
def test_warm_start_into_aligned_inputs_and_more_blocks_keeps_the_output(tmp_path, stride):
    """v2 → v3: the encoder gains the aligned neighbours' channels and the refiner two blocks;
    the grown model must start exactly where the source was, and train the new parts."""
    from vsrup.models.tiny import TinyConfig, TinyVSR, save_tiny
    from vsrup.train.loop import _load_matching

    torch.manual_seed(0)
    scale = 4 // stride if stride == 2 else 4
    old = TinyVSR(TinyConfig(scale=scale, width=8, refiner_blocks=1, latent_stride=stride)).eval()
    torch.nn.init.normal_(old.to_pixels.weight, std=0.05)
    save_tiny(old, tmp_path / "old.safetensors")
    config = TinyConfig(scale=scale, width=8, refiner_blocks=3, latent_stride=stride, aligned_inputs=True)
    grown = TinyVSR(config).eval()
    fresh = _load_matching(grown, tmp_path / "old.safetensors")
    assert fresh == [f"refiner.{i}.conv1.{p}" for i in (1, 2) for p in ("bias", "weight")]
    frames = torch.rand(4, 3, 16, 20)
    with torch.no_grad():
        torch.testing.assert_close(grown.upscale(frames), old.upscale(frames), rtol=0, atol=1e-6)
    neighbours = grown.encoder[0].weight[:, old.encoder[0].weight.shape[1] :]
    assert neighbours.abs().max() == 0  # zero weights, not frozen: they get gradient
    grown.train()
    grown.upscale_windows(frames[None]).mean().backward()
    assert grown.encoder[0].weight.grad[:, 3 * stride**2 :].abs().max() > 0


def _photo(path, size=(300, 260), seed=0):
    """A synthetic 'photograph': smooth random colour fields."""
    rng = np.random.default_rng(seed)
    base = rng.random((size[1] // 20, size[0] // 20, 3)) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(base.astype(np.uint8)).resize(size, Image.BICUBIC).save(path)
    return path


def test_cache_from_stills_holds_moving_camera_windows(tmp_path):
    stills = [_photo(tmp_path / "stills" / f"p{i}.png", seed=i) for i in range(2)]
    assert still_images(tmp_path / "stills") == stills
    cache = build_cache([], tmp_path / "c", length=4, crop=48, stills=stills, per_still=3)
    assert cache.shape == (6, 4, 48, 48, 3) and cache.dtype == np.uint8
    # Frames of a window are views of the same photo: closer to each other than to the other
    # photo's frames, and not all identical (most shots move).
    step = np.abs(cache[:, 1].astype(int) - cache[:, 0]).mean()
    cross = np.abs(cache[:3, 0].astype(int) - cache[3:, 0]).mean()
    assert 0 < step < 0.7 * cross
    again = build_cache([], tmp_path / "c", length=4, crop=48, stills=stills, per_still=3)
    assert np.array_equal(np.asarray(again), cache)


def test_camera_window_pans_by_the_drawn_offset():
    from vsrup.train import motion

    photo = np.asarray(Image.open(_photo_buffer()).convert("RGB"))

    def pure_pan(rng, frames):
        offset = np.arange(frames)[:, None] * np.array([[3.0, -2.0]])
        return offset, np.ones(frames), np.zeros(frames)

    original, motion._trajectory = motion._trajectory, pure_pan
    try:
        window = motion.camera_window(photo, np.random.default_rng(0), 3, 40)
    finally:
        motion._trajectory = original
    # The camera moves by (+3, -2) px per frame, so frame1(x, y) = frame0(x + 3, y - 2).
    a, b = window[0].astype(int), window[1].astype(int)
    assert np.abs(b[2:, :-3] - a[:-2, 3:]).mean() < 1
    assert np.abs(b - a).mean() > 5


def _photo_buffer(size=(200, 180)):
    import io

    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    base = rng.random((size[1] // 10, size[0] // 10, 3)) * 255
    Image.fromarray(base.astype(np.uint8)).resize(size, Image.BICUBIC).save(buf, format="PNG")
    buf.seek(0)
    return buf


def test_cache_refuses_held_out_stills_and_frame_subfolders(tmp_path):
    with pytest.raises(UsageError, match="held out"):
        build_cache([tmp_path / "vimeo_septuplet" / "seq1"], tmp_path)
