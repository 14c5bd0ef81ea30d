"""Helpers for the fuzz tests (a module, since test modules cannot import a conftest)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class TookTooLong(Exception):
    """Raised inside the code under test when its time bound runs out."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block with :class:`TookTooLong` after ``seconds`` of wall-clock time
    (SIGALRM: main thread only; elsewhere the block simply runs unbounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TookTooLong(f"did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
