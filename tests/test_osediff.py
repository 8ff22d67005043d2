"""OSEDiff-compatible model: the epsilon → x0 step at t = 999 against the published schedule and
diffusers' DDPM step (the reference's code path), and per-frame independence."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DDPMScheduler
from tiny_sd import TINY_UNET, TINY_VAE

from vsrup.models.osediff import OSEDiff
from vsrup.models.sd_build import build_unet, build_vae, sd21_alphas_cumprod


def tiny_osediff(dtype: torch.dtype = torch.float32) -> OSEDiff:
    torch.manual_seed(0)
    model = OSEDiff(build_unet(TINY_UNET), build_vae(TINY_VAE), torch.randn(1, 77, 32))
    model.process_size = 0
    return model.to(dtype).eval().requires_grad_(False)


def sd21_scheduler() -> DDPMScheduler:
    """SD2.1-base's scheduler/scheduler_config.json values."""
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", clip_sample=False, steps_offset=1,
                         prediction_type="epsilon")  # fmt: skip


def test_alpha_bar_is_the_scaled_linear_schedule():
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    expected = np.cumprod(1 - betas)
    np.testing.assert_allclose(sd21_alphas_cumprod().numpy(), expected, rtol=1e-5)
    torch.testing.assert_close(sd21_alphas_cumprod(), sd21_scheduler().alphas_cumprod, atol=0, rtol=0)
    assert 0.004 < float(sd21_alphas_cumprod()[999]) < 0.005


@torch.no_grad()
def test_x0_is_the_epsilon_formula_and_one_ddpm_step_from_999():
    model = tiny_osediff()
    model.chunk = 2
    z = torch.randn(3, 4, 8, 8)
    x0 = model.denoise(z, z)

    eps = torch.cat([model.run_unet(z[:2], 999), model.run_unet(z[2:], 999)])
    a = float(np.cumprod(1 - np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2)[999])
    torch.testing.assert_close(x0, (z - (1 - a) ** 0.5 * eps) / a**0.5, atol=1e-4, rtol=1e-5)

    # The reference does set_timesteps(1) then step(t=999); with its diffusers that steps from 999
    # to "t = -1" (ᾱ = 1). Newer diffusers needs 999 named as the (only) timestep to do the same.
    scheduler = sd21_scheduler()
    scheduler.set_timesteps(timesteps=[999])
    step = scheduler.step(eps, 999, z, generator=torch.Generator().manual_seed(0)).prev_sample
    torch.testing.assert_close(x0, step, atol=1e-4, rtol=1e-5)  # its added noise is ~1e-10


@torch.no_grad()
def test_each_frame_is_upscaled_on_its_own():
    model = tiny_osediff(torch.float64)  # float64: batch sizes round alike
    frames = torch.rand(3, 3, 8, 12, dtype=torch.float64)
    together = model.upscale(frames)
    alone = model.upscale(frames[1:2])
    assert together.shape == (3, 3, 32, 48)
    torch.testing.assert_close(together[1:2], alone, atol=1e-9, rtol=1e-9)
    assert (together[0] - together[1]).abs().max() > 1e-3  # different frames, different outputs


@torch.no_grad()
def test_vae_steps_are_the_scaled_posterior_mean_and_decoder():
    model = tiny_osediff()
    cond = model.prepare(torch.rand(2, 3, 8, 8))
    assert cond.shape == (2, 3, 32, 32) and cond.min() >= -1 and cond.max() <= 1
    latents = model.encode(cond)
    torch.testing.assert_close(latents, model.vae.encode(cond).latent_dist.mean * 0.18215)
    torch.testing.assert_close(model.decode(latents), model.vae.decode(latents / 0.18215).sample)
