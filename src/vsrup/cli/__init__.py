"""The `vsrup` command line: parses options and calls library functions; no logic of its own.

Every user-facing failure is a `VsrupError`: `main` prints it on one line and exits with its code
(see README, "Exit codes"); `--debug` shows the traceback instead. Each command lives in a module of
this package; the options several share are declared once in `options`.
"""

from __future__ import annotations

import sys

import typer

from vsrup.cli import tools, upscale, weights  # noqa: F401 - registers the commands
from vsrup.cli.app import app, state
from vsrup.errors import Interrupted, UsageError, VsrupError

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: one-line errors with distinct exit codes."""
    try:
        # Not standalone, the parser *returns* the code of an in-command exit instead of raising.
        code = app(standalone_mode=False)
    except VsrupError as exc:
        _fail(exc, exc)
    except KeyboardInterrupt as exc:
        _fail(exc, Interrupted("interrupted; no partial output was left behind"))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort as exc:
        _fail(exc, Interrupted("aborted"))
    except Exception as exc:  # usage errors from the parser, and anything unexpected
        if callable(getattr(exc, "show", None)):  # the parser's own usage message
            exc.show()
            sys.exit(UsageError.exit_code)
        _fail(
            exc, VsrupError(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)")
        )
    if code == Interrupted.exit_code:
        _fail(KeyboardInterrupt(), Interrupted("interrupted; no partial output was left behind"))
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(original: BaseException, error: VsrupError) -> None:
    if state["debug"]:
        import traceback

        traceback.print_exception(original)
    print(f"vsrup: error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
