"""Model registry: a name (or a path to a converted bundle) → a loaded `VSRModel`.

Each model family registers one loader; `load_model` is the only entry point the engine and CLI use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from vsrup.errors import UsageError, WeightsError
from vsrup.models.base import VSRModel

# name → loader(scale, device, dtype) -> VSRModel. Loaders import their module lazily so that
# `vsrup --help` and the tiny default never pay for diffusers.
Loader = Callable[[int, torch.device, torch.dtype], VSRModel]
_LOADERS: dict[str, Loader] = {}
_PROMPTED: set[str] = set()  # loaders that take a prompt (the SD-based models)

DEFAULT_MODEL = "tiny"


def register(name: str) -> Callable[[Loader], Loader]:
    def wrap(loader: Loader) -> Loader:
        _LOADERS[name] = loader
        return loader

    return wrap


def available() -> list[str]:
    return sorted(_LOADERS)


def load_model(name: str, scale: int, device: torch.device, dtype: torch.dtype, prompt: str = "") -> VSRModel:
    """Load a registered model by name, ready for inference (eval mode, on device, in dtype).
    `prompt` is the text the SD-based models condition on (empty: the one stored at conversion)."""
    if name not in _LOADERS and Path(name).is_dir():  # a converted bundle folder (dloral/osediff)
        return load_bundle(Path(name), scale, device, dtype, prompt).eval().requires_grad_(False)
    if name not in _LOADERS:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(available())}")
    if prompt and name not in _PROMPTED:
        raise UsageError(f"--prompt applies to {', '.join(sorted(_PROMPTED))}, not to the {name} model")
    model = _LOADERS[name](scale, device, dtype, **({"prompt": prompt} if prompt else {}))
    return model.eval().requires_grad_(False)


@register("bicubic")
def _load_bicubic(scale: int, device: torch.device, dtype: torch.dtype) -> VSRModel:
    from vsrup.models.bicubic import Bicubic

    return Bicubic(scale).to(device=device, dtype=dtype)


@register("tiny")
def _load_tiny(scale: int, device: torch.device, dtype: torch.dtype) -> VSRModel:
    from vsrup.models.tiny import load_shipped

    return load_shipped(scale, device, dtype)


def _converted(name: str) -> Loader:
    """Loader for a model whose weights `vsrup download-weights NAME` downloads and converts."""

    def load(scale: int, device: torch.device, dtype: torch.dtype, prompt: str = "") -> VSRModel:
        from vsrup.weights import require_bundle  # raises WeightsError naming the command to run

        return load_bundle(require_bundle(name), scale, device, dtype, prompt)

    _PROMPTED.add(name)
    return load


register("dloral")(_converted("dloral"))
register("osediff")(_converted("osediff"))


def load_bundle(
    path: Path, scale: int, device: torch.device | str, dtype: torch.dtype, prompt: str = ""
) -> VSRModel:
    """Load a converted DLoRAL or OSEDiff bundle directory, whichever its config.json names."""
    from vsrup.models.dloral import DLoRAL
    from vsrup.models.osediff import OSEDiff
    from vsrup.models.sd_build import BUNDLE_CONFIG

    config_path = Path(path) / BUNDLE_CONFIG
    try:
        kind = json.loads(config_path.read_text()).get("model")
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a converted vsrup bundle ({exc})") from exc
    classes = {cls.name: cls for cls in (DLoRAL, OSEDiff)}
    if kind not in classes:
        raise WeightsError(f"{config_path}: unknown model {kind!r}; expected one of {', '.join(classes)}")
    return classes[kind].from_bundle(path, device, dtype, scale=scale, prompt=prompt)
