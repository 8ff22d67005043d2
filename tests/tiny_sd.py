"""Tiny random checkpoints in the official DLoRAL / OSEDiff / SD2.1-base layouts, for tests.

Same architecture as SD2.1-base (4 down/up blocks, 2 layers each, linear-projection transformers,
same module and key names) at small widths. The official pickles are produced the way the
references produce them: diffusers `add_adapter` with the references' target-module rule, then
`torch.save` of the same dict keys. The CFR state keeps the official (already small) shapes,
including the submodules the reference saves but never runs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from peft import LoraConfig
from safetensors.torch import save_file

from vsrup.models.cfr import CrossFrameRetrieval
from vsrup.models.sd_build import (
    PROMPT_KEY,
    SD21_BASE_UNET_CONFIG,
    SD21_BASE_VAE_CONFIG,
    build_unet,
    build_vae,
)

TINY_UNET = {
    **SD21_BASE_UNET_CONFIG,
    "block_out_channels": [32, 64, 64, 64],
    "attention_head_dim": [2, 4, 4, 4],
    "cross_attention_dim": 32,
    "sample_size": 16,
}
TINY_VAE = {**SD21_BASE_VAE_CONFIG, "block_out_channels": [32, 32, 32, 32], "sample_size": 64}
PROMPT_LEN = 77
_UNET_GREP = [
    "to_k",
    "to_q",
    "to_v",
    "to_out.0",
    "conv",
    "conv1",
    "conv2",
    "conv_in",
    "conv_shortcut",
    "conv_out",
    "proj_out",
    "proj_in",
    "ff.net.2",
    "ff.net.0.proj",
]
_VAE_GREP = [
    "conv1",
    "conv2",
    "conv_in",
    "conv_shortcut",
    "conv",
    "conv_out",
    "to_k",
    "to_q",
    "to_v",
    "to_out.0",
]


def unet_lora_modules(unet: torch.nn.Module) -> tuple[list[str], list[str], list[str]]:
    """(encoder, decoder, others) module names by the references' `initialize_unet` rule."""
    enc, dec, oth = [], [], []
    for n, _ in unet.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        for pattern in _UNET_GREP:
            if pattern in n and ("down_blocks" in n or "conv_in" in n):
                enc.append(n.replace(".weight", ""))
                break
            if pattern in n and ("up_blocks" in n or "conv_out" in n):
                dec.append(n.replace(".weight", ""))
                break
            if pattern in n:
                oth.append(n.replace(".weight", ""))
                break
    return enc, dec, oth


def vae_lora_modules(vae: torch.nn.Module) -> list[str]:
    """OSEDiff's `initialize_vae` rule (no `break`, so names repeat, as in the real checkpoint)."""
    out = []
    for n, _ in vae.named_parameters():
        if "bias" in n or "norm" in n:
            continue
        for pattern in _VAE_GREP:
            if pattern in n and "encoder" in n:
                out.append(n.replace(".weight", ""))
            elif "quant_conv" in n and "post_quant_conv" not in n:
                out.append(n.replace(".weight", ""))
    return out


