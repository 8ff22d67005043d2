"""Output files that are either complete or absent: refuse clobbering before any work, write to a
hidden temporary beside the target, rename into place only when the whole file is done."""

from __future__ import annotations

import contextlib
import os
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
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")


@contextlib.contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """Folders that do not exist when the block starts (`folder` and its missing parents) are removed
    again, deepest first, if the block fails and they are empty: a failed run leaves no folder it
    created, and a folder that was there before (the user's) is never touched."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for made in missing:
            try:
                made.rmdir()
            except OSError:  # not empty (another job's output), or never made
                if made.exists():
                    break
        raise


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
