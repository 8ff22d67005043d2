"""The local executor: one loaded model, the files one after another in this process."""

from __future__ import annotations

import logging
import time

from vsrup.errors import VsrupError
from vsrup.progress import Reporter
from vsrup.run.executor import Executor
from vsrup.run.jobs import Job, Outcome, ended

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    in_order = True  # one file after another

    def run(self, jobs: list[Job], reporter: Reporter, single: bool) -> list[Outcome]:
        """Upscale every job with one loaded model. One input file raises its own error; in a batch a
        failed file is recorded and the batch goes on."""
        from vsrup.upscale import Upscaler  # torch is heavy: only once the paths make sense

        upscaler = Upscaler(self.settings)  # the model loads once for every file
        for job in jobs:
            if single:
                try:
                    result = upscaler.upscale_file(job.source, job.target, reporter)
                except VsrupError as exc:  # the command prints the error; JSON also gets `finish`
                    reporter.failed(ended(job, exc).as_dict())
                    raise
                outcome = Outcome(
                    job.source, job.target, "done", frames=result.frames, seconds=result.seconds
                )
            else:
                outcome = _run_one(upscaler, job, reporter)
                if outcome.status != "done":
                    reporter.outcome(outcome.as_dict())
            self.finished.append(outcome)
        return self.finished


def _run_one(upscaler, job: Job, reporter: Reporter) -> Outcome:
    started = time.perf_counter()
    try:
        result = upscaler.upscale_file(job.source, job.target, reporter)
    except VsrupError as exc:
        return ended(job, exc)
    except Exception as exc:  # noqa: BLE001 - one odd file must not end an overnight batch
        log.debug("unexpected failure on %s", job.source, exc_info=True)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return Outcome(job.source, job.target, "failed", error=message, exit_code=1)
    seconds = time.perf_counter() - started
    return Outcome(job.source, job.target, "done", frames=result.frames, seconds=seconds)
