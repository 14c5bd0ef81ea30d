"""Waiting at a manual step: poll the sources together until the quorum is met, someone aborts,
or the deadline passes. The clock and sleep are injected, so tests run in no time."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime

from msgspec import Struct, structs

from runner.approvals.identity import Directory, Person
from runner.approvals.quorum import Refused, Verdict, judge
from runner.approvals.request import Interruption, Submission
from runner.approvals.source import ApprovalSource
from runner.cancel import Cancelled
from runner.errors import RunnerError


class WaitOutcome(Struct, frozen=True):
    state: str  # approved | aborted | timed-out | detached | cancelled
    verdict: Verdict
    submissions: tuple[Submission, ...]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wait_for_decision(
    request: Interruption,
    sources: Sequence[ApprovalSource],
    directory: Directory,
    started_by: Person | None,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    on_status: Callable[[Verdict, float | None], None],
    on_refused: Callable[[Refused], None],
    on_source_error: Callable[[str, RunnerError], None],
    known: Sequence[Submission] = (),
    detach: bool = False,
    cancelled: Callable[[], bool] = lambda: False,
    call: Callable[[Callable[[], list[Submission]]], list[Submission]] = lambda poll: poll(),
) -> WaitOutcome:
    """Poll until decided; ``known`` are submissions recorded before (a resumed run).

    ``call`` runs each poll; it raises :class:`~runner.cancel.Cancelled` when the run is
    cancelled meanwhile (a poll may block: a long-poll, a fetch), which ends the wait at once,
    as ``sleep`` must too."""
    seen: dict[str, Submission] = {s.key: s for s in known if s.key}
    reported: set[str] = set()
    deadline = parse_time(request.deadline) if request.deadline else None
    interval = min((s.interval for s in sources), default=1.0)
    while True:
        interrupted = False
        for source in sources:
            try:
                # the latest poll wins: an approval that no longer verifies (expired) stops
                # counting; one that failed before (its .sig not yet pushed) may count now
                for submission in call(functools.partial(source.poll, request)):
                    seen[submission.key or repr(submission)] = submission
            except Cancelled:
                interrupted = True
                break
            except RunnerError as exc:
                on_source_error(source.name, exc)
        ordered = sorted(
            (_in_time(s, deadline) for s in seen.values()), key=lambda s: (s.submitted_at, s.key)
        )
        verdict = judge(request, ordered, directory, started_by)
        for refusal in verdict.refused:
            key = refusal.submission.key or repr(refusal.submission)
            if key not in reported:
                reported.add(key)
                on_refused(refusal)
        if verdict.state in ("approved", "aborted"):
            return WaitOutcome(verdict.state, verdict, tuple(ordered))
        if interrupted:
            return WaitOutcome("cancelled", verdict, tuple(ordered))
        current = now()
        remaining = (deadline - current).total_seconds() if deadline else None
        if remaining is not None and remaining <= 0:
            return WaitOutcome("timed-out", verdict, tuple(ordered))
        if detach:
            return WaitOutcome("detached", verdict, tuple(ordered))
        if cancelled():
            return WaitOutcome("cancelled", verdict, tuple(ordered))
        on_status(verdict, remaining)
        sleep(min(interval, remaining) if remaining is not None else interval)


def _in_time(submission: Submission, deadline: datetime | None) -> Submission:
    """A decision made after the deadline does not count, even if a resumed run sees it."""
    if deadline is None or submission.problem or not submission.submitted_at:
        return submission
    try:
        made = parse_time(submission.submitted_at)
    except ValueError:
        return submission
    if made > deadline:
        return structs.replace(
            submission,
            problem=f"made at {submission.submitted_at}, after the deadline {deadline.isoformat()}",
        )
    return submission
