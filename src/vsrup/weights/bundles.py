"""Converted bundles: download-and-convert (`vsrup download-weights`), conversion of the user's own
local files (`vsrup convert`), and the bundle a model loader reads (`require_bundle`).

A third-party checkpoint is converted once into a bundle (model.safetensors + config.json) with a
source.json beside it that records which files (by their pinned sha256) and which converter and
dtype made it; a bundle whose inputs weights.toml pins differently is stale. Nothing here imports
torch or the models: the converter (`vsrup.models.convert.convert`, which builds the networks) is
handed in by the caller as `converter`, so the dependency points one way (models → weights) and a
missing bundle is reported before any heavy library loads.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from vsrup.errors import OutputError, UsageError, WeightsError
from vsrup.weights import cache, community
from vsrup.weights.fetch import Progress, embedded_files, fetch_files
from vsrup.weights.registry import Entry, FileSpec, join_inside, load_registry, pick
from vsrup.weights.verify import check, own_copies_hint, refuse_unpinned, unpinned

# converter(convert_name, {repo path: local file}, out_dir, [dtype=...]) writes a bundle into out_dir
Converter = Callable[..., Path]
BUNDLE_FILES = ("model.safetensors", "config.json")
SOURCE_JSON = "source.json"  # in a bundle: which files (by sha256) it was converted from
DTYPES = ("fp16", "bf16", "fp32")
DEFAULT_DTYPE = "fp16"
# A base model folder (diffusers layout) must hold one of each group for the converter named.
BASE_NEEDS = {
    "dloral": [("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin")],
    "osediff": [
        ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
        ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin"),
    ],
}
_PROMPT_SOURCES = ("text_encoder/config.json", "prompt_embeds.safetensors")
_BASE_EXTRAS = (
    "unet/diffusion_pytorch_model.bin",
    "vae/diffusion_pytorch_model.bin",
    "prompt_embeds.safetensors",
)


def download(
    name: str,
    revision: str | None = None,
    local_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    trust_unverified: bool = False,
    registry: str | Path | None = None,
    base_dir: str | Path | None = None,
    dtype: str | None = None,
    converter: Converter | None = None,
) -> Path:
    """Fetch and verify model `name` (and the models it requires), convert it once (with
    `converter`), return its folder.

    The folder is the converted bundle, the package assets for the embedded model, or for a model
    with no converter the folder its files are in. `revision` and `local_file` apply to `name` only;
    `base_dir` is a local folder that replaces the download of the models `name` requires. Files
    the user gives (local_file, base_dir) are checked where pinned and used as given otherwise;
    only downloads of unpinned files need `trust_unverified`. `dtype` (fp16, bf16, fp32) is the
    bundle's: None keeps an existing bundle whatever its dtype, else converts in fp16.
    """
    entries = load_registry(registry)
    entry = pick(entries, name)
    required = [entries[r] for r in entry.requires]
    _check_dtype(dtype)
    if base_dir is not None and not required:
        raise UsageError(f"--base-dir applies to models converted from a base model; {name!r} needs none")
    if not trust_unverified:  # before any byte is downloaded
        refuse_unpinned(([] if local_file else [entry]) + ([] if base_dir else required), entry)
    converts = entry.convert not in ("none", community.CONVERT)
    if converts and local_file is None and revision is None and base_dir is None:
        if bundle_state(entries, entry, dtype) == "ok":
            return cache.vsrup_cache() / name
    files = fetch_files(entry, revision, local_file, cache_dir, progress)
    if entry.convert == "none":
        return root(entry, files)
    if entry.convert == community.CONVERT:  # a pickle is converted to safetensors now, once
        community.state_dict(files[entry.files[0].name])
        return root(entry, files)
    specs = input_specs(entries, entry)  # checks that no two models bring the same file name
    if base_dir is not None:
        files.update(base_files(entry, [f for e in required for f in e.files], Path(base_dir).expanduser()))
    else:
        for r in required:
            files.update(fetch_files(r, cache_dir=cache_dir, progress=progress))
    inputs = {key: (specs.get(key, FileSpec(key)), path) for key, path in files.items()}
    return convert_bundle(entry, inputs, dtype or DEFAULT_DTYPE, converter=converter)


def convert_local(
    name: str,
    checkpoint: str | Path,
    base: str | Path,
    out: str | Path | None = None,
    dtype: str = DEFAULT_DTYPE,
    registry: str | Path | None = None,
    converter: Converter | None = None,
) -> Path:
    """`vsrup convert`: a bundle from the user's own checkpoint and base model folder, no network.

    Pinned files are verified; unpinned ones are used as given (their sha256 is logged). Without
    `out` the bundle goes where `--model NAME` finds it; with it, use `--model OUT`."""
    entries = load_registry(registry)
    entry = pick(entries, name)
    if entry.convert in ("none", community.CONVERT):
        raise UsageError(f"{name!r} needs no conversion; choose one of: {', '.join(_convertible(entries))}")
    _check_dtype(dtype)
    checkpoint = Path(checkpoint).expanduser()
    if not checkpoint.is_file():
        raise WeightsError(f"--checkpoint: {checkpoint} does not exist")
    spec = entry.files[0]
    check(checkpoint, spec)  # a wrong pinned file is reported, never deleted
    base_specs = [f for r in entry.requires for f in entries[r].files]
    inputs = {spec.name: (spec, checkpoint)}
    specs = {f.name: f for f in base_specs}
    for key, path in base_files(entry, base_specs, Path(base).expanduser()).items():
        inputs[key] = (specs.get(key, FileSpec(key)), path)
    return convert_bundle(entry, inputs, dtype, Path(out).expanduser() if out else None, converter)


def base_files(entry: Entry, specs: list[FileSpec], base: Path) -> dict[str, Path]:
    """The files of a local base model folder (diffusers layout) that entry's converter reads,
    pinned ones verified; names as weights.toml lists them."""
    if not base.is_dir():
        raise WeightsError(f"--base: {base} is not a folder")
    names = [f.name for f in specs] + [n for n in _BASE_EXTRAS if n not in {f.name for f in specs}]
    files = {n: join_inside(base, n) for n in names if join_inside(base, n).is_file()}
    layout = (
        "a Stable Diffusion 2.1-base folder in the diffusers layout (unet/, vae/, text_encoder/, tokenizer/)"
    )
    for group in [*BASE_NEEDS.get(entry.convert, []), _PROMPT_SOURCES]:
        if not any(n in files for n in group):
            raise WeightsError(f"{base} has no {group[0]}; give {layout}")
    for f in specs:
        if f.name in files:
            check(files[f.name], f)
    return files


def root(entry: Entry, files: dict[str, Path]) -> Path:
    """The folder that holds entry's files in their repo layout."""
    first = entry.files[0].name
    return files[first].parents[first.count("/")]


