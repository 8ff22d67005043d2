"""One-time conversion of official DLoRAL / OSEDiff checkpoints into vsrup weight bundles.

The only place a third-party pickle is read, and only with torch.load(weights_only=True). LoRA
adapters are attached with peft exactly as the references do (see `lora`), loaded, and merged into
the base weights in the checkpoint's precision. The result — UNet, VAE, (CFR), prompt embedding — is
cast to the bundle's dtype (fp16 by default; fp32 keeps the reference's weights bit for bit) and
written as one safetensors file + config.json, which records the dtype and the text encoder used
(so that `--prompt` can encode other prompts later).

`files` maps names to local paths. Names are the file paths inside their source repositories:
  dloral:  "model.pkl"
  osediff: "osediff.pkl"; "unet/diffusion_pytorch_model.safetensors" (SD2.1-base UNet)
  both:    "vae/diffusion_pytorch_model.safetensors" (SD2.1-base VAE; .bin accepted),
           optional "unet/config.json", "vae/config.json" (default: the SD2.1-base configs),
           and a prompt embedding: "prompt_embeds.safetensors" (key "prompt_embeds", (1, 77, 1024)),
           or the SD2.1-base text encoder to compute one: "text_encoder/config.json",
           "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt", ….
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsrup.errors import WeightsError
from vsrup.models.sd_build import (
    PROMPT_KEY,
    SCALING_FACTOR,
    SD21_BASE_UNET_CONFIG,
    SD21_BASE_VAE_CONFIG,
    build_unet,
    build_vae,
    load_pickle,
    load_weights,
    read_tensors,
    rename_deprecated_vae_keys,
    sd21_alphas_cumprod,
    write_bundle,
)
from vsrup.weights.lora import (
    DLORAL_ADAPTERS,
    OSEDIFF_UNET_ADAPTERS,
    OSEDIFF_VAE_ADAPTERS,
    attach_adapters,
    load_partial,
    merge_adapters,
)
from vsrup.weights.prompt import encode_prompt, text_encoder_record

DEFAULT_PROMPT = ""  # the references caption each clip with RAM tags; we have no tagger at runtime
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def convert(
    model_name: str,
    files: Mapping[str, Path],
    out_dir: Path,
    dtype: torch.dtype | str = torch.float16,
    prompt: str = DEFAULT_PROMPT,
) -> Path:
    """Convert `model_name` ("dloral" or "osediff") from `files` into a bundle in `out_dir`, its
    floating-point tensors stored in `dtype` (a torch dtype, or "fp16", "bf16", "fp32")."""
    converters = {"dloral": _convert_dloral, "osediff": _convert_osediff}
    if model_name not in converters:
        raise WeightsError(f"no converter for {model_name!r}; known: {', '.join(converters)}")
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise WeightsError(f"unknown bundle dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    files = _normalise_names(files)
    tensors, config = converters[model_name](files, prompt)
    config = {
        **config,
        "model": model_name,
        "dtype": str(dtype).removeprefix("torch."),
        "text_encoder": _text_encoder(files),
    }
    return write_bundle(Path(out_dir), {k: _cast(v, dtype) for k, v in tensors.items()}, config)


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.detach().to(dtype) if t.is_floating_point() else t.detach()


def _convert_dloral(files: dict[str, Path], prompt: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from vsrup.models.cfr import CrossFrameRetrieval

    ckpt = _read_checkpoint(
        files, "model.pkl", ["state_dict_unet", "state_dict_bpp"] + _keys(DLORAL_ADAPTERS)
    )
    # The whole UNet is in the checkpoint (base, LoRA, and conv_in widened to 8 channels).
    unet_config = {**_config(files, "unet", SD21_BASE_UNET_CONFIG), "in_channels": 8}
    unet = build_unet(unet_config, empty=True)
    tuner = attach_adapters(unet, ckpt, DLORAL_ADAPTERS)
    load_weights(unet, ckpt["state_dict_unet"], "DLoRAL state_dict_unet", assign=True)
    unet = merge_adapters(tuner, DLORAL_ADAPTERS)

    cfr = CrossFrameRetrieval()
    cfr.load_official(ckpt["state_dict_bpp"])
    vae, scaling = _sd_vae(files)
    embeds = prompt_embedding(files, prompt, unet.config.cross_attention_dim)
    tensors = {
        **_prefixed("unet", unet),
        **_prefixed("vae", vae),
        **_prefixed("cfr", cfr),
        PROMPT_KEY: embeds,
    }
    config = {
        "unet": _plain(unet.config),
        "vae": _plain(vae.config),
        "scaling_factor": scaling,
        "timestep": 1,
        "prediction": "residual: x0 = fused - unet",
        "prompt": prompt,
    }
    return tensors, config


def _convert_osediff(files: dict[str, Path], prompt: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    ckpt = _read_checkpoint(
        files,
        "osediff.pkl",
        ["state_dict_unet", "state_dict_vae"] + _keys(OSEDIFF_UNET_ADAPTERS) + _keys(OSEDIFF_VAE_ADAPTERS),
    )
    # Only LoRA and conv_in weights are in the checkpoint: the base is SD2.1-base.
    unet = build_unet(_config(files, "unet", SD21_BASE_UNET_CONFIG), empty=True)
    weights = _pick(files, "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin")
    load_weights(unet, read_tensors(weights), f"SD2.1-base UNet ({weights.name})", assign=True)
    tuner = attach_adapters(unet, ckpt, OSEDIFF_UNET_ADAPTERS)
    load_partial(unet, ckpt["state_dict_unet"], "OSEDiff state_dict_unet")
    unet = merge_adapters(tuner, OSEDIFF_UNET_ADAPTERS)

    vae, scaling = _sd_vae(files)
    tuner = attach_adapters(vae, ckpt, OSEDIFF_VAE_ADAPTERS)
    load_partial(vae, ckpt["state_dict_vae"], "OSEDiff state_dict_vae")
    vae = merge_adapters(tuner, OSEDIFF_VAE_ADAPTERS)

    embeds = prompt_embedding(files, prompt, unet.config.cross_attention_dim)
    tensors = {**_prefixed("unet", unet), **_prefixed("vae", vae), PROMPT_KEY: embeds}
    config = {
        "unet": _plain(unet.config),
        "vae": _plain(vae.config),
        "scaling_factor": scaling,
        "timestep": 999,
        "prediction": "epsilon",
        "alpha_cumprod": float(sd21_alphas_cumprod()[999]),
        "prompt": prompt,
    }
    return tensors, config


# ---------------------------------------------------------------------------------------------
# Inputs


_COMPONENTS = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}


def _normalise_names(files: Mapping[str, Path]) -> dict[str, Path]:
    """Accept names prefixed by the model that provides them, as `vsrup.weights` passes a required
    model's files ("sd21-base/vae/diffusion_pytorch_model.safetensors" → "vae/…")."""
    out = {}
    for name, path in files.items():
        head, _, rest = name.partition("/")
        if rest and head not in _COMPONENTS:
            name = rest
        out.setdefault(name, Path(path))
    return out


