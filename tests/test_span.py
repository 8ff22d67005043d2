"""The span base: our ncnn reader, the eval-form SPAN network against spandrel's, the model."""

from __future__ import annotations

import pytest
import torch
from span_fakes import fp16_rounded, random_frames, small_span, write_ncnn

from vsrup.errors import WeightsError
from vsrup.models.span import SPAN, SPANNet, infer_channels, load_span_net
from vsrup.weights.ncnn import convert_pair, read_ncnn, state_key


@pytest.mark.parametrize("fp16", [True, False])
def test_reader_recovers_every_tensor_of_a_synthetic_ncnn_pair(fp16):
    net = small_span(scale=2, channels=4)
    text, blob = write_ncnn(net, fp16=fp16)
    state = read_ncnn(text, blob)
    expected = fp16_rounded(net) if fp16 else net.state_dict()
    assert set(state) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    assert infer_channels(state) == (2, 4)


def test_reader_refuses_a_blob_that_does_not_fit_the_param_file():
    text, blob = write_ncnn(small_span())
    with pytest.raises(WeightsError, match="shorter"):
        read_ncnn(text, blob[:-4])
    with pytest.raises(WeightsError, match="does not account"):
        read_ncnn(text, blob + b"\0" * 8)
    with pytest.raises(WeightsError, match="magic"):
        read_ncnn("7767518\n" + text.split("\n", 1)[1], blob)


def test_reader_refuses_layers_that_are_not_span():
    text, blob = write_ncnn(small_span())
    lines = text.splitlines()
    lines.insert(3, "InnerProduct /fc 1 1 a b 0=4 1=1 2=16")
    lines[1] = f"{len(lines) - 2} {len(lines) - 1}"
    with pytest.raises(WeightsError, match="not part of SPAN"):
        read_ncnn("\n".join(lines), blob)


def test_ncnn_layer_names_map_onto_the_module():
    assert state_key("/block_3/c2_r/eval_conv/Conv") == "block_3.c2_r"
    assert state_key("/upsampler/upsampler.0/Conv") == "upsampler"
    assert state_key("/conv_cat/Conv") == "conv_cat"


def test_converted_file_loads_and_runs_like_the_source(tmp_path):
    net = small_span(scale=4, channels=4)
    text, blob = write_ncnn(net, fp16=False)
    (tmp_path / "m.param").write_text(text)
    (tmp_path / "m.bin").write_bytes(blob)
    convert_pair(tmp_path / "m.param", tmp_path / "m.bin", tmp_path / "m.safetensors")
    loaded = load_span_net(tmp_path / "m.safetensors")
    x = random_frames(1, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))
    assert loaded(x).shape == (1, 3, 36, 44)


def _spandrel_eval_state(model) -> dict[str, torch.Tensor]:
    """Fold spandrel's train-form Conv3XC chains (its own update_params) into our parameter names."""
    from spandrel.architectures.SPAN.__arch.span import Conv3XC

    state = {"mean": model.mean.view(1, 3, 1, 1).clone()}
    for name, module in model.named_modules():
        if isinstance(module, Conv3XC):
            module.update_params()
            state[f"{name}.weight"] = module.eval_conv.weight.detach().clone()
            state[f"{name}.bias"] = module.eval_conv.bias.detach().clone()
    for name in ("conv_cat", "upsampler.0"):
        conv = model.get_submodule(name)
        key = name.split(".")[0]
        state[f"{key}.weight"], state[f"{key}.bias"] = conv.weight.detach(), conv.bias.detach()
    return state


@pytest.mark.parametrize("scale", [2, 4])
def test_eval_form_network_matches_spandrels_train_form_span(scale):
    """An independent implementation: spandrel's SPAN with random train-form weights (1×1→3×3→1×1
    chains plus skips), against ours loaded with its folded weights."""
    from spandrel.architectures.SPAN.__arch.span import SPAN as SpandrelSPAN

    torch.manual_seed(scale)
    ref = SpandrelSPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=scale)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    ref.train()  # the train-form forward pass: the chains, not the folded conv
    ours = SPANNet(scale, 8)
    ours.load_state_dict(_spandrel_eval_state(ref))
    x = random_frames(2, 12, 10)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert got.shape == (2, 3, 12 * scale, 10 * scale)
    scale_of = expected.abs().max()
    assert scale_of > 0.01  # the comparison is not between two near-zero outputs
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(scale_of))


def test_span_model_declares_its_contract_and_clamps():
    model = SPAN(small_span(scale=2)).eval()
    d = model.description
    assert (d.name, d.scale, d.scales, d.neighbourhood) == ("span", 2, (2, 4), (0, 0))
    assert d.tiling.space == "pixel" and "Apache-2.0" in d.licence
    out = model.upscale(random_frames(3, 8, 10))
    assert out.shape == (3, 3, 16, 20)
    assert out.min() >= 0 and out.max() <= 1


def test_span_tiles_blend_to_the_whole_frame_result():
    """The overlap covers the receptive field, so tiles give the whole-frame result up to the
    blend of two correct tiles (identical away from frame borders)."""
    torch.manual_seed(0)
    net = small_span(scale=2, channels=4, seed=3)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.3)
    model = SPAN(net).eval()
    x = random_frames(1, 40, 120, seed=1) * 0.2 + 0.4
    with torch.no_grad():
        whole = model.upscale(x)
        tiled = model.upscale(x, tile=60)
    assert ((whole > 0) & (whole < 1)).float().mean() > 0.5  # mostly unclamped: no clamp hides a seam
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)
