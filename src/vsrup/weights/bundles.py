"""Converted bundles: download-and-convert (`vsrup download-weights`) and the bundle a model loader
reads (`require_bundle`).

A third-party checkpoint is converted once into a bundle (model.safetensors + config.json, see
`vsrup.weights.convert`) with a source.json beside it that records which files (by their pinned
sha256) and which converter made it; a bundle whose inputs weights.toml pins differently is stale.
Nothing here imports torch: the converter is imported only when a conversion runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vsrup.errors import UsageError, WeightsError
from vsrup.weights import cache
from vsrup.weights.fetch import Progress, embedded_files, fetch_files
from vsrup.weights.registry import Entry, FileSpec, load_registry, pick
from vsrup.weights.verify import refuse_unpinned

BUNDLE_FILES = ("model.safetensors", "config.json")
SOURCE_JSON = "source.json"  # in a bundle: which files (by sha256) it was converted from


def download(
    name: str,
    revision: str | None = None,
    local_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    trust_unverified: bool = False,
    registry: str | Path | None = None,
) -> Path:
    """Fetch and verify model `name` (and the models it requires), convert it once, return its folder.

    The folder is the converted bundle, the package assets for the embedded model, or for a model
    with no converter the folder its files are in. `revision` and `local_file` apply to `name` only.
    """
    entries = load_registry(registry)
    entry = pick(entries, name)
    needed = [entry, *(entries[r] for r in entry.requires)]
    if not trust_unverified:  # before any byte is downloaded
        for e in needed:
            refuse_unpinned(e)
    if entry.convert != "none" and local_file is None and revision is None:
        if bundle_state(entries, entry) == "ok":
            return cache.vsrup_cache() / name
    files = fetch_files(entry, revision, local_file, cache_dir, progress)
    if entry.convert == "none":
        return root(entry, files)
    specs = input_specs(entries, entry)  # checks that no two models bring the same file name
    for required in entry.requires:
        files.update(fetch_files(entries[required], cache_dir=cache_dir, progress=progress))
    return convert_bundle(entry, {key: (spec, files[key]) for key, spec in specs.items()})


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


def convert_bundle(entry: Entry, inputs: dict[str, tuple[FileSpec, Path]]) -> Path:
    """Run the entry's converter into a fresh folder and move it into place only when complete.

    The converter gets every input keyed by its path in its source repo, as weights.toml lists it
    ("model.pkl", "vae/diffusion_pytorch_model.safetensors", ...).
    """
    try:
        from vsrup.weights.convert import convert  # late: torch and the checkpoint readers load only here
    except ImportError as e:
        raise WeightsError(f"this vsrup cannot convert {entry.name!r} ({e})") from e
    out = cache.vsrup_cache() / entry.name
    tmp = out.with_name(out.name + ".converting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        convert(entry.convert, {key: path for key, (_, path) in inputs.items()}, tmp)
        missing = [f for f in BUNDLE_FILES if not (tmp / f).is_file()]
        if missing:
            raise WeightsError(f"the {entry.convert} converter did not write {', '.join(missing)}")
        # Unverified inputs are recorded as null, so pinning them later marks this bundle stale.
        source = {"convert": entry.convert, "files": {key: f.sha256 for key, (f, _) in inputs.items()}}
        (tmp / SOURCE_JSON).write_text(json.dumps(source, indent=1) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def bundle_state(entries: dict[str, Entry], entry: Entry) -> str:
    """'ok', 'missing', or 'stale' (converted from files that weights.toml no longer pins)."""
    out = cache.vsrup_cache() / entry.name
    try:
        source = json.loads((out / SOURCE_JSON).read_text())
    except (OSError, ValueError):
        return "missing"
    if not all((out / f).is_file() for f in BUNDLE_FILES):
        return "missing"
    pins = {name: f.sha256 for name, f in input_specs(entries, entry).items()}
    recorded = source.get("files", {})
    if source.get("convert") != entry.convert or set(recorded) != set(pins):
        return "stale"
    if any(sha is not None and recorded[key] != sha for key, sha in pins.items()):
        return "stale"
    return "ok"


def require_bundle(name: str, registry: str | Path | None = None) -> Path:
    """The folder a model loader reads: the converted bundle, or the package assets for `tiny`."""
    entries = load_registry(registry)
    entry = pick(entries, name)
    if entry.source == "embedded":
        embedded_files(entry)
        return cache.assets_dir()
    if entry.convert == "none":
        raise UsageError(f"{name!r} is a base model used by conversion, not a model to load")
    state = bundle_state(entries, entry)
    if state == "missing":
        raise WeightsError(f"weights for {name!r} are not converted; run: vsrup download-weights {name}")
    if state == "stale":
        raise WeightsError(
            f"weights for {name!r} were converted from files that weights.toml no longer pins;"
            f" run: vsrup download-weights {name}"
        )
    return cache.vsrup_cache() / name
