"""Model registry: a name (or a path to a converted bundle) → a loaded `VSRModel`.

Each model family registers one loader; `load_model` is the only entry point the engine and CLI use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from vsrup.errors import UsageError
from vsrup.models.base import VSRModel

# name → loader(scale, device, dtype) -> VSRModel. Loaders import their module lazily so that
# `vsrup --help` and the tiny default never pay for diffusers.
Loader = Callable[[int, torch.device, torch.dtype], VSRModel]
_LOADERS: dict[str, Loader] = {}

DEFAULT_MODEL = "tiny"


def register(name: str) -> Callable[[Loader], Loader]:
    def wrap(loader: Loader) -> Loader:
        _LOADERS[name] = loader
        return loader

    return wrap


def available() -> list[str]:
    return sorted(_LOADERS)


def load_model(name: str, scale: int, device: torch.device, dtype: torch.dtype) -> VSRModel:
    """Load a registered model by name, ready for inference (eval mode, on device, in dtype)."""
    if name not in _LOADERS and Path(name).is_dir():  # a converted bundle folder (dloral/osediff)
        from vsrup.models.sd import load_bundle

        return load_bundle(Path(name), scale, device, dtype).eval().requires_grad_(False)
    if name not in _LOADERS:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(available())}")
    model = _LOADERS[name](scale, device, dtype)
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

    def load(scale: int, device: torch.device, dtype: torch.dtype) -> VSRModel:
        from vsrup.models.sd import load_bundle
        from vsrup.weights import require_bundle  # raises WeightsError naming the command to run

        return load_bundle(require_bundle(name), scale, device, dtype)

    return load


register("dloral")(_converted("dloral"))
register("osediff")(_converted("osediff"))