def _randomise_lora(module: torch.nn.Module, gen: torch.Generator) -> None:
    # peft's "gaussian" init zeroes lora_B; trained adapters are not zero, so make every LoRA count.
    with torch.no_grad():
        for n, p in module.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def _lora_unet(in_channels: int, rank: int, names: list[str], gen: torch.Generator):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    unet = build_unet({**TINY_UNET, "in_channels": in_channels})
    enc, dec, oth = unet_lora_modules(unet)
    with warnings.catch_warnings():  # peft warns that several adapters are added: intended
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        for name, modules in zip(names, [enc, dec, oth] * (len(names) // 3), strict=True):
            config = LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=modules)
            unet.add_adapter(config, adapter_name=name)
    _randomise_lora(unet, gen)
    return unet, (enc, dec, oth)


def official_cfr_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A `state_dict_bpp` with the official keys and shapes (CFR_model(mid_channels=64, num_blocks=7))."""
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    state = dict(CrossFrameRetrieval().state_dict())

    def res_blocks(prefix: str, cin: int, cout: int, blocks: int) -> None:
        state[f"{prefix}.main.0.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * 0.1
        state[f"{prefix}.main.0.bias"] = torch.zeros(cout)
        for i in range(blocks):
            for conv in ("conv1", "conv2"):
                state[f"{prefix}.main.2.{i}.{conv}.weight"] = (
                    torch.randn(cout, cout, 3, 3, generator=gen) * 0.1
                )
                state[f"{prefix}.main.2.{i}.{conv}.bias"] = torch.zeros(cout)

    res_blocks("feat_extract", 4, 64, 5)
    res_blocks("weight_predict", 3, 64, 5)
    res_blocks("weight_predict_final", 64, 1, 1)
    res_blocks("reconstruction_feat", 64, 64, 5)
    for name, cin, cout in (("conv_hr", 64, 64), ("conv_last", 64, 4)):
        state[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * 0.1
        state[f"{name}.bias"] = torch.zeros(cout)
    return state


def write_dloral_pkl(path: Path, seed: int = 0, rank: int = 4) -> Path:
    """model.pkl as DLoRAL's save_model writes it: whole UNet state (8-ch conv_in), CFR, lists."""
    gen = torch.Generator().manual_seed(seed)
    names = [f"default_{p}_{k}" for k in ("quality", "consistency") for p in ("encoder", "decoder", "others")]
    unet, (enc, dec, oth) = _lora_unet(8, rank, names, gen)
    ckpt = {"lora_rank_unet_quality": rank, "lora_rank_unet_consistency": rank}
    for kind in ("quality", "consistency"):
        ckpt[f"unet_lora_encoder_modules_{kind}"] = enc
        ckpt[f"unet_lora_decoder_modules_{kind}"] = dec
        ckpt[f"unet_lora_others_modules_{kind}"] = oth
    ckpt["state_dict_unet"] = dict(unet.state_dict())
    ckpt["state_dict_bpp"] = official_cfr_state(gen)
    torch.save(ckpt, path)
    return path


def write_osediff_pkl(path: Path, seed: int = 1, rank: int = 4) -> Path:
    """osediff.pkl as OSEDiff's save_model writes it: LoRA (+ conv_in) weights and module lists."""
    gen = torch.Generator().manual_seed(seed)
    unet, (enc, dec, oth) = _lora_unet(4, rank, ["default_encoder", "default_decoder", "default_others"], gen)
    vae = build_vae(TINY_VAE)
    vae_modules = vae_lora_modules(vae)
    vae.add_adapter(
        LoraConfig(r=rank, init_lora_weights="gaussian", target_modules=vae_modules), "default_encoder"
    )
    _randomise_lora(vae, gen)
    ckpt = {
        "vae_lora_encoder_modules": vae_modules,
        "unet_lora_encoder_modules": enc,
        "unet_lora_decoder_modules": dec,
        "unet_lora_others_modules": oth,
        "rank_unet": rank,
        "rank_vae": rank,
        "state_dict_unet": {k: v for k, v in unet.state_dict().items() if "lora" in k or "conv_in" in k},
        "state_dict_vae": {k: v for k, v in vae.state_dict().items() if "lora" in k},
    }
    torch.save(ckpt, path)
    return path


def write_sd21_base(
    root: Path, seed: int = 2, embed_dim: int = TINY_UNET["cross_attention_dim"]
) -> dict[str, Path]:
    """unet/, vae/ (config + safetensors, the VAE with pre-0.15 attention names as on the hub
    mirrors) and a prompt embedding; returns the `files` mapping `vsrup.models.convert` takes."""
    torch.manual_seed(seed)
    files = {}
    for name, model, config in (
        ("unet", build_unet(TINY_UNET), TINY_UNET),
        ("vae", build_vae(TINY_VAE), TINY_VAE),
    ):
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if name == "vae":
            old = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
            for new_name, old_name in old.items():
                state = {k.replace(new_name, old_name): v for k, v in state.items()}
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "config.json").write_text(json.dumps({"_class_name": type(model).__name__, **config}))
        save_file(state, str(root / name / "diffusion_pytorch_model.safetensors"))
        files[f"{name}/config.json"] = root / name / "config.json"
        files[f"{name}/diffusion_pytorch_model.safetensors"] = (
            root / name / "diffusion_pytorch_model.safetensors"
        )
    gen = torch.Generator().manual_seed(seed)
    save_file(
        {PROMPT_KEY: torch.randn(1, PROMPT_LEN, embed_dim, generator=gen)},
        str(root / "prompt_embeds.safetensors"),
    )
    files["prompt_embeds.safetensors"] = root / "prompt_embeds.safetensors"
    return files


def write_text_encoder(root: Path, width: int = TINY_UNET["cross_attention_dim"], seed: int = 3) -> Path:
    """A tiny random CLIP text encoder and tokenizer in the SD2.1-base layout (text_encoder/,
    tokenizer/) under root, `width` wide like the UNet's cross-attention; returns root."""
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = root / "tokenizer"
    tokenizer.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}
    (tokenizer / "vocab.json").write_text(json.dumps(vocab))
    (tokenizer / "merges.txt").write_text("#version: 0.2\n")
    (tokenizer / "tokenizer_config.json").write_text(json.dumps({"model_max_length": PROMPT_LEN}))
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=width,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=PROMPT_LEN,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    CLIPTextModel(config).save_pretrained(root / "text_encoder")
    return root
