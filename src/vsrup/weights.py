"""Model weights: the weights.toml registry, verified downloads, the caches, and one-time conversion.

Each model is one entry in weights.toml. Its files come from the package itself ("embedded"), a
Hugging Face hub repo ("hub", mirrors tried in order), a direct URL ("url"), or the user's own copy
(--local-file). Every file is checked against the sha256 and size pinned in weights.toml before it is
used, and a downloaded file that fails is deleted. Third-party checkpoints are converted once into a
bundle (model.safetensors + config.json) in the vsrup cache; that bundle is all the loaders read.

Caches: hub files live in the Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub); URL downloads,
imported local files and converted bundles live in the vsrup cache (VSRUP_CACHE, else
$XDG_CACHE_HOME/vsrup, else ~/.cache/vsrup).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from vsrup.errors import UsageError, WeightsError

log = logging.getLogger(__name__)

# A link to the top-level weights.toml (a wheel gets a copy), so installed packages find it too.
REGISTRY = Path(__file__).parent / "weights.toml"
ASSETS = Path(__file__).resolve().parent / "assets"
BUNDLE_FILES = ("model.safetensors", "config.json")
SOURCE_JSON = "source.json"  # in a bundle: which files (by sha256) it was converted from

# progress(file name, bytes done, total bytes or None), called as bytes arrive.
Progress = Callable[[str, int, "int | None"], None]

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_COMMON_KEYS = {"description", "license", "source", "convert", "files", "requires", "note"}
_SOURCE_KEYS = {"embedded": set(), "hub": {"repo", "revision", "mirrors"}, "url": {"url", "mirrors"}}


# ---------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class FileSpec:
    name: str  # a relative path, '/'-separated, that cannot leave the folder it is joined to
    sha256: str | None = None  # None: unpinned, usable only with --trust-unverified
    size: int | None = None

    @property
    def pinned(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class Location:
    """One place to fetch an entry's files from: a hub repo at a revision, or a URL."""

    repo: str | None = None
    revision: str | None = None  # None: the repo's main branch
    url: str | None = None

    def __str__(self) -> str:
        return self.url or f"{self.repo}@{(self.revision or 'main')[:12]}"


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    license: str
    source: str  # "embedded" | "hub" | "url"
    convert: str  # converter name for vsrup.convert, or "none"
    files: tuple[FileSpec, ...]
    locations: tuple[Location, ...] = ()  # in the order to try: the primary, then the mirrors
    requires: tuple[str, ...] = ()
    note: str = ""

    @property
    def pinned(self) -> bool:
        return all(f.pinned for f in self.files)

    @property
    def size(self) -> int | None:
        return sum(f.size for f in self.files) if self.pinned else None


def load_registry(path: str | Path | None = None) -> dict[str, Entry]:
    """Read and validate weights.toml (default: $VSRUP_WEIGHTS, else the one next to the package)."""
    path = Path(path or os.environ.get("VSRUP_WEIGHTS") or REGISTRY)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as e:
        raise WeightsError(f"cannot read the weights registry {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise WeightsError(f"{path}: not valid TOML: {e}") from None
    models = data.get("models")
    if set(data) != {"models"} or not isinstance(models, dict) or not models:
        raise WeightsError(f"{path}: expected only [models.NAME] tables")
    # tomllib keeps no line numbers; the line of each [models.NAME] header is good enough to point at.
    lines = {m[1]: text.count("\n", 0, m.start()) + 1 for m in _TABLE_HEADER.finditer(text)}
    entries: dict[str, Entry] = {}
    for name, table in models.items():
        try:
            entries[name] = _parse_entry(name, table)
            unknown = [r for r in entries[name].requires if r not in models or r == name]
            if unknown:
                raise ValueError(f"requires unknown model(s): {', '.join(unknown)}")
        except ValueError as e:
            raise WeightsError(f"{path}:{lines.get(name, '?')}: [models.{name}]: {e}") from None
    return entries


_TABLE_HEADER = re.compile(r'^[ \t]*\[[ \t]*models[ \t]*\.[ \t]*"?([^"\]\s]+)"?[ \t]*\]', re.M)


def get_entry(name: str, registry: str | Path | None = None) -> Entry:
    return _pick(load_registry(registry), name)


def _pick(entries: dict[str, Entry], name: str) -> Entry:
    if name not in entries:
        raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(entries)}")
    return entries[name]


