"""Checking files against the sha256 and size pinned in weights.toml, and refusing unpinned ones."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from vsrup.errors import WeightsError
from vsrup.weights.registry import Entry, FileSpec

log = logging.getLogger("vsrup.weights")


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


def check(path: Path, f: FileSpec) -> None:
    """Verify a pinned file. Unpinned files were allowed up front (--trust-unverified, or the user's
    own copy); say so, with the sha256 a maintainer would pin."""
    if f.pinned:
        verify_file(path, f.sha256, f.size)
    else:
        log.warning(
            "using %s unverified (not pinned in weights.toml): sha256 %s, %d bytes",
            f.name,
            file_sha256(path),
            path.stat().st_size,
        )


def unpinned(entry: Entry) -> list[str]:
    """Names of entry's files that weights.toml pins no sha256 for (our embedded files are trusted)."""
    return [] if entry.source == "embedded" else [f.name for f in entry.files if not f.pinned]


def refuse_unpinned(downloads: list[Entry], model: Entry) -> None:
    """Refuse to download files vsrup cannot verify (before any byte is fetched), naming every way
    forward for `model`, the model asked for."""
    missing = [f"{e.name}: {_some(names, len(e.files))}" for e in downloads if (names := unpinned(e))]
    if missing:
        raise WeightsError(
            f"weights.toml pins no sha256 for {'; '.join(missing)}, so vsrup cannot verify a download;"
            f" pass --trust-unverified to download them anyway, or use your own copies:"
            f" {own_copies_hint(model)}"
        )


def _some(names: list[str], total: int) -> str:
    return f"all {total} files" if len(names) == total > 2 else ", ".join(names)


def own_copies_hint(entry: Entry) -> str:
    """The routes that need no download: the user's own checkpoint (and base model folder)."""
    if not entry.requires:
        return f"`vsrup download-weights {entry.name} --local-file FILE_OR_FOLDER`"
    return (
        f"`vsrup download-weights {entry.name} --local-file CHECKPOINT --base-dir BASE_DIR`"
        f" or `vsrup convert {entry.name} --checkpoint CHECKPOINT --base BASE_DIR`"
        f" (BASE_DIR: a local {', '.join(entry.requires)} folder in the diffusers layout)"
    )


def discard(path: Path) -> None:
    """Delete a bad download; for a hub cache link also its blob, so nothing corrupt stays cached."""
    target = path.resolve()
    path.unlink(missing_ok=True)
    target.unlink(missing_ok=True)
