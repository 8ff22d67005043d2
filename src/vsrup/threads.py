"""Run decoding and encoding beside inference: background threads joined by bounded queues.

PyAV releases the GIL while it decodes and encodes, so a decode thread and an encode thread keep
the model busy. The queues are bounded, so a slow stage makes the others wait instead of buffering
the whole video in memory. An error in a thread is raised again in the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate `items` in a background thread, keeping at most `depth` ready."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Put unless the consumer has gone away (a blocking put would hang this thread forever)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            offer(_Failure(exc))

    thread = threading.Thread(target=produce, name="vsrup-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class BackgroundSink:
    """Calls `consume(item)` for each `put` item in a background thread, in order."""

    def __init__(self, consume: Callable[[T], None], depth: int = 4) -> None:
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._aborted = False  # set by abort(): drop what is queued instead of consuming it
        self._thread = threading.Thread(target=self._run, name="vsrup-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None and not self._aborted:
                try:
                    self._consume(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the producer
                    self._error = exc

    def put(self, item: T) -> None:
        self._raise_if_failed()
        self._queue.put(item)

    def close(self) -> None:
        """Wait for every queued item to be consumed; raise the consumer's error if any."""
        self._queue.put(_DONE)
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop without consuming what is still queued (the output is being discarded)."""
        self._aborted = True
        self._queue.put(_DONE)
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