def _parse_entry(name: str, t: object) -> Entry:
    if not isinstance(t, dict):
        raise ValueError("must be a table")
    if not _MODEL_NAME.fullmatch(name):
        raise ValueError("a model name is lowercase letters, digits, '-' and '_'")
    source = t.get("source")
    if source not in _SOURCE_KEYS:
        raise ValueError(f"source must be one of {', '.join(_SOURCE_KEYS)}, not {source!r}")
    unknown = set(t) - _COMMON_KEYS - _SOURCE_KEYS[source]
    if unknown:
        raise ValueError(f"key(s) {', '.join(sorted(unknown))} not allowed with source = {source!r}")
    files = t.get("files")
    if not isinstance(files, list) or not files:
        raise ValueError("files must be a non-empty list of { name = ..., sha256 = ..., size = ... }")
    specs = tuple(_parse_file(f) for f in files)
    if len({f.name for f in specs}) != len(specs):
        raise ValueError("a file is listed twice")
    locations: list[Location] = []
    if source != "embedded":
        mirrors = t.get("mirrors", [])
        if not isinstance(mirrors, list) or not all(isinstance(m, dict) for m in mirrors):
            raise ValueError("mirrors must be a list of tables")
        primary = {k: t[k] for k in ("repo", "revision", "url") if k in t}
        locations = [_parse_location(loc, source) for loc in [primary, *mirrors]]
    if source == "url" and len(specs) != 1:
        raise ValueError("a url entry has exactly one file")
    requires = t.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise ValueError("requires must be a list of model names")
    return Entry(
        name=name,
        description=_text(t, "description"),
        license=_text(t, "license"),
        source=source,
        convert=_text(t, "convert"),
        files=specs,
        locations=tuple(locations),
        requires=tuple(requires),
        note=_text(t, "note", required=False),
    )


def _text(t: dict, key: str, required: bool = True) -> str:
    value = t.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _parse_file(f: object) -> FileSpec:
    if not isinstance(f, dict) or set(f) - {"name", "sha256", "size"}:
        raise ValueError(f"each file is {{ name = ..., sha256 = ..., size = ... }}, not {f!r}")
    name, sha256, size = f.get("name"), f.get("sha256"), f.get("size")
    safe_relpath(name)
    if (sha256 is None) != (size is None):
        raise ValueError(f"file {name}: give both sha256 and size, or neither (unpinned)")
    if sha256 is not None and not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
        raise ValueError(f"file {name}: sha256 must be 64 lowercase hex digits")
    if size is not None and (type(size) is not int or size < 0):
        raise ValueError(f"file {name}: size must be a whole number of bytes")
    return FileSpec(name, sha256, size)


def _parse_location(t: dict, source: str) -> Location:
    if source == "hub":
        repo, revision = t.get("repo"), t.get("revision")
        if set(t) - {"repo", "revision"} or not (isinstance(repo, str) and _REPO_ID.fullmatch(repo)):
            raise ValueError(f"a hub location is {{ repo = 'owner/name', revision = ... }}, not {t!r}")
        if revision is not None and not (isinstance(revision, str) and _HEX40.fullmatch(revision)):
            raise ValueError(
                f"revision of {repo} must be a 40-hex commit id (leave it out if unknown), not {revision!r}"
            )
        return Location(repo=repo, revision=revision)
    url = t.get("url")
    if set(t) != {"url"} or not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        raise ValueError(f"a url location is {{ url = 'https://...' }}, not {t!r}")
    return Location(url=url)


