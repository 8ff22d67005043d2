"""Where weights live on disk, read from the environment at call time (huggingface_hub reads its
variables once, at import): the Hugging Face hub cache and the vsrup cache.

Hub files live in the Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub); URL downloads, imported
local files, converted bundles and prompt embeddings live in the vsrup cache (VSRUP_CACHE, else
$XDG_CACHE_HOME/vsrup, else ~/.cache/vsrup).
"""

from __future__ import annotations

import os
from pathlib import Path

from vsrup.weights.registry import get_entry

ASSETS = Path(__file__).resolve().parent.parent / "assets"  # the embedded model's shipped files


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def offline() -> bool:
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()


def hub_cache(cache_dir: str | Path | None = None) -> Path:
    """The Hugging Face hub cache: cache_dir, else HF_HUB_CACHE, else HF_HOME/hub."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME") or _xdg_cache() / "huggingface").expanduser() / "hub"


def vsrup_cache() -> Path:
    return Path(os.environ.get("VSRUP_CACHE") or _xdg_cache() / "vsrup").expanduser()


def downloads_dir(name: str) -> Path:
    """Where URL downloads and imported --local-file copies of model `name` live."""
    return vsrup_cache() / "downloads" / name


def prompts_dir() -> Path:
    """Where text embeddings of user prompts are cached (one safetensors file per prompt and encoder)."""
    return vsrup_cache() / "prompts"


def assets_dir() -> Path:
    """The package's shipped weights, read at call time (so a test can point ASSETS elsewhere)."""
    return ASSETS


def bundle_dir(name: str, registry: str | Path | None = None) -> Path:
    """Where model `name`'s converted bundle lives (the package's assets for the embedded model)."""
    entry = get_entry(name, registry)
    return assets_dir() if entry.source == "embedded" else vsrup_cache() / entry.name
