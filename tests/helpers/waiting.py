"""Waiting for a condition, never for a duration: a test that sleeps a fixed time is slow when
the machine is idle and flaky when it is loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: how long a condition may take before the test fails (generous: the machine may be loaded)
WAIT_SECONDS = 30.0


def wait_for(
    predicate: Callable[[], T], timeout: float = WAIT_SECONDS, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something true, and return that (a synchronisation
    aid, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