def safe_relpath(name: object) -> str:
    """Check that a file name is a plain relative path: it may never lead out of the cache folder."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a file name must be a non-empty string, not {name!r}")
    parts = name.split("/")
    if name.startswith("/") or any(c in name for c in "\\:\0") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe file name {name!r}: use a relative path without '..', '.', '\\' or ':'")
    return name


def _join(folder: Path, name: str) -> Path:
    """folder / name, refusing any name that would land outside folder."""
    try:
        return folder / safe_relpath(name)
    except ValueError as e:
        raise WeightsError(str(e)) from None


# ---------------------------------------------------------------------------------------------------
# Caches and environment (read at call time: huggingface_hub reads its variables once, at import)


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


def _downloads_dir(name: str) -> Path:
    """Where URL downloads and imported --local-file copies of model `name` live."""
    return vsrup_cache() / "downloads" / name


def bundle_dir(name: str, registry: str | Path | None = None) -> Path:
    """Where model `name`'s converted bundle lives (the package's assets for the embedded model)."""
    entry = get_entry(name, registry)
    return ASSETS if entry.source == "embedded" else vsrup_cache() / entry.name


# ---------------------------------------------------------------------------------------------------
# Verification


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | Path, sha256: str, size: int | None = None) -> None:
    """Raise WeightsError unless the file exists with exactly this size and sha256."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path} is missing")
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise WeightsError(f"{path.name} is {actual} bytes; weights.toml says {size}")
    digest = file_sha256(path)
    if digest != sha256:
        raise WeightsError(f"{path.name} has sha256 {digest}; weights.toml says {sha256}")


def _check(path: Path, f: FileSpec) -> None:
    """Verify a pinned file. Unpinned files were allowed up front (--trust-unverified); say so."""
    if f.pinned:
        verify_file(path, f.sha256, f.size)
    else:
        log.warning(
            "using %s unverified (not pinned in weights.toml): sha256 %s, %d bytes",
            f.name,
            file_sha256(path),
            path.stat().st_size,
        )


def _refuse_unpinned(entry: Entry) -> None:
    unpinned = [f.name for f in entry.files if not f.pinned]
    if unpinned and entry.source != "embedded":  # our own embedded files are trusted as shipped
        raise WeightsError(
            f"weights.toml pins no sha256 for {entry.name}: {', '.join(unpinned)}, so vsrup cannot verify"
            " them; a maintainer must pin them, or pass --trust-unverified to use them anyway"
        )


def _discard(path: Path) -> None:
    """Delete a bad download; for a hub cache link also its blob, so nothing corrupt stays cached."""
    target = path.resolve()
    path.unlink(missing_ok=True)
    target.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------
# Fetching files


class _SourceFailed(Exception):
    """One location could not deliver good files; the next one is tried."""


