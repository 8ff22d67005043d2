"""User-facing errors. Each kind has its own exit code (documented in the README); the CLI prints
the message on one line and exits with the code, with no traceback unless --debug."""

from __future__ import annotations


class VsrupError(Exception):
    exit_code = 1


class UsageError(VsrupError):
    """Invalid options or option combinations."""

    exit_code = 2


class InputError(VsrupError):
    """The input is missing, not a video, corrupt, or has no video frames."""

    exit_code = 3


class OutputError(VsrupError):
    """The output exists (without --overwrite), is not writable, or the disk is full."""

    exit_code = 4


class WeightsError(VsrupError):
    """Weights are missing, corrupt, fail their checksum, or cannot be downloaded."""

    exit_code = 5


class DeviceError(VsrupError):
    """The requested device is absent, or memory ran out after every fallback."""

    exit_code = 6


class BatchError(VsrupError):
    """At least one file of a batch failed (the others were done)."""

    exit_code = 7


class InputDamaged(VsrupError):
    """The input is damaged (truncated, bad packets): every frame that could be decoded was upscaled
    and the output written with them, but frames are missing. A batch records it and goes on."""

    exit_code = 8

    def __init__(self, message: str, frames: int = 0, seconds: float = 0.0) -> None:
        super().__init__(message)
        self.frames, self.seconds = frames, seconds


class Interrupted(VsrupError):
    exit_code = 130


def rebuild(name: str, message: str) -> VsrupError:
    """An error that crossed a process boundary (a `--devices` worker, a Ray actor) as its class name
    and message, made again as the same VsrupError subclass, so it keeps its exit code."""
    kind = globals().get(name)
    if isinstance(kind, type) and issubclass(kind, VsrupError):
        return kind(message)
    return VsrupError(message)


def describe(exc: BaseException, where: str) -> tuple[str, str]:
    """(class name, message) of an error raised in a worker on `where`, for `rebuild` in the parent."""
    if isinstance(exc, VsrupError):
        return type(exc).__name__, f"{where}: {exc}"
    return "VsrupError", f"{where}: internal error: {type(exc).__name__}: {exc}"
