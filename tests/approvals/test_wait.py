"""wait_for_decision: polling fake sources with a fake clock, so that waits take no time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from helpers.clock import START, FakeClock
from msgspec.structs import replace

from runner.approvals.identity import Directory, Person
from runner.approvals.quorum import Refused, Verdict
from runner.approvals.request import Interruption, Submission
from runner.approvals.source import ApprovalSource
from runner.approvals.wait import WaitOutcome, wait_for_decision
from runner.errors import ApprovalError, RunnerError

ALICE = Person("u-alice", "alice", "Alice Martin", "alice@example.com", ("alice@example.com",))
BOB = Person("u-bob", "bob", "Bob Chen", "bob@example.com")
CAROL = Person("u-carol", "carol", "Carol Diaz")
DIRECTORY = Directory(
    (ALICE, BOB, CAROL),
    {"trading-desk": frozenset({"alice", "bob"}), "dba": frozenset({"carol"})},
    "people.yml",
)


@dataclass
class FakeSource:
    """An in-memory source: ``script`` maps seconds since START to what appears then."""

    clock: FakeClock
    name: str = "fake"
    interval: float = 5.0
    script: dict[float, list[Submission]] = field(default_factory=dict)
    fail: Callable[[float], bool] = lambda elapsed: False
    polls: int = 0
    registered: list[str] = field(default_factory=list)

    def register(self, request: Interruption) -> None:
        self.registered.append(request.id)

    def poll(self, request: Interruption) -> list[Submission]:
        self.polls += 1
        if self.fail(self.clock.elapsed):
            raise ApprovalError(f"{self.name} is down")
        return [s for at, subs in self.script.items() if at <= self.clock.elapsed for s in subs]

    def cancel(self, request: Interruption, reason: str) -> None:
        pass

    def instructions(self, request: Interruption) -> list[str]:
        return []


def test_fake_source_follows_the_protocol() -> None:
    source: ApprovalSource = FakeSource(FakeClock())
    assert source.name == "fake"


def request(deadline_seconds: float | None = 60, **changes: object) -> Interruption:
    deadline = None
    if deadline_seconds is not None:
        moment = START + timedelta(seconds=deadline_seconds)
        deadline = moment.isoformat().replace("+00:00", "Z")
    base = Interruption(
        id="run-1--gate",
        run_id="run-1",
        step_id="gate",
        step_name="Gate",
        title="Gate",
        instructions="",
        teams=("trading-desk",),
        quorum=(),
        fields=(),
        created=START.isoformat(),
        deadline=deadline,
        environment="production",
        workflow="Deploy",
        digest="0" * 64,
        commit=None,
        inputs={},
        following_steps=(),
        started_by="carol",
        prevent_self_approval=False,
        sources=("fake",),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def sub(
    who: str,
    result: str = "proceed",
    *,
    at: int = 0,
    source: str = "fake",
    kind: str = "username",
    key: str | None = None,
) -> Submission:
    return Submission(
        source=source,
        result=result,  # type: ignore[arg-type]
        who=who,
        who_kind=kind,  # type: ignore[arg-type]
        notes=f"{result} from {who}",
        submitted_at=(START + timedelta(seconds=at)).isoformat(),
        key=key or f"{source}:{who}:{result}:{at}",
    )


@dataclass
class Events:
    statuses: list[tuple[str, float | None]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def wait(
    rules: Interruption,
    sources: list[FakeSource],
    clock: FakeClock,
    *,
    started_by: Person | None = None,
    known: tuple[Submission, ...] = (),
    detach: bool = False,
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[WaitOutcome, Events]:
    events = Events()

    def on_status(verdict: Verdict, remaining: float | None) -> None:
        events.statuses.append((verdict.state, remaining))

    def on_refused(refusal: Refused) -> None:
        events.refused.append(refusal.reason)

    def on_source_error(name: str, error: RunnerError) -> None:
        events.errors.append((name, error.message))

    outcome = wait_for_decision(
        rules,
        sources,
        DIRECTORY,
        started_by,
        now=clock.now,
        sleep=clock.sleep,
        on_status=on_status,
        on_refused=on_refused,
        on_source_error=on_source_error,
        known=known,
        detach=detach,
        cancelled=cancelled,
    )
    return outcome, events


def test_approved_when_a_submission_appears() -> None:
    clock = FakeClock()
    source = FakeSource(clock, script={10: [sub("alice", at=10)]})
    outcome, events = wait(request(), [source], clock)
    assert outcome.state == "approved"
    assert outcome.verdict.deciding is not None
    assert outcome.verdict.deciding.person == ALICE
    assert clock.sleeps == [5.0, 5.0]
    assert source.polls == 3
    assert events.statuses == [("waiting", 60.0), ("waiting", 55.0)]
    assert events.refused == []
    assert [s.who for s in outcome.submissions] == ["alice"]


def test_aborted_when_an_abort_appears() -> None:
    clock = FakeClock()
    source = FakeSource(clock, script={5: [sub("bob", "abort", at=5)]})
    outcome, events = wait(request(), [source], clock)
    assert outcome.state == "aborted"
    assert outcome.verdict.deciding is not None
    assert outcome.verdict.deciding.person == BOB
    assert outcome.verdict.deciding.submission.notes == "abort from bob"
    assert clock.sleeps == [5.0]
    assert events.statuses == [("waiting", 60.0)]


def test_times_out_exactly_at_the_deadline() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    outcome, events = wait(request(deadline_seconds=12), [source], clock)
    assert outcome.state == "timed-out"
    assert outcome.verdict.state == "waiting"
    # the last sleep is cut to the deadline, not a whole interval past it
    assert clock.sleeps == [5.0, 5.0, 2.0]
    assert clock.elapsed == 12.0
    assert events.statuses == [("waiting", 12.0), ("waiting", 7.0), ("waiting", 2.0)]
    # polled once more at the deadline: a decision made just in time still counts
    assert source.polls == 4


def test_decision_at_the_deadline_still_counts() -> None:
    clock = FakeClock()
    source = FakeSource(clock, script={12: [sub("alice", at=12)]})
    outcome, _ = wait(request(deadline_seconds=12), [source], clock)
    assert outcome.state == "approved"


def test_deadline_already_passed_times_out_without_sleeping() -> None:
    clock = FakeClock()
    outcome, events = wait(request(deadline_seconds=-1), [FakeSource(clock)], clock)
    assert outcome.state == "timed-out"
    assert clock.sleeps == []
    assert events.statuses == []


def test_polls_at_the_shortest_interval_of_the_sources() -> None:
    clock = FakeClock()
    slow = FakeSource(clock, name="slow", interval=30)
    fast = FakeSource(clock, name="fast", interval=2, script={6: [sub("bob", at=6)]})
    outcome, _ = wait(request(), [slow, fast], clock)
    assert outcome.state == "approved"
    assert clock.sleeps == [2.0, 2.0, 2.0]
    assert (slow.polls, fast.polls) == (4, 4)


def test_source_error_keeps_waiting_and_never_decides() -> None:
    clock = FakeClock()
    broken = FakeSource(clock, name="server", fail=lambda elapsed: True)
    quiet = FakeSource(clock, name="prompt")
    outcome, events = wait(request(deadline_seconds=20), [broken, quiet], clock)
    assert outcome.state == "timed-out"
    assert outcome.verdict.accepted == ()
    assert events.errors == [("server", "server is down")] * 5
    assert quiet.polls == 5


def test_source_error_then_recovery_then_decision() -> None:
    clock = FakeClock()
    flaky = FakeSource(
        clock,
        name="server",
        fail=lambda elapsed: elapsed < 10,
        script={0: [sub("alice", at=0, source="server")]},
    )
    outcome, events = wait(request(), [flaky], clock)
    assert outcome.state == "approved"
    assert events.errors == [("server", "server is down")] * 2
    assert clock.elapsed == 10.0


def test_refused_submissions_reported_once_each() -> None:
    clock = FakeClock()
    source = FakeSource(
        clock,
        script={
            0: [sub("carol", at=0)],  # not in trading-desk
            5: [sub("mallory", at=5), sub("carol", "abort", at=5)],
        },
    )
    outcome, events = wait(request(deadline_seconds=30), [source], clock)
    assert outcome.state == "timed-out"
    assert events.refused == [
        "proceed by carol via fake: carol is not in team trading-desk",
        # same moment: ordered by key
        "abort by carol via fake: carol is not in team trading-desk",
        "proceed by mallory via fake: username 'mallory' is not in the people file",
    ]
    assert len(outcome.verdict.refused) == 3


def test_self_approval_refused_and_keeps_waiting() -> None:
    clock = FakeClock()
    source = FakeSource(clock, script={0: [sub("alice", at=0)]})
    outcome, events = wait(
        request(deadline_seconds=10, prevent_self_approval=True, started_by="alice"),
        [source],
        clock,
        started_by=ALICE,
    )
    assert outcome.state == "timed-out"
    assert events.refused == [
        "proceed by alice via fake: alice started this run and may not approve it"
    ]


@pytest.mark.parametrize(
    ("known_who", "polled", "state"),
    [
        ("alice", ["bob"], "approved"),
        ("alice", [], "waiting"),
        ("alice", ["alice"], "waiting"),
    ],
)
def test_known_submissions_from_the_record_count(
    known_who: str, polled: list[str], state: str
) -> None:
    clock = FakeClock()
    known = (sub(known_who, at=-100, key="recorded-1"),)
    source = FakeSource(clock, script={0: [sub(p, at=1) for p in polled]})
    rules = request(quorum=(("trading-desk", 2),))
    outcome, _ = wait(rules, [source], clock, known=known, detach=True)
    assert outcome.state == ("approved" if state == "approved" else "detached")
    assert outcome.verdict.state == state
    assert outcome.submissions[0].key == "recorded-1"
    assert outcome.verdict.accepted[0].person.username == known_who


def test_known_submission_seen_again_counts_once() -> None:
    clock = FakeClock()
    again = sub("alice", at=1, key="same-key")
    source = FakeSource(clock, script={0: [again]})
    rules = request(quorum=(("trading-desk", 2),))
    outcome, events = wait(rules, [source], clock, known=(again,), detach=True)
    assert outcome.state == "detached"
    assert len(outcome.submissions) == 1
    assert events.refused == []


def test_known_abort_from_the_record_aborts_at_once() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    outcome, _ = wait(request(), [source], clock, known=(sub("bob", "abort", key="r"),))
    assert outcome.state == "aborted"
    assert clock.sleeps == []


def test_submissions_judged_in_time_order() -> None:
    clock = FakeClock()
    late_abort = sub("bob", "abort", at=3)
    early_proceed = sub("alice", at=1)
    source = FakeSource(clock, script={0: [late_abort, early_proceed]})
    outcome, _ = wait(request(quorum=(("trading-desk", 2),)), [source], clock)
    assert outcome.state == "aborted"
    assert [s.who for s in outcome.submissions] == ["alice", "bob"]


@pytest.mark.parametrize(
    ("detach", "cancelled", "state"),
    [(True, False, "detached"), (False, True, "cancelled")],
)
def test_detach_and_cancel_stop_waiting(detach: bool, cancelled: bool, state: str) -> None:
    clock = FakeClock()
    outcome, _ = wait(
        request(), [FakeSource(clock)], clock, detach=detach, cancelled=lambda: cancelled
    )
    assert outcome.state == state
    assert clock.sleeps == []


def test_no_deadline_waits_on() -> None:
    clock = FakeClock()
    source = FakeSource(clock, script={3600: [sub("alice", at=3600)]})
    outcome, events = wait(request(deadline_seconds=None), [source], clock)
    assert outcome.state == "approved"
    assert clock.elapsed == 3600.0
    assert {remaining for _, remaining in events.statuses} == {None}
