"""The run's cancellation: an event that ends every wait at once.

A CI cancels a job with SIGINT and kills it a few seconds later (GitHub Actions: 7.5 s), so a run
that notices the signal only at its next poll (30 s with ``poll-seconds: 30``, 20 s into a
server long-poll) never runs its ``always()`` steps nor records that it was cancelled. Whatever
waits while steps could still be cancelled waits on this event: :meth:`Cancellation.sleep`
instead of :func:`time.sleep`, and :meth:`Cancellation.call` around a blocking call it cannot
interrupt otherwise (an approval source's poll: an HTTP long-poll, a ``git fetch``, backoff).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """A :meth:`Cancellation.call` gave up because the run was cancelled."""


class Cancellation(threading.Event):
    """Set once, when the run is cancelled. Never set it from a signal handler: ``set`` takes
    locks the interrupted thread may hold (the handler hands the signal to a thread instead)."""

    def __init__(self) -> None:
        super().__init__()
        #: events of the calls waiting now, set too on cancellation (set.add/discard/copy are
        #: atomic under the GIL, so no lock is shared with ``set``)
        self._waiters: set[threading.Event] = set()

    def set(self) -> None:
        super().set()
        for waiter in self._waiters.copy():
            waiter.set()

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the run is cancelled. A sleep that starts after the
        cancellation (a retry delay of an ``always()`` step) is a plain sleep: the runner then
        stops only at a second signal."""
        if self.is_set():
            time.sleep(seconds)
        else:
            self.wait(seconds)

    def call(self, function: Callable[[], T]) -> T:
        """``function()``, or :class:`Cancelled` as soon as the run is cancelled.

        The function runs in a daemon thread, left to finish on its own when abandoned (its
        result is dropped): it must not change anything the caller relies on afterwards."""
        done = threading.Event()
        outcome: list[tuple[bool, object]] = []

        def work() -> None:
            try:
                outcome.append((True, function()))
            except BaseException as exc:  # handed to the caller below
                outcome.append((False, exc))
            finally:
                done.set()

        self._waiters.add(done)
        try:
            if self.is_set():
                raise Cancelled
            threading.Thread(target=work, name="runner-cancellable", daemon=True).start()
            done.wait()
        finally:
            self._waiters.discard(done)
        if not outcome:
            raise Cancelled
        ok, value = outcome[0]
        if not ok:
            assert isinstance(value, BaseException)
            raise value
        return value  # type: ignore[return-value]
