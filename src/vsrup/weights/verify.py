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


def refuse_unpinned(entry: Entry) -> None:
    unpinned = [f.name for f in entry.files if not f.pinned]
    if unpinned and entry.source != "embedded":  # our own embedded files are trusted as shipped
        raise WeightsError(
            f"weights.toml pins no sha256 for {entry.name}: {', '.join(unpinned)}, so vsrup cannot verify"
            " them; a maintainer must pin them, or pass --trust-unverified to use them anyway"
        )


def discard(path: Path) -> None:
    """Delete a bad download; for a hub cache link also its blob, so nothing corrupt stays cached."""
    target = path.resolve()
    path.unlink(missing_ok=True)
    target.unlink(missing_ok=True)
