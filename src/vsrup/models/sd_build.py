"""Stable Diffusion 2.1-base components from configs and weights: the published configs, building
the diffusers UNet/VAE (empty, to be filled), loading state dicts with clear errors, and our
converted bundles (one safetensors file + config.json, memory-mapped, no pickles)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsrup.errors import WeightsError

# The published stabilityai/stable-diffusion-2-1-base configs (unet/config.json, vae/config.json),
# minus bookkeeping keys. Kept here so conversion and the benchmark need no download for configs.
SD21_BASE_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "use_linear_projection": True,
}
SD21_BASE_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SCALING_FACTOR = 0.18215  # SD2.1 VAE latent scale (vae/config.json scaling_factor)
PROMPT_KEY = "prompt_embeds"  # (1, 77, cross_attention_dim) text embedding stored in every bundle
BUNDLE_WEIGHTS, BUNDLE_CONFIG = "model.safetensors", "config.json"
BUNDLE_FORMAT = "vsrup-bundle/1"


def sd21_alphas_cumprod(
    steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """ᾱ_t of SD2.1's DDPM "scaled_linear" schedule, computed as diffusers' DDPMScheduler does (fp32):
    β = linspace(√β₀, √β₁, 1000)², ᾱ = cumprod(1 − β)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


# ---------------------------------------------------------------------------------------------
# Building components and moving weights


def _clean(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def build_unet(config: Mapping[str, Any], empty: bool = False) -> nn.Module:
    """A diffusers UNet2DConditionModel from a config dict; `empty` builds it on the meta device
    (no memory, no random init) for `load_weights(..., assign=True)` to fill."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta") if empty else nullcontext():
        return UNet2DConditionModel.from_config(_clean(config))


def build_vae(config: Mapping[str, Any], empty: bool = False) -> nn.Module:
    """A diffusers AutoencoderKL from a config dict (see `build_unet` for `empty`)."""
    from diffusers import AutoencoderKL

    with torch.device("meta") if empty else nullcontext():
        return AutoencoderKL.from_config(_clean(config))


def load_weights(
    module: nn.Module, state: Mapping[str, torch.Tensor], what: str, assign: bool = False
) -> None:
    """Strict `load_state_dict` that names the first mismatching keys in a WeightsError (a wrong
    or truncated checkpoint is a user-fixable problem, not a traceback)."""
    missing, unexpected = module.load_state_dict(dict(state), strict=False, assign=assign)
    if missing or unexpected:
        raise WeightsError(
            f"{what}: checkpoint does not match the model "
            f"(missing {len(missing)} keys, e.g. {missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]})"
        )
    if assign:
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if tensor.is_meta:
                raise WeightsError(f"{what}: no weight for {name}")


def subdict(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under `prefix.` with the prefix removed."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in state.items() if k.startswith(prefix + ".")}


# Old diffusers (< 0.15) saved the VAE's mid-block attention as query/key/value/proj_attn; the SD2.1
# mirrors still ship files saved that way. diffusers renames them when loading (its
# `_convert_deprecated_attention_blocks`); we do the same rename for plain state dicts.
_OLD_VAE_ATTENTION = {
    ".query.": ".to_q.",
    ".key.": ".to_k.",
    ".value.": ".to_v.",
    ".proj_attn.": ".to_out.0.",
}


def rename_deprecated_vae_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if ".attentions." in key:
            for old, new in _OLD_VAE_ATTENTION.items():
                key = key.replace(old, new)
            if value.ndim == 4 and value.shape[-2:] == (1, 1) and (".to_" in key):
                value = value[:, :, 0, 0]  # some exports store these Linear weights as 1×1 convs
        out[key] = value
    return out


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file (memory-mapped) or, only in conversion, a torch pickle loaded
    with weights_only=True (tensors, containers and numbers only; no code runs)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return load_pickle(path)


def load_pickle(path: Path) -> Any:
    """torch.load(weights_only=True); a file that needs arbitrary code is refused with a clear error."""
    last: Exception | None = None
    for mmap in (True, False):  # mmap keeps a 3.6 GB checkpoint out of RAM; it needs the zip format
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as exc:
            raise WeightsError(
                f"{path}: refused: it cannot be loaded with torch.load(weights_only=True), "
                f"which allows only tensors and plain containers ({exc})"
            ) from exc
        except (RuntimeError, OSError, EOFError) as exc:
            last = exc
    raise WeightsError(f"{path}: not a readable torch checkpoint ({last})")


def write_bundle(out_dir: Path, tensors: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> Path:
    """Write model.safetensors + config.json into `out_dir` (atomically: temp names, then rename)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp_weights, tmp_config = out_dir / (BUNDLE_WEIGHTS + ".tmp"), out_dir / (BUNDLE_CONFIG + ".tmp")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(tmp_weights), metadata={"format": BUNDLE_FORMAT}
    )
    tmp_config.write_text(json.dumps({"format": BUNDLE_FORMAT, **config}, indent=2) + "\n")
    tmp_weights.replace(out_dir / BUNDLE_WEIGHTS)
    tmp_config.replace(out_dir / BUNDLE_CONFIG)  # config last: its presence marks a complete bundle
    return out_dir


def read_bundle(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, tensors) of a converted bundle directory; tensors are memory-mapped safetensors."""
    from safetensors.torch import load_file

    path = Path(path)
    config_path, weights_path = path / BUNDLE_CONFIG, path / BUNDLE_WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        raise WeightsError(
            f"{path} is not a converted vsrup bundle (needs {BUNDLE_CONFIG} and {BUNDLE_WEIGHTS})"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{config_path}: not valid JSON ({exc})") from exc
    if config.get("format") != BUNDLE_FORMAT:
        raise WeightsError(f"{config_path}: unknown bundle format {config.get('format')!r}")
    return config, load_file(str(weights_path))


# ---------------------------------------------------------------------------------------------
# VAE and colour
