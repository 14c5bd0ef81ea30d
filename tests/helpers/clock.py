"""A fake clock for the engine, the approval sources and the waiting loop: ``sleep`` moves
``now`` on at once, so a test of a two-hour timeout takes no time and no test waits out real
seconds to see a deadline pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class TooManySleeps(AssertionError):
    """The code under test kept sleeping: a loop that never ends on the fake clock."""


class FakeClock:
    """``now`` is the latest moment; ``sleep(seconds)`` records the pause and moves ``now`` on.

    ``limit`` bounds the number of sleeps, so that a wait which never reaches its end fails the
    test instead of spinning forever."""

    def __init__(self, start: datetime = START, *, limit: int = 100_000) -> None:
        self.start = start
        self.moments = [start]
        self.sleeps: list[float] = []
        self.limit = limit

    def now(self) -> datetime:
        return self.moments[-1]

    def sleep(self, seconds: float) -> None:
        if len(self.sleeps) >= self.limit:
            raise TooManySleeps(f"slept {len(self.sleeps)} times on the fake clock")
        self.sleeps.append(seconds)
        self.moments.append(self.moments[-1] + timedelta(seconds=seconds))

    def advance(self, seconds: float) -> None:
        """Time passes without anyone sleeping (another process's work, a person's pause)."""
        self.moments.append(self.moments[-1] + timedelta(seconds=seconds))

    @property
    def elapsed(self) -> float:
        return (self.moments[-1] - self.start).total_seconds()
