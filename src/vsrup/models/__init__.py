"""vsrup's models: the contract (`base`), the catalogue (`catalogue`), and the models it holds.

Every model is found by name or path through `find` and loaded through `load_model` (see
`catalogue` for how to register a name or a path kind). The registrations below are this
package's own: each loader imports its module lazily, so that `vsrup --help` and the tiny default
never pay for diffusers.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import torch

from vsrup.errors import WeightsError
from vsrup.models import bicubic, sd, tiny
from vsrup.models.base import ModelDescription, VSRModel
from vsrup.models.catalogue import (
    CatalogueEntry,
    LoadOptions,
    find,
    load_model,
    names,
    register,
    register_path_kind,
)
from vsrup.weights import community as community_files

__all__ = [
    "DEFAULT_MODEL",
    "CatalogueEntry",
    "LoadOptions",
    "ModelDescription",
    "VSRModel",
    "find",
    "load_bundle",
    "load_model",
    "names",
    "register",
    "register_community_entries",
    "register_path_kind",
]

DEFAULT_MODEL = "tiny"


def _load_bicubic(scale: int, device: torch.device, dtype: torch.dtype, options: LoadOptions) -> VSRModel:
    return bicubic.Bicubic(scale).to(device=device, dtype=dtype)


def _load_tiny(scale: int, device: torch.device, dtype: torch.dtype, options: LoadOptions) -> VSRModel:
    return tiny.load_shipped(scale, device, dtype)


def _converted(name: str):
    """Loader for a model whose weights `vsrup download-weights NAME` downloads and converts."""

    def load(scale: int, device: torch.device, dtype: torch.dtype, options: LoadOptions) -> VSRModel:
        from vsrup.weights import require_bundle  # raises WeightsError naming the command to run

        return load_bundle(require_bundle(name), scale, device, dtype, options)

    return load


register("tiny", _load_tiny, scales=tiny.SCALES, licence=tiny.LICENCE, kind="embedded",
         summary="vsrup's own small temporal model; ships with vsrup")  # fmt: skip
register("dloral", _converted("dloral"), scales=sd.SCALES, kind="download",
         licence="MIT (DLoRAL); base weights CreativeML Open RAIL++-M",
         summary="DLoRAL one-step video diffusion SR (vsrup download-weights dloral)")  # fmt: skip
register("osediff", _converted("osediff"), scales=sd.SCALES, kind="download",
         licence="Apache-2.0 (OSEDiff); base weights CreativeML Open RAIL++-M",
         summary="OSEDiff one-step image diffusion SR, per frame (vsrup download-weights osediff)")  # fmt: skip
register("bicubic", _load_bicubic, scales=bicubic.SCALES, licence="-",
         summary="bicubic interpolation, the baseline; no weights")  # fmt: skip


def _load_span(scale: int, device: torch.device, dtype: torch.dtype, options: LoadOptions) -> VSRModel:
    from vsrup.models.span import load_span  # fetches and converts the base on first use

    return load_span(scale, device, dtype)


def _load_span_video(scale: int, device: torch.device, dtype: torch.dtype, options: LoadOptions) -> VSRModel:
    from vsrup.models.span_video import load_span_video

    return load_span_video(scale, device, dtype)


register("span", _load_span, scales=(2, 4), licence="Apache-2.0 (SPAN upstream); weights converted locally",
         kind="download", summary="pretrained SPAN, per frame; base of span-video (vsrup download-weights span)")  # fmt: skip
register("span-video", _load_span_video, scales=(2, 4), kind="embedded",
         licence="Apache-2.0 (our adapter); base: SPAN, Apache-2.0, converted locally",
         summary="vsrup's video model: SPAN + our LoRA and flow-aligned t±1 fusion (base: as span)")  # fmt: skip


def load_bundle(
    path: Path,
    scale: int,
    device: torch.device | str,
    dtype: torch.dtype,
    options: LoadOptions = LoadOptions(),
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
    return classes[kind].from_bundle(
        path,
        device,
        dtype,
        scale=scale,
        prompt=options.prompt,
        reference_postprocess=options.reference_postprocess,
    )


def _bundle_folder(path: Path) -> CatalogueEntry | None:
    """A converted bundle folder (`vsrup convert --out`): any folder; one that is not a bundle
    fails to load with a WeightsError that says so."""
    if not path.is_dir():
        return None

    def load(scale: int, device: torch.device, dtype: torch.dtype, options: LoadOptions) -> VSRModel:
        return load_bundle(path, scale, device, dtype, options)

    return CatalogueEntry(str(path), load, sd.SCALES, kind="converted bundle", path=path)


def _tiny_weights(path: Path) -> CatalogueEntry | None:
    """Tiny weights (a training checkpoint or exported weights): a .safetensors file with the JSON
    config beside it; its scale is the one it was trained for."""
    config = path.with_suffix(".json")
    if path.suffix != ".safetensors" or not path.is_file() or not config.is_file():
        return None
    try:
        architecture = json.loads(config.read_text())["architecture"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not tiny weights: another kind may know the file
    scale = int(architecture.get("scale", tiny.TinyConfig.scale))

    def load(scale: int, device: torch.device, dtype: torch.dtype, options: LoadOptions) -> VSRModel:
        return tiny.load_tiny(path, device, dtype)

    return CatalogueEntry(str(path), load, (scale,), licence="-", kind="tiny weights", path=path)


def _community_loader(path: Path | Callable[[], Path], name: str, licence: str):
    """Loader for a community model file (see `community`): spandrel reads it; its scale is the
    file's, so the catalogue passes None when --scale is left out."""

    def load(scale: int | None, device: torch.device, dtype: torch.dtype, options: LoadOptions) -> VSRModel:
        from vsrup.models.community import load_community

        return load_community(path if isinstance(path, Path) else path(), scale, device, dtype, name, licence)

    return load


def _community_file(path: Path) -> CatalogueEntry | None:
    """A .pth/.pt/.ckpt/.safetensors file: a community model spandrel may know (checked on load)."""
    if not path.is_file() or not community_files.is_model_file(path):
        return None
    loader = _community_loader(path, path.stem, community_files.FILE_LICENCE)
    return CatalogueEntry(str(path), loader, (), community_files.FILE_LICENCE, "community file", path=path)


def register_community_entries() -> None:
    """Register the weights.toml entries with `convert = "community"` (e.g. realesrgan-x4) by name;
    their file is the one `vsrup download-weights NAME` fetched. Run at import, and again by whoever
    points VSRUP_WEIGHTS elsewhere. A broken weights.toml registers none (the weights commands say why)."""
    from vsrup.weights import load_registry

    try:
        entries = load_registry()
    except WeightsError:
        return
    for entry in entries.values():
        if entry.convert == community_files.CONVERT:
            downloaded = functools.partial(community_files.downloaded, entry)
            register(entry.name, _community_loader(downloaded, entry.name, entry.license),
                     licence=entry.license, kind="download", summary=entry.description)  # fmt: skip


register_path_kind("converted bundle", "a converted bundle folder", _bundle_folder)
register_path_kind("tiny weights", "tiny weights (.safetensors beside their .json)", _tiny_weights)
# Last: any other file with a model file extension.
register_path_kind(
    "community file", "a community model file (.pth, .pt, .ckpt, .safetensors)", _community_file
)
register_community_entries()
