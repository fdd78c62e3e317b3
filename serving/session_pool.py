"""Sessions a service worker runs requests on: one wide session while requests come one at a time,
narrow ones side by side once they queue.

Measured on this project's 2-core box (``unet-small-synth-defects``, 512x512 frames, ONNX Runtime,
idle threads not spinning): one session on 2 threads runs 42.6 frames/s one frame at a time, and two
callers sharing it only 45.5 (a 2-thread intra-op pool spends much of each frame synchronising);
two 1-thread sessions run side by side give 53.8 frames/s, but a lone request then takes 37 ms
instead of 23. So a worker keeps both: the *wide* session (all its threads) for a request that
finds nothing running and nobody waiting, and ``streams`` *narrow* sessions (``threads // streams``
threads each) that take the requests arriving while another one runs. Under a steady queue every
frame runs narrow; when the queue drains, the next request gets the wide session again. A wide run
holds every slot, so wide and narrow never oversubscribe the cores.

``streams=1`` is one session behind a lock, as a worker was before (and the choice on a GPU).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

Session = TypeVar("Session")


def default_streams(asked: int | None, threads: int, on_gpu: bool) -> int:
    """Narrow sessions per worker: ``asked`` when given, else one per thread on a CPU and 1 on a GPU
    (a GPU runs one frame at a time best; side by side, its frames would only queue on the device)."""
    if asked is not None:
        return asked
    return 1 if on_gpu else threads


class SessionPool(Generic[Session]):
    """One wide session and ``streams`` narrow ones; :meth:`session` lends one per inference."""

    def __init__(self, open_session: Callable[[int], Session], threads: int, streams: int = 1) -> None:
        if threads < 1 or streams < 1:
            raise ValueError(f"threads and streams must be >= 1, got {threads} and {streams}")
        self.threads, self.streams = threads, streams
        self.narrow_threads = max(1, threads // streams)
        self.wide: Session = open_session(threads)
        self.narrow: list[Session] = [open_session(self.narrow_threads) for _ in range(streams)] if streams > 1 else []
        self._free = list(self.narrow)
        self._wide_busy = False
        self._waiting = 0
        self._wide_waiting = 0  # a tile waiting for the wide session: narrow runs stop starting
        self._queue: deque[int] = deque()  # tickets of requests waiting for a narrow session, first come first served
        self._tickets = itertools.count()
        self._changed = threading.Condition()
        self.runs = {"wide": 0, "narrow": 0}

    def _idle(self) -> bool:
        return not self._wide_busy and len(self._free) == len(self.narrow)

    def _narrow_free(self) -> bool:
        return not self._wide_busy and not self._wide_waiting and bool(self._free)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for one inference: the wide one when nothing runs and nobody waits (or when the
        pool has no narrow ones), else the next free narrow one, waiting for it if need be."""
        with self._changed:
            contended = self._waiting > 0 or not self._idle()
            self._waiting += 1
            try:
                if not self.narrow or not contended:
                    self._changed.wait_for(self._idle)
                    chosen, wide = self.wide, True
                    self._wide_busy = True
                else:
                    ticket = next(self._tickets)
                    self._queue.append(ticket)
                    try:
                        self._changed.wait_for(lambda: self._queue[0] == ticket and self._narrow_free())
                    finally:
                        self._queue.remove(ticket)
                    chosen, wide = self._free.pop(), False
                    self._changed.notify_all()  # the next in line may take another free one
            finally:
                self._waiting -= 1
            self.runs["wide" if wide else "narrow"] += 1
        try:
            yield chosen
        finally:
            with self._changed:
                if wide:
                    self._wide_busy = False
                else:
                    self._free.append(chosen)
                self._changed.notify_all()

    @contextmanager
    def wide_session(self) -> Iterator[Session]:
        """The wide session alone (every slot): for a tile of a frame too large to run whole."""
        with self._changed:
            self._waiting += 1
            self._wide_waiting += 1
            try:
                self._changed.wait_for(self._idle)
            finally:
                self._waiting -= 1
                self._wide_waiting -= 1
            self._wide_busy = True
            self.runs["wide"] += 1
        try:
            yield self.wide
        finally:
            with self._changed:
                self._wide_busy = False
                self._changed.notify_all()


class WideLock:
    """A re-enterable context manager holding ``pool``'s wide session: ``predict_frame``'s per-tile
    lock (other requests run between tiles). One per frame: its enters and exits nest in one thread."""

    def __init__(self, pool: SessionPool) -> None:
        self.pool = pool
        self._held: list = []

    def __enter__(self) -> None:
        manager = self.pool.wide_session()
        manager.__enter__()
        self._held.append(manager)

    def __exit__(self, *exc: object) -> None:
        self._held.pop().__exit__(*exc)
