"""The weights.toml registry: its schema (Entry, FileSpec, Location), parsing and validation.

One [models.NAME] table per model; every error names the file, the line of the table and the entry.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from vsrup.errors import UsageError, WeightsError

# A link to the top-level weights.toml (a wheel gets a copy), so installed packages find it too.
REGISTRY = Path(__file__).parent.parent / "weights.toml"

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_COMMON_KEYS = {"description", "license", "source", "convert", "files", "requires", "note", "approx_size"}
_SOURCE_KEYS = {"embedded": set(), "hub": {"repo", "revision", "mirrors"}, "url": {"url", "mirrors"}}


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
    convert: str  # converter name for vsrup.models.convert, or "none"
    files: tuple[FileSpec, ...]
    locations: tuple[Location, ...] = ()  # in the order to try: the primary, then the mirrors
    requires: tuple[str, ...] = ()
    note: str = ""
    approx_size: int | None = None  # bytes, for `vsrup models` while the files are not pinned

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
    lines = {m[1]: text.count("\n", 0, m.start()) + 1 for m in TABLE_HEADER.finditer(text)}
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


TABLE_HEADER = re.compile(r'^[ \t]*\[[ \t]*models[ \t]*\.[ \t]*"?([^"\]\s]+)"?[ \t]*\]', re.M)


def get_entry(name: str, registry: str | Path | None = None) -> Entry:
    return pick(load_registry(registry), name)


def pick(entries: dict[str, Entry], name: str) -> Entry:
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
        approx_size=_approx_size(t.get("approx_size")),
    )


def _approx_size(value: object) -> int | None:
    if value is not None and (type(value) is not int or value <= 0):
        raise ValueError("approx_size must be a positive whole number of bytes")
    return value


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


def join_inside(folder: Path, name: str) -> Path:
    """folder / name, refusing any name that would land outside folder."""
    try:
        return folder / safe_relpath(name)
    except ValueError as e:
        raise WeightsError(str(e)) from None
