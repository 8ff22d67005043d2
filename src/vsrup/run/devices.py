"""The `--devices` executor: segments of every file on one worker process per device of this machine.

Every input video is cut into a few segments per device (`run.segmented`); one worker process per
device loads the model once and takes segments — of every file of a batch — from the parent as it
frees up, so a fast GPU simply does more of them. Workers send their progress to the parent, which
drives the one reporter (one bar, one JSON stream). A worker that dies is started again and its
segment retried; one that cannot load the model ends the run.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from dataclasses import replace

from vsrup.errors import DeviceError, UsageError, describe, rebuild
from vsrup.progress import Reporter
from vsrup.run.segmented import (
    FileWork,
    Meter,
    SegmentedExecutor,
    SegmentRunner,
    SegmentTask,
)

RETRIES = 3  # restarts of a dead worker (per device), each retrying the segment it held
_POLL_S = 0.2


def parse_devices(spec: str) -> list[str]:
    """`cuda:0,cuda:1`, `cpu,cpu` or `all` (every CUDA GPU) → the list of device names."""
    import torch

    spec = spec.strip()
    if spec == "all":
        count = torch.cuda.device_count()
        if count == 0:
            raise DeviceError("--devices all found no CUDA GPU (use --devices cpu,cpu to test on the CPU)")
        return [f"cuda:{i}" for i in range(count)]
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise UsageError("--devices needs a list such as cuda:0,cuda:1 (or all)")
    for name in names:
        if name.split(":")[0] not in ("cpu", "cuda"):
            raise UsageError(f"--devices: unknown device {name!r}; use cpu, cuda:N or all")
    return names


class DevicesExecutor(SegmentedExecutor):
    def __init__(self, settings, devices: list[str], **options) -> None:
        """`options`: SegmentedExecutor's (`per_worker`, `run_segment`)."""
        super().__init__(settings, **options)
        self.devices = devices

    @contextlib.contextmanager
    def workers(self) -> Iterator[_Pool]:
        pool = _Pool(replace(self.settings, overwrite=True), self.devices, self.run_segment)
        try:
            yield pool
        finally:
            pool.stop()


