"""Conversion of official-layout checkpoints: LoRA merge against the unmerged peft model and the
W + (α/r)·B·A formula, safe loading, and tiny checkpoint → bundle → `upscale` on real frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli
from PIL import Image
from safetensors import safe_open
from tiny_sd import (
    TINY_UNET,
    TINY_VAE,
    write_dloral_pkl,
    write_osediff_pkl,
    write_sd21_base,
    write_text_encoder,
)

from vsrup import weights
from vsrup.errors import UsageError, WeightsError
from vsrup.models import load_model
from vsrup.models.convert import convert, prompt_embedding
from vsrup.models.dloral import DLoRAL
from vsrup.models.osediff import OSEDiff
from vsrup.models.sd import vae_encode_mean
from vsrup.models.sd_build import (
    build_unet,
    build_vae,
    load_pickle,
    load_weights,
    read_bundle,
    read_tensors,
    rename_deprecated_vae_keys,
)
from vsrup.weights.lora import (
    DLORAL_ADAPTERS,
    OSEDIFF_UNET_ADAPTERS,
    OSEDIFF_VAE_ADAPTERS,
    attach_adapters,
    load_partial,
    merge_adapters,
)

FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "frames" / "vimeo_septuplet"


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("official")
    files = write_sd21_base(root)
    files["model.pkl"] = write_dloral_pkl(root / "model.pkl")
    files["osediff.pkl"] = write_osediff_pkl(root / "osediff.pkl")
    return files


def real_frames(count: int = 3, height: int = 24, width: int = 32) -> torch.Tensor:
    if not FRAMES.is_dir():
        pytest.skip("../shared/data frames are not present")
    crops = []
    for i in range(1, count + 1):
        image = np.asarray(Image.open(FRAMES / f"im{i}.png").convert("RGB"))[:height, :width]
        crops.append(torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(crops)


def unet_input(channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, channels, 8, 8, generator=gen, dtype=torch.float64)
    prompt = torch.randn(2, 77, TINY_UNET["cross_attention_dim"], generator=gen, dtype=torch.float64)
    return x, torch.tensor([1, 1]), prompt


def lora_delta(state: dict[str, torch.Tensor], module: str, adapters: list[str]) -> torch.Tensor:
    """Σ over adapters of (α/r)·B·A with α = 8, r = 4, for a Linear or a k×k conv (B is 1×1)."""
    delta = 0
    for name in [n for n in adapters if f"{module}.lora_A.{n}.weight" in state]:
        a, b = (
            state[f"{module}.lora_A.{name}.weight"].double(),
            state[f"{module}.lora_B.{name}.weight"].double(),
        )
        if a.ndim == 4:
            delta = delta + 2.0 * torch.einsum("or,rikl->oikl", b[:, :, 0, 0], a)
        else:
            delta = delta + 2.0 * b @ a
    assert torch.is_tensor(delta), f"no adapter targets {module}"
    return delta


@torch.no_grad()
def test_dloral_merge_equals_unmerged_peft_and_the_lora_formula(official):
    ckpt = load_pickle(official["model.pkl"])
    state = ckpt["state_dict_unet"]
    unet = build_unet({**TINY_UNET, "in_channels": 8}, empty=True)
    tuner = attach_adapters(unet, ckpt, DLORAL_ADAPTERS)
    load_weights(unet, state, "test", assign=True)
    unet.double()  # float64: merged and unmerged then agree to rounding, so any real gap shows
    x, t, prompt = unet_input(8)
    unmerged = unet(x, t, encoder_hidden_states=prompt).sample
    tuner.disable_adapter_layers()
    base = unet(x, t, encoder_hidden_states=prompt).sample
    tuner.enable_adapter_layers()
    tuner.set_adapter([name for name, _, _ in DLORAL_ADAPTERS])
    assert (unmerged - base).abs().max() > 0.05, "the six adapters should change the output"

    merged = merge_adapters(tuner, DLORAL_ADAPTERS)
    assert not any("lora" in k for k in merged.state_dict())
    torch.testing.assert_close(
        merged(x, t, encoder_hidden_states=prompt).sample, unmerged, atol=1e-9, rtol=1e-9
    )
    names = [name for name, _, _ in DLORAL_ADAPTERS]
    for module in (
        "conv_in",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        "up_blocks.3.resnets.0.conv1",
    ):
        expected = state[f"{module}.base_layer.weight"].double() + lora_delta(state, module, names)
        torch.testing.assert_close(merged.get_submodule(module).weight, expected, atol=1e-9, rtol=1e-9)


@torch.no_grad()
def test_osediff_merges_unet_and_vae_encoder_loras_onto_sd21(official):
    ckpt = load_pickle(official["osediff.pkl"])
    assert not any(k.endswith("resnets.0.conv1.weight") for k in ckpt["state_dict_unet"]), "LoRA-only"
    unet = build_unet(TINY_UNET, empty=True)
    load_weights(unet, read_tensors(official["unet/diffusion_pytorch_model.safetensors"]), "sd", assign=True)
    tuner = attach_adapters(unet, ckpt, OSEDIFF_UNET_ADAPTERS)
    load_partial(unet, ckpt["state_dict_unet"], "test")
    unet.double()
    x, t, prompt = unet_input(4)
    unmerged = unet(x, t * 999, encoder_hidden_states=prompt).sample
    merged = merge_adapters(tuner, OSEDIFF_UNET_ADAPTERS)
    torch.testing.assert_close(
        merged(x, t * 999, encoder_hidden_states=prompt).sample, unmerged, atol=1e-9, rtol=1e-9
    )

    from vsrup.models.sd_build import rename_deprecated_vae_keys

    vae = build_vae(TINY_VAE, empty=True)
    sd_vae = rename_deprecated_vae_keys(read_tensors(official["vae/diffusion_pytorch_model.safetensors"]))
    load_weights(vae, sd_vae, "sd", assign=True)
    tuner = attach_adapters(vae, ckpt, OSEDIFF_VAE_ADAPTERS)
    load_partial(vae, ckpt["state_dict_vae"], "test")
    vae.double()
    images = torch.rand(1, 3, 32, 32, dtype=torch.float64) * 2 - 1
    unmerged = vae_encode_mean(vae, images)
    merged = merge_adapters(tuner, OSEDIFF_VAE_ADAPTERS)
    torch.testing.assert_close(vae_encode_mean(merged, images), unmerged, atol=1e-9, rtol=1e-9)
    # The decoder has no LoRA: it must still be SD2.1's.
    torch.testing.assert_close(merged.decoder.conv_in.weight.float(), sd_vae["decoder.conv_in.weight"])


@torch.no_grad()
def test_dloral_checkpoint_converts_to_a_bundle_that_upscales_real_frames(official, tmp_path):
    bundle = convert("dloral", official, tmp_path / "dloral", dtype=torch.float32)
    config = json.loads((bundle / "config.json").read_text())
    assert (config["model"], config["timestep"], config["unet"]["in_channels"]) == ("dloral", 1, 8)
    with safe_open(str(bundle / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "prompt_embeds" in keys and "cfr.cross_attn_module.threshold_fc.weight" in keys
    assert not any("lora" in k or k.startswith("cfr.feat_extract") for k in keys)

    model = load_model(str(bundle), 4, torch.device("cpu"), torch.float32)
    assert isinstance(model, DLoRAL)
    model.process_size = 0  # tiny test frames; the real minimum is 512 px
    frames = real_frames(3, 16, 24)
    out = model.upscale(frames)
    assert out.shape == (3, 3, 64, 96)
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert torch.equal(model.upscale(frames), out), "posterior mean: no randomness"


@torch.no_grad()
def test_osediff_converts_to_fp16_with_prefixed_base_names_and_runs_in_fp32(official, tmp_path):
    # vsrup.weights passes a required model's files under its name: "sd21-base/vae/...".
    files = {("sd21-base/" + k if "/" in k else k): v for k, v in official.items()}
    bundle = convert("osediff", files, tmp_path / "osediff")
    config = json.loads((bundle / "config.json").read_text())
    assert (config["timestep"], config["prediction"], config["dtype"]) == (999, "epsilon", "float16")
    with safe_open(str(bundle / "model.safetensors"), "pt") as f:
        assert f.get_tensor("unet.conv_in.weight").dtype == torch.float16

    model = OSEDiff.from_bundle(bundle, "cpu", torch.float32)
    model.process_size = 0
    out = model.upscale(real_frames(2, 16, 16))
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


class NotATensor:
    pass


def test_pickles_that_need_code_are_refused(tmp_path):
    path = tmp_path / "model.pkl"
    torch.save({"state_dict_unet": NotATensor()}, path)
    with pytest.raises(WeightsError, match="weights_only=True"):
        convert("dloral", {"model.pkl": path}, tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_missing_inputs_are_named(official, tmp_path):
    with pytest.raises(WeightsError, match="model.pkl"):
        convert("dloral", {}, tmp_path / "out")
    with pytest.raises(WeightsError, match="no converter"):
        convert("sdxl", {}, tmp_path / "out")
    with pytest.raises(WeightsError, match="missing state_dict_bpp"):
        convert("dloral", {"model.pkl": official["osediff.pkl"]}, tmp_path / "out")


def test_named_model_without_converted_weights_says_which_command_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match="vsrup download-weights dloral"):
        load_model("dloral", 4, torch.device("cpu"), torch.float32)


def test_prompt_embedding_from_a_clip_text_encoder(tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok_dir, enc_dir = tmp_path / "tokenizer", tmp_path / "text_encoder"
    tok_dir.mkdir()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))
    torch.manual_seed(0)
    encoder = CLIPTextModel(CLIPTextConfig(vocab_size=6, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                           num_attention_heads=2, max_position_embeddings=77))  # fmt: skip
    encoder.save_pretrained(enc_dir)
    files = {
        "text_encoder/config.json": enc_dir / "config.json",
        "tokenizer/vocab.json": tok_dir / "vocab.json",
    }

    embeds = prompt_embedding(files, "a b", 32)
    ids = CLIPTokenizer.from_pretrained(str(tok_dir))("a b", max_length=77, padding="max_length").input_ids
    assert embeds.shape == (1, 77, 32) and ids[:4] == [0, 2, 3, 1]
    torch.testing.assert_close(embeds, encoder.eval()(torch.tensor([ids]))[0])
    with pytest.raises(WeightsError, match="expected"):
        prompt_embedding(files, "a", 1024)


# ---------------------------------------------------------------------------------------------
# Bundle dtype, the user's own files (vsrup convert), and --prompt


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory) -> Path:
    """A local SD2.1-base folder in the diffusers layout with a tiny CLIP text encoder (no
    prompt_embeds.safetensors: the empty prompt is encoded at conversion)."""
    root = tmp_path_factory.mktemp("sd21")
    write_sd21_base(root)
    (root / "prompt_embeds.safetensors").unlink()
    return write_text_encoder(root)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr("socket.socket.connect", refuse)
    monkeypatch.setattr("socket.create_connection", refuse)


@torch.no_grad()
def test_fp32_conversion_round_trips_the_checkpoint_exactly(official, tmp_path):
    bundle = convert("dloral", official, tmp_path / "fp32", dtype="fp32")
    config, tensors = read_bundle(bundle)
    assert config["dtype"] == "float32"

    vae = rename_deprecated_vae_keys(read_tensors(official["vae/diffusion_pytorch_model.safetensors"]))
    assert all(torch.equal(tensors[f"vae.{k}"], v) for k, v in vae.items())
    ckpt = load_pickle(official["model.pkl"])
    unet = build_unet({**TINY_UNET, "in_channels": 8}, empty=True)
    tuner = attach_adapters(unet, ckpt, DLORAL_ADAPTERS)
    load_weights(unet, ckpt["state_dict_unet"], "test", assign=True)
    merged = merge_adapters(tuner, DLORAL_ADAPTERS).state_dict()
    assert merged.keys() == {k[5:] for k in tensors if k.startswith("unet.")}
    assert all(torch.equal(tensors[f"unet.{k}"], v) for k, v in merged.items())

    model = DLoRAL.from_bundle(bundle, "cpu", torch.float32)  # loading in the bundle's dtype: no change
    loaded = {
        f"{part}.{k}": v
        for part in ("unet", "vae", "cfr")
        for k, v in getattr(model, part).state_dict().items()
    }
    assert all(torch.equal(loaded[k], tensors[k]) for k in loaded)
    assert torch.equal(model.prompt_embeds, tensors["prompt_embeds"])


@torch.no_grad()
def test_bf16_bundle_records_its_dtype_and_loading_in_fp32_casts(official, tmp_path):
    bundle = convert("osediff", official, tmp_path / "bf16", dtype="bf16")
    config, tensors = read_bundle(bundle)
    assert config["dtype"] == "bfloat16" and tensors["unet.conv_in.weight"].dtype == torch.bfloat16
    model = OSEDiff.from_bundle(bundle, "cpu", torch.float32)
    assert model.unet.conv_in.weight.dtype == torch.float32
    assert torch.equal(model.unet.conv_in.weight, tensors["unet.conv_in.weight"].float())


def test_convert_command_uses_only_local_files(
    official, base_folder, tmp_path, monkeypatch, capsys, no_network
):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VSRUP_WEIGHTS", raising=False)
    with pytest.raises(WeightsError, match="not converted.*vsrup convert dloral --checkpoint"):
        weights.require_bundle("dloral")
    code, out, err = run_cli(
        monkeypatch, capsys, "convert", "dloral", "--checkpoint", str(official["model.pkl"]),
        "--base", str(base_folder), "--dtype", "fp32",
    )  # fmt: skip

    assert code == 0, err
    bundle = weights.require_bundle("dloral")  # where `--model dloral` finds it
    assert out.strip() == f"dloral: ready  {bundle}"
    config, tensors = read_bundle(bundle)
    assert config["dtype"] == "float32" and tensors["unet.conv_in.weight"].dtype == torch.float32
    assert config["text_encoder"]["path"] == str(base_folder / "text_encoder")
    source = json.loads((bundle / "source.json").read_text())
    assert source["dtype"] == "fp32" and source["files"]["model.pkl"] is None  # unpinned: recorded as such
    assert "vae/diffusion_pytorch_model.safetensors" in source["files"]


def test_download_weights_with_a_local_checkpoint_and_base_folder_needs_no_network(
    official, base_folder, tmp_path, monkeypatch, capsys, no_network
):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VSRUP_WEIGHTS", raising=False)
    args = ["download-weights", "osediff", "--local-file", str(official["osediff.pkl"])]
    code, out, _ = run_cli(monkeypatch, capsys, *args, "--base-dir", str(base_folder))

    assert code == 0 and "osediff: ready" in out
    assert read_bundle(weights.require_bundle("osediff"))[0]["dtype"] == "float16"  # the default


def test_a_base_folder_without_the_needed_files_is_named(official, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(
        monkeypatch, capsys, "convert", "osediff", "--checkpoint", str(official["osediff.pkl"]),
        "--base", str(tmp_path / "empty"),
    )  # fmt: skip
    assert code == 5 and "has no unet/diffusion_pytorch_model.safetensors" in err
    code, _, err = run_cli(monkeypatch, capsys, "convert", "tiny", "--checkpoint", "x", "--base", "y")
    assert code == 2 and "needs no conversion; choose one of: dloral, osediff" in err


def test_convert_never_replaces_a_folder_that_is_not_a_bundle(
    official, base_folder, tmp_path, monkeypatch, capsys
):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "keep.jpg").write_bytes(b"mine")
    code, _, err = run_cli(
        monkeypatch, capsys, "convert", "dloral", "--checkpoint", str(official["model.pkl"]),
        "--base", str(base_folder), "--out", str(tmp_path / "photos"),
    )  # fmt: skip
    assert code == 4 and "is not a converted bundle" in err
    assert (tmp_path / "photos" / "keep.jpg").read_bytes() == b"mine"


@pytest.fixture(scope="module")
def prompted_bundle(official, base_folder, tmp_path_factory) -> Path:
    files = {k: v for k, v in official.items() if k != "prompt_embeds.safetensors"}
    files |= {
        "text_encoder/config.json": base_folder / "text_encoder" / "config.json",
        "tokenizer/vocab.json": base_folder / "tokenizer" / "vocab.json",
    }
    return convert("osediff", files, tmp_path_factory.mktemp("bundle") / "osediff", dtype="fp32")


def clip_embedding(base_folder: Path, prompt: str) -> torch.Tensor:
    from transformers import CLIPTextModel, CLIPTokenizer

    ids = CLIPTokenizer.from_pretrained(str(base_folder / "tokenizer"))(
        prompt, max_length=77, padding="max_length", return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        return CLIPTextModel.from_pretrained(str(base_folder / "text_encoder")).eval()(ids)[0]


def test_the_empty_prompt_is_stored_at_conversion_and_needs_no_text_encoder(
    prompted_bundle, base_folder, monkeypatch
):
    def no_encoder(*args):
        raise AssertionError("the text encoder was loaded for the empty prompt")

    monkeypatch.setattr("vsrup.weights.prompt.encode_prompt", no_encoder)
    model = load_model(str(prompted_bundle), 4, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(model.prompt_embeds, clip_embedding(base_folder, ""), atol=0, rtol=0)


def test_a_prompt_is_encoded_once_then_read_from_the_cache(
    prompted_bundle, base_folder, tmp_path, monkeypatch
):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path))
    model = load_model(str(prompted_bundle), 4, torch.device("cpu"), torch.float32, prompt="a b")
    expected = clip_embedding(base_folder, "a b")
    torch.testing.assert_close(model.prompt_embeds, expected, atol=0, rtol=0)
    assert not torch.equal(expected, clip_embedding(base_folder, ""))
    assert len(list((tmp_path / "prompts").glob("*.safetensors"))) == 1

    calls = []
    monkeypatch.setattr("vsrup.weights.prompt.encode_prompt", lambda *a: calls.append(a) or expected)
    again = load_model(str(prompted_bundle), 4, torch.device("cpu"), torch.float32, prompt="a b")
    assert calls == [] and torch.equal(again.prompt_embeds, model.prompt_embeds)
    load_model(str(prompted_bundle), 4, torch.device("cpu"), torch.float32, prompt="b a")
    assert len(calls) == 1  # another prompt is another cache entry


def test_prompt_needs_a_recorded_text_encoder_and_an_sd_model(official, tmp_path):
    bundle = convert("osediff", official, tmp_path / "no-encoder")  # from prompt_embeds.safetensors
    with pytest.raises(WeightsError, match="records no text encoder"):
        load_model(str(bundle), 4, torch.device("cpu"), torch.float32, prompt="a")
    with pytest.raises(UsageError, match="--prompt does not apply to the tiny model"):
        load_model("tiny", 4, torch.device("cpu"), torch.float32, prompt="a")