def _pick(files: Mapping[str, Path], *names: str) -> Path:
    for name in names:
        if name in files:
            if not files[name].is_file():
                raise WeightsError(f"{name}: {files[name]} does not exist")
            return files[name]
    raise WeightsError(f"conversion needs {names[0]}")


def _keys(adapters: Sequence[tuple[str, str, str]]) -> list[str]:
    return sorted({k for _, rank, modules in adapters for k in (rank, modules)})


def _read_checkpoint(files: Mapping[str, Path], name: str, required: list[str]) -> Mapping[str, Any]:
    path = _pick(files, name)
    ckpt = load_pickle(path)
    missing = [k for k in required if not isinstance(ckpt, Mapping) or k not in ckpt]
    if missing:
        raise WeightsError(f"{path}: not an official {name} (missing {', '.join(missing)})")
    return ckpt


def _config(files: Mapping[str, Path], component: str, default: Mapping[str, Any]) -> dict[str, Any]:
    key = f"{component}/config.json"
    if key not in files:
        return dict(default)
    try:
        return json.loads(_pick(files, key).read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{files[key]}: not valid JSON ({exc})") from exc


def _sd_vae(files: Mapping[str, Path]) -> tuple[nn.Module, float]:
    config = _config(files, "vae", SD21_BASE_VAE_CONFIG)
    vae = build_vae(config, empty=True)
    weights = _pick(files, "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin")
    load_weights(
        vae,
        rename_deprecated_vae_keys(read_tensors(weights)),
        f"SD2.1-base VAE ({weights.name})",
        assign=True,
    )
    return vae, float(config.get("scaling_factor", SCALING_FACTOR))


def prompt_embedding(files: Mapping[str, Path], prompt: str, width: int) -> torch.Tensor:
    """The prompt's text embedding (1, L, width): read from "prompt_embeds.safetensors" if given,
    else computed with the SD2.1-base CLIP text encoder (needs transformers, conversion only)."""
    if "prompt_embeds.safetensors" in files:
        tensors = read_tensors(_pick(files, "prompt_embeds.safetensors"))
        if PROMPT_KEY not in tensors:
            raise WeightsError(f"{files['prompt_embeds.safetensors']}: no {PROMPT_KEY!r} tensor")
        embeds = tensors[PROMPT_KEY]
    elif "text_encoder/config.json" in files:
        tokenizer = _pick(files, "tokenizer/vocab.json", "tokenizer/tokenizer_config.json").parent
        embeds = encode_prompt(_pick(files, "text_encoder/config.json").parent, tokenizer, prompt)
    else:
        raise WeightsError(
            "conversion needs a prompt embedding: prompt_embeds.safetensors, "
            "or the SD2.1-base text_encoder/ and tokenizer/ files"
        )
    if embeds.ndim == 2:
        embeds = embeds[None]
    if embeds.ndim != 3 or embeds.shape[0] != 1 or embeds.shape[-1] != width:
        raise WeightsError(f"prompt embedding has shape {tuple(embeds.shape)}, expected (1, L, {width})")
    return embeds.float()


def _text_encoder(files: Mapping[str, Path]) -> dict[str, Any] | None:
    """Where the SD2.1-base text encoder given for conversion is, for `--prompt` (None: not given)."""
    if "text_encoder/config.json" not in files:
        return None
    tokenizer = _pick(files, "tokenizer/vocab.json", "tokenizer/tokenizer_config.json").parent
    return text_encoder_record(_pick(files, "text_encoder/config.json").parent, tokenizer)


def _prefixed(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """A diffusers FrozenDict config as plain JSON data (tuples → lists, bookkeeping keys dropped)."""
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}))
