"""LoRA adapters as the DLoRAL / OSEDiff references attach them (peft), and their merge.

Rank and target modules come from the checkpoint; lora_alpha = 8 (peft's default when they were
trained; the checkpoints store none). All adapters of a model are active at the references'
inference, so their deltas add: `merge_adapters` folds them all into the base weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from vsrup.errors import WeightsError

LORA_ALPHA = 8

# (adapter name, rank key, module-list key) as the DLoRAL reference's load_ckpt_from_state_dict.
DLORAL_ADAPTERS = [
    (f"default_{part}_{kind}", f"lora_rank_unet_{kind}", f"unet_lora_{part}_modules_{kind}")
    for kind in ("quality", "consistency")
    for part in ("encoder", "decoder", "others")
]
OSEDIFF_UNET_ADAPTERS = [
    (f"default_{part}", "rank_unet", f"unet_lora_{part}_modules") for part in ("encoder", "decoder", "others")
]
OSEDIFF_VAE_ADAPTERS = [("default_encoder", "rank_vae", "vae_lora_encoder_modules")]


def lora_configs(ckpt: Mapping[str, Any], adapters: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """peft LoraConfigs as the references build them: rank and target modules from the checkpoint."""
    from peft import LoraConfig

    configs = {}
    for name, rank_key, modules_key in adapters:
        modules = sorted(set(ckpt[modules_key]))  # OSEDiff's VAE list repeats names
        configs[name] = LoraConfig(
            r=int(ckpt[rank_key]), lora_alpha=LORA_ALPHA, target_modules=modules, init_lora_weights="gaussian"
        )
    return configs


def attach_adapters(model: nn.Module, ckpt: Mapping[str, Any], adapters: Sequence[tuple[str, str, str]]):
    """Inject every adapter into `model` in place (key names `….lora_A.<adapter>.weight`, as the
    references' `add_adapter` produced) and activate them all; returns the peft LoraModel."""
    from peft import LoraModel

    configs = lora_configs(ckpt, adapters)
    names = list(configs)
    with warnings.catch_warnings():  # diffusers models carry a `peft_config` attribute: harmless here
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        tuner = LoraModel(model, configs, names[0])
    for name in names[1:]:
        tuner.inject_adapter(model, name)
    tuner.set_adapter(names)  # all active: their deltas add, as at the references' inference
    return tuner


def merge_adapters(tuner: Any, adapters: Sequence[tuple[str, str, str]]) -> nn.Module:
    """Fold all adapters into the base weights and drop the LoRA layers (peft merge_and_unload)."""
    return tuner.merge_and_unload(adapter_names=[name for name, _, _ in adapters])


def load_partial(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load a LoRA-only checkpoint: every key must exist, and every LoRA weight must be given."""
    missing, unexpected = model.load_state_dict(dict(state), strict=False)
    lora_missing = [k for k in missing if "lora_" in k]
    if unexpected or lora_missing:
        raise WeightsError(
            f"{what}: checkpoint does not match the model (unexpected {unexpected[:3]}, "
            f"missing LoRA weights {lora_missing[:3]})"
        )
