"""``runner.cancel.Cancellation``: every wait ends when the run is cancelled (issue #19).

The real signals are in ``tests/e2e/test_cancel_wait.py``; these pin the pieces down with events
(no sleeping: a blocked call is released by the test itself, and the bounds are hang guards)."""

from __future__ import annotations

import threading
import time

import pytest

from runner.cancel import Cancellation, Cancelled

GUARD = 10.0  # seconds: a hang guard only


def cancel_soon(cancellation: Cancellation, started: threading.Event) -> threading.Thread:
    def later() -> None:
        started.wait(GUARD)
        cancellation.set()

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def test_sleep_ends_when_the_run_is_cancelled() -> None:
    cancellation = Cancellation()
    started = threading.Event()
    thread = cancel_soon(cancellation, started)
    begun = time.monotonic()
    started.set()
    cancellation.sleep(GUARD * 3)
    thread.join(GUARD)
    assert time.monotonic() - begun < GUARD


def test_a_blocking_call_is_abandoned_on_cancellation() -> None:
    cancellation = Cancellation()
    inside, release = threading.Event(), threading.Event()

    def blocking() -> str:
        inside.set()
        release.wait(GUARD)  # a long-poll that does not know about the cancellation
        return "late"

    thread = cancel_soon(cancellation, inside)
    with pytest.raises(Cancelled):
        cancellation.call(blocking)
    thread.join(GUARD)
    release.set()


def test_a_call_returns_its_value_or_raises_its_error() -> None:
    cancellation = Cancellation()
    assert cancellation.call(lambda: 42) == 42
    with pytest.raises(ValueError, match="bad answer"):
        cancellation.call(lambda: (_ for _ in ()).throw(ValueError("bad answer")))


def test_a_call_after_the_cancellation_does_not_start() -> None:
    cancellation = Cancellation()
    cancellation.set()
    ran: list[bool] = []
    with pytest.raises(Cancelled):
        cancellation.call(lambda: ran.append(True))
    assert ran == []


def test_a_sleep_after_the_cancellation_is_a_plain_sleep() -> None:
    """A retry delay of an ``always()`` step keeps its pause."""
    cancellation = Cancellation()
    cancellation.set()
    begun = time.monotonic()
    cancellation.sleep(0.05)
    assert time.monotonic() - begun >= 0.04


def test_the_wait_at_a_manual_step_ends_cancelled_when_a_poll_is_abandoned() -> None:
    from datetime import UTC, datetime

    from runner.approvals.identity import Directory
    from runner.approvals.request import Interruption
    from runner.approvals.wait import wait_for_decision

    request = Interruption(
        id="r1--gate",
        run_id="r1",
        step_id="gate",
        step_name="Gate",
        title="Gate",
        instructions="",
        teams=(),
        quorum=(),
        fields=(),
        created="2026-01-01T00:00:00.000Z",
        deadline=None,
        environment="production",
        workflow="w",
        digest="0" * 64,
        commit=None,
        inputs={},
        following_steps=(),
        started_by="ci-bot",
        prevent_self_approval=False,
        sources=("stub",),
        run_started="",
    )

    class Stub:
        name = "stub"
        interval = 30.0

        def poll(self, request: Interruption) -> list[object]:
            raise AssertionError("the poll is the call's to run")

    def abandoned(poll: object) -> list[object]:
        raise Cancelled  # the run was cancelled while this poll blocked

    slept: list[float] = []
    outcome = wait_for_decision(
        request,
        [Stub()],  # type: ignore[list-item]
        Directory(),
        None,
        now=lambda: datetime.now(UTC),
        sleep=slept.append,
        on_status=lambda verdict, remaining: None,
        on_refused=lambda refusal: None,
        on_source_error=lambda name, error: None,
        call=abandoned,  # type: ignore[arg-type]
    )
    assert outcome.state == "cancelled"
    assert slept == []
