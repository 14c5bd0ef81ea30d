"""A fake clock for the engine, the approval sources and the waiting loop: ``sleep`` moves
``now`` on at once, so a test of a two-hour timeout takes no time and no test waits out real
seconds to see a deadline pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runner.engine import session
from runner.engine.run import Run

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


def fake_time(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> FakeClock:
    """Every run the engine executes in this process (``runner run`` and ``runner resume``
    called in process too) waits on ``clock``: its steps, its approval sources and its waiting
    loop get ``clock.now`` and ``clock.sleep``. Patched on ``Run.execute``, the one door every
    run goes through, whichever module starts it, and on ``session.execute``, where ``run`` and
    ``resume`` take the deployment lock on the approval server (its client's retries) first."""
    original = Run.execute
    locked = session.execute

    def execute(run: Run) -> int:
        run.clock = clock.now
        run.sleep = clock.sleep
        return original(run)

    def execute_locked(run: Run, **kwargs: bool) -> int:
        run.clock = clock.now
        run.sleep = clock.sleep
        return locked(run, **kwargs)

    monkeypatch.setattr(Run, "execute", execute)
    monkeypatch.setattr(session, "execute", execute_locked)
    return clock


def real_now() -> datetime:
    """Now, for a fake clock that starts at the real time (approvals signed by the test at the
    real time must not look made in the future, nor long ago)."""
    return datetime.now(UTC)
