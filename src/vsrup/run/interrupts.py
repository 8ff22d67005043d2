"""Ctrl-C and SIGTERM: both unwind the same way, so temporaries are removed and finished segments
kept, and the command exits with the code a shell expects."""

from __future__ import annotations

import signal
import threading

from vsrup.errors import Interrupted


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a service stop, `timeout`), raised like Ctrl-C so the same cleanup runs."""


def treat_sigterm_as_interrupt() -> None:
    """Let SIGTERM unwind like Ctrl-C: temporaries are removed and finished segments kept, instead
    of the process vanishing mid-write."""

    def handler(signum, frame):
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def interrupted(exc: KeyboardInterrupt, resume: bool) -> Interrupted:
    """The one-line error for Ctrl-C (exit 130) or SIGTERM (exit 143, as the shell reports it)."""
    what = "terminated" if isinstance(exc, Terminated) else "interrupted"
    kept = ""
    if resume:  # promise only what was kept: the first segment may not have been finished yet
        frames = getattr(exc, "kept_frames", None)  # set where a resumable job was running
        if frames is None:
            kept = "; rerun with --resume to continue from any finished segments"
        elif frames:
            kept = f"; {frames} finished frames are kept: rerun with --resume to continue"
        else:
            kept = "; no segment was finished yet, so a rerun starts over"
    error = Interrupted(f"{what}; no partial output was left behind{kept}")
    if isinstance(exc, Terminated):
        error.exit_code = 128 + signal.SIGTERM
    return error
