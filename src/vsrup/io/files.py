"""Output files that are either complete or absent: refuse clobbering before any work, write to a
hidden temporary beside the target, rename into place only when the whole file is done."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vsrup.errors import InputError, OutputError


def check_output(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse before any work if the output would clobber something or cannot be written."""
    if source.resolve() == target.resolve():
        raise OutputError(f"output would overwrite the input: {target}")
    if target.is_dir():
        raise OutputError(f"output is a folder: {target}")
    if target.exists() and not overwrite:
        raise OutputError(f"output exists: {target} (use --overwrite to replace it)")
    if not source.exists():
        raise InputError(f"input not found: {source}")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror}") from None
    check_writable(folder)


def check_writable(folder: Path) -> None:
    """Raise OutputError unless a file can be created in `folder` (or, while it does not exist yet,
    in the nearest folder above it). Tried for real, not by permission bits: root passes every
    `os.access` test, yet cannot create files in /proc or on a read-only mount."""
    here = Path(folder).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise OutputError(f"output folder is not writable: {folder} ({here} is not a folder)")
    try:
        with tempfile.NamedTemporaryFile(dir=here, prefix=".vsrup-write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"output folder is not writable: {folder} ({exc.strerror or exc})") from None


@contextlib.contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it into place only if the block succeeds.

    On any error or interrupt the temporary file is removed and `target` is left as it was.
    """
    partial = target.with_name(f".{target.stem}.vsrup-partial{target.suffix}")
    try:
        yield partial
        os.replace(partial, target)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, InputError):
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