def input_specs(entries: dict[str, Entry], entry: Entry) -> dict[str, FileSpec]:
    """The converter's inputs: entry's files and those of the models it requires, by name."""
    specs: dict[str, FileSpec] = {}
    for e in (entry, *(entries[r] for r in entry.requires)):
        for f in e.files:
            if f.name in specs:
                raise WeightsError(f"{entry.name} and {e.name} in weights.toml both list a file {f.name}")
            specs[f.name] = f
    return specs


def convert_bundle(
    entry: Entry,
    inputs: dict[str, tuple[FileSpec, Path]],
    dtype: str,
    out: Path | None = None,
    converter: Converter | None = None,
) -> Path:
    """Run `converter` into a fresh folder and move the bundle into place only when complete.

    The converter gets every input keyed by its path in its source repo, as weights.toml lists it
    ("model.pkl", "vae/diffusion_pytorch_model.safetensors", ...).
    """
    if converter is None:
        raise WeightsError(f"{entry.name!r} needs converting, and no converter was given")
    out = out or cache.vsrup_cache() / entry.name
    if out.exists() and not (out / "config.json").is_file() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out} exists and is not a converted bundle; give --out a new folder")
    tmp = out.with_name(out.name + ".converting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        options = {} if dtype == DEFAULT_DTYPE else {"dtype": dtype}
        converter(entry.convert, {key: path for key, (_, path) in inputs.items()}, tmp, **options)
        missing = [f for f in BUNDLE_FILES if not (tmp / f).is_file()]
        if missing:
            raise WeightsError(f"the {entry.convert} converter did not write {', '.join(missing)}")
        # Unverified inputs are recorded as null, so pinning them later marks this bundle stale.
        files = {key: f.sha256 for key, (f, _) in inputs.items()}
        source = {"convert": entry.convert, "dtype": dtype, "files": files}
        (tmp / SOURCE_JSON).write_text(json.dumps(source, indent=1) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def bundle_state(entries: dict[str, Entry], entry: Entry, dtype: str | None = None) -> str:
    """'ok', 'missing', or 'stale' (converted from files that weights.toml now pins differently,
    or by another converter, or in another dtype than `dtype` when one is asked for)."""
    out = cache.vsrup_cache() / entry.name
    try:
        source = json.loads((out / SOURCE_JSON).read_text())
    except (OSError, ValueError):
        return "missing"
    if not all((out / f).is_file() for f in BUNDLE_FILES):
        return "missing"
    pins = {name: f.sha256 for name, f in input_specs(entries, entry).items()}
    recorded = source.get("files", {})
    if source.get("convert") != entry.convert or not set(pins) & set(recorded):
        return "stale"
    if any(pins.get(key) is not None and sha != pins[key] for key, sha in recorded.items()):
        return "stale"
    if dtype is not None and source.get("dtype", DEFAULT_DTYPE) != dtype:
        return "stale"
    return "ok"


def require_bundle(name: str, registry: str | Path | None = None) -> Path:
    """The folder a model loader reads: the converted bundle, or the package assets for `tiny`.
    Cheap (no torch): callers check it before they import any model code."""
    entries = load_registry(registry)
    entry = pick(entries, name)
    if entry.source == "embedded":
        embedded_files(entry)
        return cache.assets_dir()
    if entry.convert == "none":
        raise UsageError(f"{name!r} is a base model used by conversion, not a model to load")
    if entry.convert == community.CONVERT:
        return community.downloaded(entry).parent
    state = bundle_state(entries, entry)
    if state == "ok":
        return cache.vsrup_cache() / name
    why = (
        "are not converted" if state == "missing" else "were converted from files weights.toml no longer pins"
    )
    needed = [entry, *(entries[r] for r in entry.requires)]
    if not any(unpinned(e) for e in needed):
        raise WeightsError(f"weights for {name!r} {why}; run: vsrup download-weights {name}")
    raise WeightsError(
        f"weights for {name!r} {why}, and weights.toml pins no sha256 for them yet. Either download"
        f" them unverified: `vsrup download-weights {name} --trust-unverified` (prints their sha256),"
        f" or use your own copies: {own_copies_hint(entry)}"
    )


def preflight(model: str, registry: str | Path | None = None) -> None:
    """Fail fast, before any model code is imported, when a named model's bundle is not ready
    (a bundle folder, `tiny`, `bicubic` or an unknown name are left to the model loader)."""
    entries = load_registry(registry)
    if model in entries and entries[model].convert != "none":
        require_bundle(model, registry)


def _check_dtype(dtype: str | None) -> None:
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")


def _convertible(entries: dict[str, Entry]) -> list[str]:
    return [n for n, e in entries.items() if e.convert not in ("none", community.CONVERT)]
