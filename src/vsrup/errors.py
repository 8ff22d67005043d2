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


class Interrupted(VsrupError):
    exit_code = 130