class _Pool:
    """One worker process per device, started when there is work. Each has its own inbox, so the
    parent always knows which segment a worker holds; all share one event queue back. Both are
    SimpleQueues: a put is written at once, so nothing a worker said before dying is lost."""

    def __init__(self, settings, devices: list[str], run_segment: SegmentRunner) -> None:
        self.ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
        self.settings, self.devices, self.run_segment = settings, devices, run_segment
        self.size = len(devices)
        self.events = self.ctx.SimpleQueue()
        self.cpu_threads = max(1, (os.cpu_count() or 1) // max(1, devices.count("cpu")))
        self.procs: list = [None] * len(devices)
        self.inboxes: list = [None] * len(devices)
        self.current: list[int | None] = [None] * len(devices)  # the task each worker holds
        self.restarts = [0] * len(devices)

    def run(self, tasks: list[SegmentTask], works: list[FileWork], meter: Meter, reporter: Reporter) -> None:
        """Start one process per device and hand each worker its next segment when it asks. A
        failed segment marks its file failed; a worker that dies is started again and its segment
        retried (up to RETRIES times per device); one that cannot load the model ends the run."""
        for slot in range(self.size):
            self._start(slot)
        pending, done = collections.deque(range(len(tasks))), 0
        while done < len(tasks):
            event = self.next_event()
            if event is None:  # nothing to read: a good moment to look for dead workers
                for task_id in self.restart_dead(reporter):
                    pending.appendleft(task_id)
                continue
            kind, slot = event[0], event[1]
            if kind == "ready" and pending:
                task_id = pending.popleft()
                self.send(slot, task_id, tasks[task_id])
            elif kind == "advance":
                meter.add(event[2], event[3])
            elif kind in ("done", "failed"):
                done += 1
                self.current[slot] = None
                meter.complete(event[2])
                if kind == "failed":  # one segment: its file fails, the rest goes on
                    works[tasks[event[2]].file].fail(rebuild(event[3], event[4]))
            elif kind == "message":
                reporter.message(event[2])
            elif kind == "fatal":  # could not load the model: every worker would fail alike
                raise rebuild(event[2], event[3])

    def _start(self, slot: int) -> None:
        inbox = self.ctx.SimpleQueue()
        args = (
            slot,
            self.devices[slot],
            self.settings,
            self.run_segment,
            inbox,
            self.events,
            self.cpu_threads,
        )
        proc = self.ctx.Process(target=_worker, args=args, name=f"vsrup-{self.devices[slot]}", daemon=True)
        proc.start()
        self.procs[slot], self.inboxes[slot], self.current[slot] = proc, inbox, None

    def next_event(self):
        if self.events.empty():
            time.sleep(_POLL_S / 4)
            return None
        return self.events.get()

    def send(self, slot: int, task_id: int, task: SegmentTask) -> None:
        self.current[slot] = task_id
        self.inboxes[slot].put((task_id, task))

    def restart_dead(self, reporter: Reporter) -> list[int]:
        """Start dead workers again; return the tasks they held, to be handed out again."""
        lost = []
        for slot, proc in enumerate(self.procs):
            if proc.exitcode is None:
                continue
            device = self.devices[slot]
            if self.restarts[slot] >= RETRIES:
                raise DeviceError(f"the {device} worker died {RETRIES + 1} times (exit code {proc.exitcode})")
            self.restarts[slot] += 1
            reporter.message(f"{device}: worker died (exit code {proc.exitcode}); starting it again")
            if self.current[slot] is not None:
                lost.append(self.current[slot])
            self._start(slot)
        return lost

    def stop(self) -> None:
        for slot, proc in enumerate(self.procs):
            if proc is not None and proc.is_alive():
                with contextlib.suppress(Exception):
                    self.inboxes[slot].put(None)
        for proc in filter(None, self.procs):
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


class _QueueReporter(Reporter):
    """Sends a worker's progress, tagged with its task, to the parent process."""

    def __init__(self, events, slot: int) -> None:
        super().__init__()
        self.events, self.slot, self.task = events, slot, None

    def advance(self, frames: int, stage: str = "upscale") -> None:
        if frames:
            self.events.put(("advance", self.slot, self.task, frames))

    def message(self, text: str) -> None:
        self.events.put(("message", self.slot, text))


def _worker(
    slot: int, device: str, settings, run_segment: SegmentRunner, inbox, events, cpu_threads: int
) -> None:
    """One device: load the model once, then upscale the segments the parent sends until None."""
    import signal

    import torch

    # Ctrl-C reaches the whole process group: the parent alone handles it (it stops the workers and
    # removes their segment files), so a worker does not print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from vsrup.upscale import Upscaler

    if device == "cpu":
        torch.set_num_threads(cpu_threads)  # CPU workers share the cores instead of fighting
    try:
        upscaler = Upscaler(replace(settings, device=device))
        if upscaler.device.type == "cuda" and upscaler.device.index is not None:
            torch.cuda.set_device(upscaler.device)  # compile/Triton contexts go to this GPU, not GPU 0
    except Exception as exc:  # noqa: BLE001 - reported in the parent, which exits cleanly
        events.put(("fatal", slot, *describe(exc, device)))
        return
    reporter = _QueueReporter(events, slot)
    while True:
        events.put(("ready", slot))
        item = inbox.get()
        if item is None:
            return
        task_id, task = item
        reporter.task = task_id
        try:
            run_segment(upscaler, task, reporter)
            events.put(("done", slot, task_id))
        except Exception as exc:  # noqa: BLE001 - this file fails, the next may be fine
            events.put(("failed", slot, task_id, *describe(exc, device)))
