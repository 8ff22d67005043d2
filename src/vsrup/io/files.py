"""Output files that are either complete or absent: refuse clobbering before any work, write to a
hidden temporary beside the target, rename into place only when the whole file is done. An image
sequence is written the same way, as a folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vsrup.errors import InputError, OutputError
from vsrup.io.sequence import is_pattern, names_image_of


def check_output(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse before any work if the output would clobber something or cannot be written."""
    if is_pattern(target):
        _check_sequence_output(source, target, overwrite)
    else:
        if source.resolve() == target.resolve():
            raise OutputError(f"output would overwrite the input: {target}")
        if target.is_dir():
            raise OutputError(f"output is a folder: {target}")
        if target.exists() and not overwrite:
            raise OutputError(f"output exists: {target} (use --overwrite to replace it)")
    if not source.exists() and not is_pattern(source):
        raise InputError(f"input not found: {source}")
    folder = output_path(target).parent
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


def output_path(target: Path) -> Path:
    """What an output occupies: the file, or the folder of an image sequence (`out/%06d.png`)."""
    return target.parent if is_pattern(target) else target


def output_exists(target: Path) -> bool:
    """Whether `target` was written already (outputs are only ever complete, so it is whole)."""
    if is_pattern(target):
        return target.parent.is_dir() and any(target.parent.iterdir())
    return target.exists()


def _check_sequence_output(source: Path, target: Path, overwrite: bool) -> None:
    """An image sequence is written into a folder of its own. A folder that holds anything is an
    existing output; --overwrite replaces it only when it holds nothing but images of this
    output's pattern, so a typo can never delete a folder of other work (or the input)."""
    folder = target.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder is a file: {folder}")
    if is_pattern(source) and source.parent.resolve() == folder.resolve():
        raise OutputError(f"output would overwrite the input: {folder} (write the images to another folder)")
    held = list(folder.iterdir()) if folder.is_dir() else []
    if held and not overwrite:
        raise OutputError(f"output exists: {folder} (use --overwrite to replace it)")
    strangers = [p.name for p in held if not names_image_of(target, p.name)]
    if strangers:
        raise OutputError(
            f"output folder {folder} holds other files ({strangers[0]}); --overwrite replaces only a "
            "folder of this output's images: write the images to a new folder"
        )


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
    if is_pattern(target):
        with _atomic_folder(target.parent) as partial:
            yield partial / target.name
        return
    partial = target.with_name(f".{target.stem}.vsrup-partial{target.suffix}")
    try:
        yield partial
        os.replace(partial, target)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, InputError):
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise


@contextlib.contextmanager
def _atomic_folder(folder: Path) -> Iterator[Path]:
    """`atomic_output` for a folder (an image sequence): a hidden temporary folder beside it,
    renamed into place when complete; the folder it replaces (`--overwrite`) is removed only then."""
    partial = folder.with_name(f".{folder.name}.vsrup-partial")
    old = folder.with_name(f".{folder.name}.vsrup-replaced")
    for debris in (partial, old):  # of a killed run
        shutil.rmtree(debris, ignore_errors=True)
    try:
        partial.mkdir()
        yield partial
        if folder.exists():
            os.replace(folder, old)
        os.replace(partial, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, InputError):
            raise OutputError(f"cannot write {folder}: {exc.strerror or exc}") from None
        raise
