"""DLoRAL-compatible model: flow warp, thresholded attention, x0, pairing and tiling against the
published equations, computed here independently on tiny random weights."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tiny_sd import TINY_UNET, TINY_VAE

from vsrup.models.cfr import CrossFrameAttention, CrossFrameRetrieval, SPyNet, flow_warp
from vsrup.models.dloral import DLoRAL
from vsrup.models.sd_build import build_unet, build_vae


def tiny_dloral(seed: int = 0, dtype: torch.dtype = torch.float32) -> DLoRAL:
    torch.manual_seed(seed)
    unet = build_unet({**TINY_UNET, "in_channels": 8})
    model = DLoRAL(unet, build_vae(TINY_VAE), CrossFrameRetrieval(), torch.randn(1, 77, 32))
    model.process_size = 0
    return model.to(dtype).eval().requires_grad_(False)


def bilinear_warp_reference(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """out(p) = Σ over the 4 pixels q around p + flow(p) of (1−|Δx|)(1−|Δy|)·x(q); 0 outside."""
    n, c, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    px, py = xs + flow[:, 0], ys + flow[:, 1]
    x0, y0 = px.floor(), py.floor()
    out = torch.zeros_like(x)
    for dy in (0, 1):
        for dx in (0, 1):
            qx, qy = x0 + dx, y0 + dy
            weight = (1 - (px - qx).abs()) * (1 - (py - qy).abs())
            inside = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
            idx = (qy.clamp(0, h - 1) * w + qx.clamp(0, w - 1)).long().flatten(1)
            values = x.flatten(2).gather(2, idx[:, None].expand(n, c, -1)).view(n, c, h, w)
            out += values * (weight * inside)[:, None]
    return out


def test_flow_warp_is_bilinear_sampling_at_pixel_plus_flow():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 9, 11, generator=gen)
    flow = torch.randn(2, 2, 9, 11, generator=gen) * 3  # some samples land outside → zeros
    torch.testing.assert_close(flow_warp(x, flow), bilinear_warp_reference(x, flow), atol=1e-5, rtol=1e-5)
    # A whole-pixel flow is a plain shift: out[y, x] = in[y, x + 2].
    shift = torch.zeros(2, 2, 9, 11)
    shift[:, 0] = 2
    torch.testing.assert_close(flow_warp(x, shift)[..., :-2], x[..., 2:])
    assert flow_warp(x, shift)[..., -2:].abs().max() == 0


def attention_reference(
    module: CrossFrameAttention, current: torch.Tensor, previous: torch.Tensor
) -> torch.Tensor:
    """fused = cur + Wo·(relu((QKᵀ/√d − fc(Q)) / 3000) V), whole score matrix at once."""
    n, _, h, w = current.shape
    heads, d = module.heads, module.embed_dim
    q = module.query_conv(current).view(n, heads, d, h * w)
    k = module.key_conv(previous).view(n, heads, d, h * w)
    v = module.value_conv(previous).view(n, heads, d, h * w)
    scores = torch.einsum("nhdi,nhdj->nhij", q, k) / math.sqrt(d)
    threshold = torch.einsum("nhdi,d->nhi", q, module.threshold_fc.weight[0]) + module.threshold_fc.bias
    attn = torch.relu((scores - threshold[..., None]) / 3000.0)
    out = torch.einsum("nhij,nhdj->nhdi", attn, v).reshape(n, heads * d, h, w)
    return current + module.proj_out(out), attn


@torch.no_grad()
def test_cross_frame_attention_matches_thresholded_equation_in_slices():
    torch.manual_seed(1)
    module = CrossFrameAttention()
    module.max_scores = 9 * 37 * 2  # forces many query slices
    cur, prev = torch.randn(2, 4, 6, 7) * 3, torch.randn(2, 4, 6, 7) * 3
    expected, attn = attention_reference(module, cur, prev)
    active = (attn > 0).float().mean().item()
    assert 0.05 < active < 0.95, f"threshold should cut some scores, not all or none ({active:.2f})"
    torch.testing.assert_close(module(cur, prev), expected, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_cfr_flows_from_current_to_previous_and_warps_the_previous_latent():
    torch.manual_seed(2)
    cfr = CrossFrameRetrieval()
    seen = []

    class FixedFlow(torch.nn.Module):
        def forward(self, ref, supp):
            seen.append((ref, supp))
            flow = torch.zeros(ref.shape[0], 2, *ref.shape[-2:])
            flow[:, 1] = 1.0  # sample one row below
            return flow

    cfr.spynet = FixedFlow()
    prev, cur = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    prev_img, cur_img = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
    aligned, fused = cfr(prev, cur, prev_img, cur_img)
    assert seen[0][0] is cur_img and seen[0][1] is prev_img
    torch.testing.assert_close(aligned[..., :-1, :], prev[..., 1:, :])
    torch.testing.assert_close(fused, cfr.cross_attn_module(cur, aligned))


@torch.no_grad()
def test_spynet_flow_is_rescaled_to_the_input_size():
    torch.manual_seed(3)
    spynet = SPyNet()
    a, b = torch.rand(1, 3, 20, 24), torch.rand(1, 3, 20, 24)
    flow = spynet(a, b)
    assert flow.shape == (1, 2, 20, 24)
    # Computed at 32×32 internally, then resized and scaled by 24/32 (x) and 20/32 (y).
    inner = spynet._pyramid_flow(
        F.interpolate(a, size=(32, 32), mode="bilinear"), F.interpolate(b, size=(32, 32), mode="bilinear")
    )
    resized = F.interpolate(inner, size=(20, 24), mode="bilinear", align_corners=False)
    torch.testing.assert_close(flow[:, 0], resized[:, 0] * 24 / 32)
    torch.testing.assert_close(flow[:, 1], resized[:, 1] * 20 / 32)


@torch.no_grad()
def test_x0_is_fused_latent_minus_unet_of_each_pair_and_frame0_pairs_with_itself():
    # float64: batched and single-pair calls then agree to rounding (fp32 kernels round by batch).
    model = tiny_dloral(dtype=torch.float64)
    model.chunk = 2  # 3 pairs → two UNet calls
    cond = torch.rand(3, 3, 32, 48, dtype=torch.float64) * 2 - 1
    latents = torch.randn(3, 4, 4, 6, dtype=torch.float64)
    x0 = model.denoise(model.temporal_fuse(latents, cond), latents)

    images = F.interpolate(cond, scale_factor=0.125, mode="bicubic", align_corners=False)
    for t in range(3):
        p = max(t - 1, 0)
        aligned, fused = model.cfr(
            latents[p : p + 1], latents[t : t + 1], images[p : p + 1], images[t : t + 1]
        )
        timestep = torch.tensor([1])
        eps = model.unet(
            torch.cat([aligned, fused], 1), timestep, encoder_hidden_states=model.prompt_embeds
        ).sample
        torch.testing.assert_close(x0[t : t + 1], fused - eps, atol=1e-9, rtol=1e-9)


@torch.no_grad()
def test_latent_tiles_get_the_matching_window_of_the_downsampled_images():
    model = tiny_dloral()
    model.tile_overlap = 4  # a model-internal switch, declared in its description
    assert model.description.tiling.overlap == 4
    frames = torch.rand(2, 3, 16, 24)  # latents 8×12 → two tiles side by side
    cond = model.prepare(frames)
    latents = model.encode(cond)
    packed = model.temporal_fuse(latents, cond)
    calls = []
    model.cfr.register_forward_hook(lambda module, args, out: calls.append((args[1], args[3])))
    x0 = model.denoise(packed, latents, tile=8)
    assert x0.shape == latents.shape and torch.isfinite(x0).all()
    assert len(calls) == 2
    for cur, cur_img in calls:
        assert cur.shape[-2:] == (8, 8)
        offsets = [x for x in range(0, 12 - 8 + 1) if torch.equal(packed[:, 4:8, :, x : x + 8], cur)]
        assert len(offsets) == 1
        x = offsets[0]
        assert torch.equal(cur_img, packed[:, 11:14, :, x : x + 8])


@torch.no_grad()
def test_chunk_size_does_not_change_the_result():
    model = tiny_dloral(dtype=torch.float64)  # fp32 CPU kernels round differently per batch size
    cond = torch.rand(3, 3, 32, 32, dtype=torch.float64) * 2 - 1
    latents = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    packed = model.temporal_fuse(latents, cond)
    model.chunk = 1
    one = model.denoise(packed, latents)
    model.chunk = 8
    torch.testing.assert_close(model.denoise(packed, latents), one, atol=1e-9, rtol=1e-9)


@torch.no_grad()
def test_small_and_odd_inputs_are_processed_larger_and_returned_at_the_asked_size():
    model = tiny_dloral()
    model.process_size = 96  # 7×9 × 4 = 28×36 < 96: enlarged first
    sizes = []
    real_decode = model.decode
    model.decode = lambda x0, tile=0: sizes.append(x0.shape[-2:]) or real_decode(x0, tile)
    out = model.upscale(torch.rand(2, 3, 7, 9))
    assert out.shape == (2, 3, 28, 36)
    assert 0 <= out.min() and out.max() <= 1
    assert min(sizes[0]) * 8 >= 96


@torch.no_grad()
def test_colour_fix_options_give_valid_frames_each_with_its_own_colours():
    """adain takes the input's colour statistics, wavelet the input's low frequencies (so it differs
    from no fix by a smooth field only), none the model's own colours. Frames with a strong colour
    cast against an untrained model, whose own colours are far from it, tell the three apart
    (issue 25: an always-adain model passed the old test)."""
    cast = torch.tensor([0.7, 0.35, 0.5])[None, :, None, None]
    frames = (cast + 0.1 * torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    out = {}
    for fix in ("adain", "wavelet", "none"):
        model = tiny_dloral()
        model.color_fix = fix
        out[fix] = model.upscale(frames)
        assert out[fix].shape == (2, 3, 32, 32) and 0 <= out[fix].min() and out[fix].max() <= 1
    reference = F.interpolate(frames, scale_factor=4, mode="bicubic", align_corners=False)

    def stats(x):
        flat = x.flatten(2)
        return flat.mean(-1), flat.std(-1)

    def roughness(x):  # mean absolute difference of neighbouring pixels
        return (x.diff(dim=-1).abs().mean() + x.diff(dim=-2).abs().mean()).item()

    ref_mean, ref_std = stats(reference)
    (adain_mean, adain_std), (wavelet_mean, wavelet_std), (none_mean, _) = map(stats, out.values())
    assert (none_mean - ref_mean).abs().max() > 0.2  # the model's own colours are far off
    assert (adain_mean - ref_mean).abs().max() < 0.01 and (adain_std - ref_std).abs().max() < 0.01
    assert (wavelet_mean - ref_mean).abs().max() < 0.1  # low frequencies from the input ...
    assert (wavelet_std - ref_std).abs().max() > 0.05  # ... detail from the model, not adain's spread
    assert roughness(out["wavelet"] - out["none"]) < 0.1 * roughness(out["none"])


@torch.no_grad()
def test_each_output_depends_on_its_frame_and_predecessor_only_whatever_the_window():
    # The contract behind `neighbourhood = (1, 0)`: once a window's first output is set aside (unless
    # the window starts the video), every frame's output is the same in every window it sits in.
    model = tiny_dloral()
    assert model.description.neighbourhood == (1, 0)
    model.chunk = 1  # one pair per UNet call: every window then computes each pair alike, bit for bit
    frames = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    whole = model.upscale(frames)
    for size in range(2, 6):
        # windows of this size overlapping by one frame, the last one ending at the last frame
        for start in sorted({*range(0, 6 - size, size - 1), 6 - size}):
            out = model.upscale(frames[start : start + size])
            first = 0 if start == 0 else model.description.neighbourhood[0]
            torch.testing.assert_close(out[first:], whole[start + first : start + size], atol=0, rtol=0)
    # The set-aside output really is different: a window's first frame is paired with itself.
    assert (model.upscale(frames[2:4])[0] - whole[2]).abs().max() > 1e-3
