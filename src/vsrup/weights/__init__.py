"""Model weights: the weights.toml registry, verified downloads, the caches, and one-time conversion.

Each model is one entry in weights.toml. Its files come from the package itself ("embedded"), a
Hugging Face hub repo ("hub", mirrors tried in order), a direct URL ("url"), or the user's own copy
(--local-file, --base-dir, `vsrup convert`). Every pinned file is checked against its sha256 and
size before it is used, and a downloaded file that fails is deleted. Third-party checkpoints are
converted once into a bundle (model.safetensors + config.json) in the vsrup cache; that bundle is all
the loaders read.

  registry    weights.toml schema and parsing       cache       paths and environment
  verify      sha256, pins, refusing unpinned files fetch       hub / URL / local files, resume
  net         "cannot reach the host" diagnosis     bundles     conversion driving, require_bundle
  status      `vsrup models`, download_weights      maintainer  python -m vsrup.weights
  convert     the converter (imports torch)         lora        LoRA attach and merge (peft)
  prompt      text embeddings of --prompt (torch)

This package imports no torch: `convert` and `prompt` are imported only where they are used.
"""

from __future__ import annotations

from vsrup.weights.bundles import (
    BUNDLE_FILES,
    DTYPES,
    SOURCE_JSON,
    bundle_state,
    convert_local,
    download,
    preflight,
    require_bundle,
)
from vsrup.weights.cache import ASSETS, bundle_dir, hub_cache, offline, vsrup_cache
from vsrup.weights.fetch import Progress, fetch_files
from vsrup.weights.maintainer import main, refresh_embedded
from vsrup.weights.registry import REGISTRY, Entry, FileSpec, Location, get_entry, load_registry, safe_relpath
from vsrup.weights.status import builtin_status, describe_size, download_weights, list_models, status
from vsrup.weights.verify import file_sha256, verify_file

__all__ = [
    "ASSETS",
    "BUNDLE_FILES",
    "DTYPES",
    "REGISTRY",
    "SOURCE_JSON",
    "Entry",
    "FileSpec",
    "Location",
    "Progress",
    "bundle_dir",
    "builtin_status",
    "bundle_state",
    "convert_local",
    "describe_size",
    "download",
    "download_weights",
    "fetch_files",
    "file_sha256",
    "get_entry",
    "hub_cache",
    "list_models",
    "load_registry",
    "main",
    "offline",
    "preflight",
    "refresh_embedded",
    "require_bundle",
    "safe_relpath",
    "status",
    "verify_file",
    "vsrup_cache",
]
