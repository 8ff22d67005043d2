"""The one interface every way of running `upscale` implements: `LocalExecutor` (this process),
`DevicesExecutor` (one process per device) and `RayExecutor` (actors on a Ray cluster).

`upscale_paths` knows an executor only through this class: `run` does the jobs, and after Ctrl-C
`finished` and `in_order` say which jobs ended and how the rest stood, for the batch summary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from vsrup.progress import Reporter
from vsrup.run.jobs import Job, Outcome


class Executor(ABC):
    # True: jobs run one after another, so after Ctrl-C the first job without an outcome was in
    # progress and the rest had not started. False: jobs run side by side, all were in progress.
    in_order: ClassVar[bool]

    def __init__(self, settings) -> None:
        self.settings = settings
        # The outcomes of jobs that ended, as they end: what the caller still has when Ctrl-C
        # stops `run` before it returns.
        self.finished: list[Outcome] = []

    @abstractmethod
    def run(self, jobs: list[Job], reporter: Reporter, single: bool) -> list[Outcome]:
        """One outcome per job. `single` (one input file): a failure raises its own error, with its
        own exit code; in a batch a failed file is recorded and the others go on."""