def fetch_files(
    entry: Entry,
    revision: str | None = None,
    local_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Return entry's files (name → verified local path), fetching what is not cached yet."""
    if entry.source == "embedded":
        if local_file or revision:
            raise UsageError(f"{entry.name!r} ships inside vsrup; there is nothing to download")
        return _embedded_files(entry)
    if local_file is not None:
        return _import_local(entry, Path(local_file).expanduser())
    locations = entry.locations
    if revision is not None:
        if entry.source != "hub":
            raise UsageError(
                f"--revision applies to hub models only; {entry.name!r} is a {entry.source} model"
            )
        locations = (Location(repo=locations[0].repo, revision=revision), *locations[1:])
    imported = _imported_files(entry)
    if imported is not None:
        return imported
    failures = []
    for location in locations:
        try:
            return _fetch_from(entry, location, cache_dir, progress)
        except _SourceFailed as e:
            failures.append(f"{location}: {e}")
    hint = (
        f"HF_HUB_OFFLINE is set and they are not cached; run `vsrup download-weights {entry.name}` online"
        if offline()
        else "or download the file yourself and pass --local-file"
    )
    raise WeightsError(f"could not get weights for {entry.name!r} ({'; '.join(failures)}); {hint}")


def _embedded_files(entry: Entry) -> dict[str, Path]:
    files = {f.name: _join(ASSETS, f.name) for f in entry.files}
    for f in entry.files:
        if not files[f.name].is_file():
            raise WeightsError(f"vsrup's package is missing {f.name}; reinstall vsrup")
        if f.pinned:  # a few MB: cheap enough to check on every load
            verify_file(files[f.name], f.sha256, f.size)
    return files


def _imported_files(entry: Entry) -> dict[str, Path] | None:
    """Files already downloaded from a URL or imported with --local-file, if all are there and good."""
    folder = _downloads_dir(entry.name)
    files = {f.name: _join(folder, f.name) for f in entry.files}
    if not all(p.is_file() for p in files.values()):
        return None
    for f in entry.files:
        try:
            _check(files[f.name], f)
        except WeightsError as e:
            log.warning("%s; deleting it and downloading again", e)
            _discard(files[f.name])
            return None
    return files


def _import_local(entry: Entry, src: Path) -> dict[str, Path]:
    """Verify the user's own copy (a file, or a folder in the repo's layout) and link it into the cache."""
    if src.is_dir():
        pairs = [(f, _join(src, f.name)) for f in entry.files]
    elif len(entry.files) == 1:
        pairs = [(entry.files[0], src)]
    else:
        names = ", ".join(f.name for f in entry.files)
        raise UsageError(f"{entry.name!r} has several files; give --local-file a folder holding {names}")
    for f, path in pairs:
        if not path.is_file():
            raise WeightsError(f"--local-file: {path} does not exist")
        _check(path, f)  # a bad file of the user's is reported, never deleted
    files = {}
    for f, path in pairs:
        dest = _join(_downloads_dir(entry.name), f.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)  # free when on the same disk
        except OSError:
            shutil.copyfile(path, tmp)
        tmp.replace(dest)
        files[f.name] = dest
    return files


def _fetch_from(
    entry: Entry, location: Location, cache_dir: str | Path | None, progress: Progress | None
) -> dict[str, Path]:
    files = {}
    for f in entry.files:
        if location.repo:
            path = _hub_file(location, f.name, cache_dir, progress)
        else:
            path = _url_file(location.url, _join(_downloads_dir(entry.name), f.name), f.size, progress)
        try:
            _check(path, f)
        except WeightsError as e:
            _discard(path)
            raise _SourceFailed(f"{e} (deleted it)") from None
        files[f.name] = path
    return files


def _hub_file(location: Location, name: str, cache_dir: str | Path | None, progress: Progress | None) -> Path:
    from huggingface_hub import hf_hub_download  # imported late: `vsrup --help` need not pay for it

    root = hub_cache(cache_dir)
    try:
        path = hf_hub_download(
            location.repo,
            safe_relpath(name),
            revision=location.revision,
            cache_dir=root,
            # huggingface_hub read HF_ENDPOINT and HF_HUB_OFFLINE when it was imported; pass today's.
            endpoint=(os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None,
            local_files_only=offline(),
            tqdm_class=_progress_bar(progress, name) if progress else None,
        )
    except Exception as e:  # any failure of this location (HTTP, network, cache) → try the next one
        raise _SourceFailed(_hub_reason(e)) from e
    if not Path(path).resolve().is_relative_to(root.resolve()):
        raise WeightsError(f"the hub cache returned {path}, outside {root}")
    return Path(path)


def _hub_reason(e: Exception) -> str:
    kind = type(e).__name__
    reasons = {
        "RepositoryNotFoundError": "repository not found (or private: set HF_TOKEN)",
        "GatedRepoError": "gated repository: accept its terms on the hub and set HF_TOKEN",
        "RevisionNotFoundError": "revision not found",
        "RemoteEntryNotFoundError": "file not found",
        "LocalEntryNotFoundError": "not in the cache and the hub is unreachable or offline mode is on",
    }
    return reasons.get(kind) or f"{kind}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def _progress_bar(progress: Progress, name: str) -> type:
    """A stand-in for tqdm that huggingface_hub accepts as tqdm_class: forwards bytes written to disk."""

    class Bar:
        def __init__(self, total: int | None = None, initial: int = 0, **_: object) -> None:
            self.total, self.n = total, initial

        def update(self, n: int = 1) -> None:
            self.n += n
            progress(name, self.n, self.total)

        def update_transfer(self, n: int = 1) -> None:
            pass  # network bytes of a Xet download; having this makes huggingface_hub use one bar

        def set_postfix_str(self, *args: object, **kwargs: object) -> None:
            pass

        set_transfer_postfix_str = refresh = close = set_postfix_str

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    return Bar


def _url_file(url: str, dest: Path, size: int | None, progress: Progress | None, attempts: int = 3) -> Path:
    """Download url to dest through dest.part, resuming with an HTTP Range request where it stopped."""
    if offline():
        raise _SourceFailed("not downloaded yet, and HF_HUB_OFFLINE is set")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _get(url, part, dest.name, size, progress)
            break
        except urllib.error.HTTPError as e:
            raise _SourceFailed(f"HTTP {e.code} {e.reason}") from e
        except (OSError, http.client.HTTPException) as e:  # dropped connection, timeout: resume
            if attempt == attempts:
                raise _SourceFailed(f"download kept failing ({e}); run again to resume") from e
            log.warning("download of %s interrupted (%s); resuming", dest.name, e)
    part.replace(dest)
    return dest


def _get(url: str, part: Path, name: str, size: int | None, progress: Progress | None) -> None:
    done = part.stat().st_size if part.exists() else 0
    if size is not None and done >= size:
        if done == size:
            return
        part.unlink()
        done = 0
    headers = {"User-Agent": "vsrup", **({"Range": f"bytes={done}-"} if done else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not done:
            raise
        part.unlink()  # the partial file does not fit the server's file: start over
        raise OSError("range not satisfiable; restarting") from e
    with response:
        if "text/html" in response.headers.get("Content-Type", ""):
            raise _SourceFailed(
                "the server sent a web page, not the file (Google Drive does this for large files);"
                " download it in a browser and pass --local-file"
            )
        if done and response.status != 206:
            done = 0  # the server ignored the Range header and sends the whole file
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else size
        with part.open("r+b" if done else "wb") as out:
            out.seek(done)
            out.truncate()
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(name, done, total)
    if total is not None and done != total:
        raise OSError(f"connection closed after {done} of {total} bytes")


# ---------------------------------------------------------------------------------------------------
# Download, convert, status


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
    entry = _pick(entries, name)
    needed = [entry, *(entries[r] for r in entry.requires)]
    if not trust_unverified:  # before any byte is downloaded
        for e in needed:
            _refuse_unpinned(e)
    if entry.convert != "none" and local_file is None and revision is None:
        if _bundle_state(entries, entry) == "ok":
            return bundle_dir(name, registry)
    files = fetch_files(entry, revision, local_file, cache_dir, progress)
    if entry.convert == "none":
        return _root(entry, files)
    specs = _input_specs(entries, entry)  # checks that no two models bring the same file name
    for required in entry.requires:
        files.update(fetch_files(entries[required], cache_dir=cache_dir, progress=progress))
    return _convert(entry, {key: (spec, files[key]) for key, spec in specs.items()})


def _root(entry: Entry, files: dict[str, Path]) -> Path:
    """The folder that holds entry's files in their repo layout."""
    first = entry.files[0].name
    return files[first].parents[first.count("/")]


def _input_specs(entries: dict[str, Entry], entry: Entry) -> dict[str, FileSpec]:
    """The converter's inputs: entry's files and those of the models it requires, by name."""
    specs: dict[str, FileSpec] = {}
    for e in (entry, *(entries[r] for r in entry.requires)):
        for f in e.files:
            if f.name in specs:
                raise WeightsError(f"{entry.name} and {e.name} in weights.toml both list a file {f.name}")
            specs[f.name] = f
    return specs


def _convert(entry: Entry, inputs: dict[str, tuple[FileSpec, Path]]) -> Path:
    """Run the entry's converter into a fresh folder and move it into place only when complete.

    The converter gets every input keyed by its path in its source repo, as weights.toml lists it
    ("model.pkl", "vae/diffusion_pytorch_model.safetensors", ...).
    """
    try:
        from vsrup.convert import convert  # late: torch and the checkpoint readers load only here
    except ImportError as e:
        raise WeightsError(f"this vsrup cannot convert {entry.name!r} ({e})") from e
    out = vsrup_cache() / entry.name
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


def _bundle_state(entries: dict[str, Entry], entry: Entry) -> str:
    """'ok', 'missing', or 'stale' (converted from files that weights.toml no longer pins)."""
    out = vsrup_cache() / entry.name
    try:
        source = json.loads((out / SOURCE_JSON).read_text())
    except (OSError, ValueError):
        return "missing"
    if not all((out / f).is_file() for f in BUNDLE_FILES):
        return "missing"
    pins = {name: f.sha256 for name, f in _input_specs(entries, entry).items()}
    recorded = source.get("files", {})
    if source.get("convert") != entry.convert or set(recorded) != set(pins):
        return "stale"
    if any(sha is not None and recorded[key] != sha for key, sha in pins.items()):
        return "stale"
    return "ok"


def require_bundle(name: str, registry: str | Path | None = None) -> Path:
    """The folder a model loader reads: the converted bundle, or the package assets for `tiny`."""
    entries = load_registry(registry)
    entry = _pick(entries, name)
    if entry.source == "embedded":
        _embedded_files(entry)
        return ASSETS
    if entry.convert == "none":
        raise UsageError(f"{name!r} is a base model used by conversion, not a model to load")
    state = _bundle_state(entries, entry)
    if state == "missing":
        raise WeightsError(f"weights for {name!r} are not converted; run: vsrup download-weights {name}")
    if state == "stale":
        raise WeightsError(
            f"weights for {name!r} were converted from files that weights.toml no longer pins;"
            f" run: vsrup download-weights {name}"
        )
    return vsrup_cache() / name


def _cached_files(entry: Entry, cache_dir: str | Path | None) -> dict[str, Path] | None:
    """Where all of entry's files already are on disk (not hashed), or None."""
    if entry.source == "embedded":
        files = {f.name: _join(ASSETS, f.name) for f in entry.files}
        return files if all(p.is_file() for p in files.values()) else None
    files = {f.name: _join(_downloads_dir(entry.name), f.name) for f in entry.files}
    if all(p.is_file() for p in files.values()):
        return files
    from huggingface_hub import try_to_load_from_cache

    for loc in entry.locations:
        if loc.repo:
            found = {
                f.name: try_to_load_from_cache(
                    loc.repo, f.name, cache_dir=hub_cache(cache_dir), revision=loc.revision
                )
                for f in entry.files
            }
            if all(isinstance(p, str) for p in found.values()):
                return {k: Path(p) for k, p in found.items()}
    return None


def status(name: str, cache_dir: str | Path | None = None, registry: str | Path | None = None) -> dict:
    """What `vsrup models` shows for one model; converted is None for models that need no conversion."""
    entries = load_registry(registry)
    entry = _pick(entries, name)
    cached = _cached_files(entry, cache_dir)
    size = entry.size
    if size is None and cached is not None:
        size = sum(p.stat().st_size for p in cached.values())
    converted = None if entry.convert == "none" else _bundle_state(entries, entry) == "ok"
    if converted:
        path = vsrup_cache() / entry.name
    else:
        path = _root(entry, cached) if converted is None and cached is not None else None
    return {
        "name": entry.name,
        "description": entry.description,
        "license": entry.license,
        "source": entry.source,
        "size": size,
        "pinned": entry.pinned,
        "cached": cached is not None,
        "converted": converted,
        "ready": converted if converted is not None else cached is not None,
        "requires": list(entry.requires),
        "path": str(path) if path else None,  # the bundle, or the files of a model with no converter
    }


def list_models(cache_dir: str | Path | None = None, registry: str | Path | None = None) -> list[dict]:
    return [status(name, cache_dir, registry) for name in load_registry(registry)]


def download_weights(
    names: list[str],
    all_: bool = False,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    local_file: str | Path | None = None,
    trust_unverified: bool = False,
    progress: Progress | None = None,
    registry: str | Path | None = None,
) -> list[dict]:
    """`vsrup download-weights`: download, verify and convert the named models; return their status."""
    entries = load_registry(registry)
    if all_ == bool(names):
        raise UsageError(
            f"name the models to download or pass --all (not both); models: {', '.join(entries)}"
        )
    chosen = list(entries) if all_ else list(dict.fromkeys(names))
    for name in chosen:
        _pick(entries, name)
    if (revision or local_file) and len(chosen) != 1:
        raise UsageError("--revision and --local-file apply to one model at a time")
    for name in chosen:
        download(name, revision, local_file, cache_dir, progress, trust_unverified, registry)
    return [status(name, cache_dir, registry) for name in chosen]


# ---------------------------------------------------------------------------------------------------
# Maintainer helper: python -m vsrup.weights --refresh-embedded


def refresh_embedded(registry: str | Path = REGISTRY, assets: Path | None = None) -> list[str]:
    """Rewrite sha256 and size of the embedded entries' files from the files now in `assets`.

    Edits the text line by line, so comments and layout stay; each file's { ... } must be on the
    line that holds its name.
    """
    registry, assets = Path(registry), assets or ASSETS
    entries = load_registry(registry)
    lines = registry.read_text(encoding="utf-8").splitlines(keepends=True)
    headers = {m[1]: n for n, line in enumerate(lines) if (m := _TABLE_HEADER.match(line))}
    refreshed = []
    for entry in entries.values():
        if entry.source != "embedded":
            continue
        for f in entry.files:
            path = _join(assets, f.name)
            if not path.is_file():
                continue
            n = _file_line(lines, headers[entry.name], f.name)
            table = f'{{ name = "{f.name}", sha256 = "{file_sha256(path)}", size = {path.stat().st_size} }}'
            old = re.search(r"\{[^{}]*\}", lines[n])
            lines[n] = lines[n][: old.start()] + table + lines[n][old.end() :]
            refreshed.append(f.name)
    registry.write_text("".join(lines), encoding="utf-8")
    load_registry(registry)  # the result must still validate
    return refreshed


def _file_line(lines: list[str], start: int, name: str) -> int:
    pattern = re.compile(r'\{[^{}]*name\s*=\s*"' + re.escape(name) + r'"[^{}]*\}')
    for n in range(start + 1, len(lines)):
        if lines[n].lstrip().startswith("["):
            break
        if pattern.search(lines[n]):
            return n
    raise WeightsError(f"cannot find the line of {name} in weights.toml; keep each file on its own line")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vsrup.weights", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--refresh-embedded",
        action="store_true",
        help="pin sha256 and size of the embedded model's files from src/vsrup/assets/",
    )
    parser.add_argument("--registry", default=REGISTRY, type=Path, help="weights.toml to edit")
    args = parser.parse_args(argv)
    if not args.refresh_embedded:
        parser.print_help()
        return 2
    refreshed = refresh_embedded(args.registry)
    print(f"pinned {', '.join(refreshed) or 'nothing (no embedded files found)'} in {args.registry}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
