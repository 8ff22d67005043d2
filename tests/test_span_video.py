"""span-video: the adapter on a frozen SPAN base (synthetic weights), and its resumable trainer."""

from __future__ import annotations

import torch
from helpers import make_clip
from safetensors.torch import load_file, save_file
from span_fakes import random_frames, small_span

from vsrup.models.span import SPAN
from vsrup.models.span_video import (
    AdapterConfig,
    SPANVideo,
    SPANVideoNet,
    load_adapter,
    load_span_video,
    save_adapter,
)


def _trained(net: SPANVideoNet, seed: int = 0) -> SPANVideoNet:
    """Stand-in for training: every adapter tensor random (the untrained B and fusion are zero)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * (0.02 if "lora_B" in name else 0.05))
    return net


def _moving(t: int = 4) -> torch.Tensor:
    base = random_frames(1, 20, 28, seed=5)[0]
    return torch.stack([torch.roll(base, shifts=(i, 2 * i), dims=(1, 2)) for i in range(t)]) * 0.5 + 0.25


def test_untrained_adapter_is_exactly_the_base():
    frames = _moving(3)
    base = SPAN(small_span(scale=2)).eval()
    video = SPANVideo(SPANVideoNet(small_span(scale=2), AdapterConfig(scale=2))).eval()
    with torch.no_grad():
        torch.testing.assert_close(video.upscale(frames), base.upscale(frames), rtol=0, atol=0)


def test_adapter_file_holds_only_our_tensors_and_reloads_to_the_same_model(tmp_path):
    net = _trained(SPANVideoNet(small_span(scale=2), AdapterConfig(scale=2, rank=2, hidden=4)))
    save_adapter(net, tmp_path / "a.safetensors")
    stored = load_file(str(tmp_path / "a.safetensors"))
    assert stored and all("lora_" in k or k.startswith("fusion.") for k in stored)
    again = load_adapter(small_span(scale=2), tmp_path / "a.safetensors")
    frames = _moving()
    with torch.no_grad():
        torch.testing.assert_close(
            SPANVideo(again).eval().upscale(frames), SPANVideo(net).eval().upscale(frames)
        )


def test_merged_lora_gives_the_parametrised_result_and_leaves_plain_convs():
    net = _trained(SPANVideoNet(small_span(scale=2), AdapterConfig(scale=2, rank=2, hidden=4)))
    frames = _moving()
    with torch.no_grad():
        before = SPANVideo(net).eval().upscale(frames)
        net.merge()
        after = SPANVideo(net).eval().upscale(frames)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert not any("lora_" in k for k in net.state_dict())


def test_output_depends_on_the_declared_neighbourhood_only():
    """Frame t from a window holding t-1..t+1 equals frame t from a longer window: the engine may
    cut windows anywhere around what `neighbourhood` declares."""
    model = SPANVideo(_trained(SPANVideoNet(small_span(scale=2), AdapterConfig(scale=2, hidden=4)))).eval()
    assert model.description.neighbourhood == (1, 1)
    frames = _moving(5)
    with torch.no_grad():
        long = model.upscale(frames)
        short = model.upscale(frames[1:4])
        lone = model.upscale(frames[2:3])
    torch.testing.assert_close(short[1], long[2], rtol=0, atol=1e-6)
    assert (lone[0] - long[2]).abs().max() > 1e-3  # the neighbours do change the frame


def test_shipped_loader_merges_the_adapter_onto_the_cached_base(tmp_path, monkeypatch):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path))
    from vsrup.weights import span_wheel

    base = small_span(scale=2)
    (tmp_path / "span").mkdir()
    save_file(base.state_dict(), str(span_wheel.base_path(2)))
    monkeypatch.setattr(span_wheel, "is_ready", lambda: True)
    net = _trained(SPANVideoNet(small_span(scale=2), AdapterConfig(scale=2, rank=2, hidden=4)))
    save_adapter(net, tmp_path / "adapter.safetensors")
    model = load_span_video(2, adapter=tmp_path / "adapter.safetensors").eval()
    frames = _moving(3)
    with torch.no_grad():
        torch.testing.assert_close(
            model.upscale(frames), SPANVideo(net).eval().upscale(frames), rtol=1e-5, atol=1e-5
        )


def test_training_resumed_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    from vsrup.train.span_loop import SpanTrainSettings, train

    (tmp_path / "data" / "clips").mkdir(parents=True)
    for i in range(2):
        make_clip(tmp_path / "data" / "clips" / f"c{i}.mp4", frames=24, size=(64, 56))
    save_file(small_span(scale=2).state_dict(), str(tmp_path / "base.safetensors"))

    def settings(run: str) -> SpanTrainSettings:
        return SpanTrainSettings(
            out=str(tmp_path / run / "final.safetensors"), base=str(tmp_path / "base.safetensors"),
            scale=2, steps=4, batch=2, crop=16, rank=2, hidden=4, run_dir=str(tmp_path / run),
            cache_dir=str(tmp_path / "cache"), cache_windows=3, eval_every=2, data=str(tmp_path / "data"),
            clean=0.5, blur_scale=0.4, log_loss=True,  # the shipped recipe
        )  # fmt: skip

    train(settings("a"))
    assert train(settings("b"), stop_after=2) == {"steps": 2, "stopped": True}
    train(settings("b"), resume=True)
    a, b = (load_file(str(tmp_path / r / "final.safetensors")) for r in "ab")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert any(v.abs().max() > 0 for k, v in a.items() if "lora_B" in k)  # it did train
