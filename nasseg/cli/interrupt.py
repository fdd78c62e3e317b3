"""Ctrl-C at a safe point: a long-running command stops between steps, not wherever the signal lands.

A ``KeyboardInterrupt`` raised at an arbitrary bytecode can land between a lock's acquire and the
``with`` block that would release it (CPython's known hazard), e.g. inside the progress bar's
refresh lock; the command then hangs on exit instead of saying how to resume. Within
:class:`DeferredInterrupt` the first Ctrl-C only sets a flag that :meth:`DeferredInterrupt.check`
turns into ``KeyboardInterrupt`` at the next step; a second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class DeferredInterrupt:
    """Within ``with``: the first SIGINT is deferred to :meth:`check`, the second raises at once
    (outside the main thread, or where SIGINT is not Python's default handler, nothing changes)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a Ctrl-C came since the last step."""
        if self.requested:
            self.requested = False
            raise KeyboardInterrupt

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
