"""Guided failure (issue 21): a failed step asks people to retry it, skip it or fail the run.

Octopus's guided failure mode uses the manual intervention's interruption; so does this one. The
question is an :class:`~runner.approvals.request.Interruption` of kind ``guided-failure``, bound to
the step and to the attempt that failed, asked through the same sources, judged by the same
``quorum.judge`` (``fail`` is its abort), detached and resumed the same way. What it shows of the
failure (exit code, error, the last lines of the log) is masked before it leaves the engine.

The state of a step under guided failure lives in ``StepRecord.guided``, a
:class:`~runner.approvals.state.GuidedState`: ``decisions`` (one per failed attempt that was
decided: what failed, the choice, who, when, the notes and the evidence), and ``waiting`` while a
question is open (its interruption, submissions and refusals, as a manual step's wait).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from msgspec import structs

from runner.approvals.files import request_file_facts
from runner.approvals.identity import Directory
from runner.approvals.prompt import local_user
from runner.approvals.quorum import Refused, Verdict
from runner.approvals.request import GUIDED, Interruption, Submission, guided_slot
from runner.approvals.source import ApprovalSource
from runner.approvals.state import (
    ApprovalState,
    Decision,
    GateState,
    GuidedDecision,
    GuidedOutcome,
    Refusal,
)
from runner.approvals.trust import load_directory
from runner.approvals.wait import wait_for_decision
from runner.cancel import Cancelled
from runner.characters import visible
from runner.errors import ApprovalError, ExitCode, RunnerError
from runner.git import Git
from runner.model import GuidedFailure, Step
from runner.steps.base import Detached, StepContext, StepLog, StepResult, write_step_file
from runner.steps.manual import (
    WITHDRAW_SECONDS,
    announce,
    make_sources,
    notify,
    recorded_refusal,
    status_line,
    withdraw,
)

#: how many lines of a failed step's log the question shows
TAIL_LINES = 20
#: the longest line of the tail kept (a minified blob must not fill the question)
TAIL_WIDTH = 400


class TailLog:
    """A step's log that also keeps its last lines (already masked: the step masks each line
    before it logs it), for the question a failure asks."""

    def __init__(self, log: StepLog) -> None:
        self.inner = log
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)

    def line(self, step: Step, text: str) -> None:
        for part in text.splitlines() or [""]:
            self.lines.append(part[:TAIL_WIDTH])
        self.inner.line(step, text)

    def annotation(
        self, step: Step, level: str, message: str, properties: Mapping[str, str]
    ) -> None:
        if level == "error":
            self.lines.append(f"error: {message}"[:TAIL_WIDTH])
        self.inner.annotation(step, level, message, properties)

    def group(self, step: Step, title: str | None) -> None:
        self.inner.group(step, title)

    def waiting(self, step: Step, request: Mapping[str, Any], status: str) -> None:
        self.inner.waiting(step, request, status)

    def decision(self, step: Step, decision: Decision) -> None:
        self.inner.decision(step, decision)


def failure_of(ctx: StepContext, result: StepResult, tail: list[str]) -> dict[str, Any]:
    """What the question shows of a failed attempt, masked again (a secret added to the masker
    after a line was logged is hidden too)."""

    def mask(text: str) -> str:
        # the step's own output, shown to the people who decide: no escape code of its may
        # rewrite what they see (runner.characters.visible)
        return visible(ctx.masker.mask(text))

    return {
        "exit_code": result.exit_code,
        "error": mask(result.error) if result.error else "",
        "timed_out": result.timed_out,
        "log_tail": [mask(line) for line in tail],
    }


def retries_left(guided: GuidedFailure, decisions: Sequence[GuidedDecision]) -> bool:
    used = sum(1 for d in decisions if d.choice == "retry")
    return guided.max_retries is None or used < guided.max_retries


def build_request(
    ctx: StepContext,
    guided: GuidedFailure,
    attempt: int,
    failure: dict[str, Any],
    decisions: Sequence[GuidedDecision],
    recorded: Interruption | None = None,
) -> Interruption:
    """The question for ``attempt`` of the step. Who may decide and what may be chosen always
    come from the workflow; a resumed run takes only display text and times from ``recorded``
    (the interruption it saved)."""
    step = ctx.step
    choices = tuple(c for c in guided.choices if c != "retry" or retries_left(guided, decisions))
    code = failure.get("exit_code")
    timed_out = bool(failure.get("timed_out"))
    what = "timed out" if timed_out else "failed"
    # a timed-out step's exit code is the signal that stopped it, not the step's answer
    shown = code is not None and not timed_out
    title = f"Step '{step.name}' {what}" + (f" with exit code {code}" if shown else "")
    deadline = recorded.deadline if recorded is not None else None
    if recorded is None and guided.timeout_minutes is not None:
        deadline = _iso(ctx, timedelta(minutes=guided.timeout_minutes))
    facts = ctx.run_facts
    created = recorded.created if recorded is not None else None
    return Interruption(
        id=f"{ctx.run_id}--{guided_slot(step.id, attempt)}",
        run_id=ctx.run_id,
        step_id=step.id,
        step_name=step.name,
        title=f"{title} (attempt {attempt})",
        instructions=f"Choose {', '.join(choices)}.",
        teams=guided.teams,
        quorum=tuple((q.team, q.count) for q in guided.require),
        fields=(),
        created=created if isinstance(created, str) else _iso(ctx),
        deadline=deadline if isinstance(deadline, str) else None,
        environment=ctx.environment,
        workflow=ctx.workflow.name,
        digest=str(facts.get("digest", ctx.workflow.digest)),
        commit=facts.get("commit"),
        inputs=dict(facts.get("inputs", {})),
        following_steps=ctx.following,
        skipped=tuple(sorted(facts.get("skipped", ()))),
        started_by=ctx.started_by.username,
        prevent_self_approval=guided.prevent_self_approval,
        sources=tuple(guided.sources or ctx.workflow.approvals.sources),
        run_started=str(facts.get("started_at", "")),
        kind=GUIDED,
        attempt=attempt,
        choices=choices,
        failure=failure,
    )


def _iso(ctx: StepContext, delta: timedelta = timedelta(0)) -> str:
    moment = ctx.now() + delta
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ask(
    ctx: StepContext,
    guided: GuidedFailure,
    request: Interruption,
    known: Sequence[Submission],
    refused: Sequence[Refusal],
    checkpoint: Callable[[ApprovalState], None],
) -> GuidedDecision:
    """Ask ``request`` through the sources until decided, timed out or cancelled; the decision
    as the record keeps it. Raises :class:`~runner.steps.base.Detached` with
    ``--detach-on-wait`` (the open question checkpointed first)."""

    step = ctx.step
    if not request.choices:
        # ``retry`` was the only choice and its limit is reached: nothing is left to ask, and a
        # question nobody could answer would wait for its timeout (or for ever without one)
        notes = (
            f"retried {guided.max_retries} time{'' if guided.max_retries == 1 else 's'}, the "
            "limit, and `retry` is its only choice"
        )
        ctx.log.line(step, f"not asking: {notes}")
        return structs.replace(
            unasked(request, "", _iso(ctx)), state=GuidedOutcome.EXHAUSTED, notes=notes
        )
    git = Git(ctx.workspace)
    directory: Directory = load_directory(ctx.workflow.approvals.trust, git, local_user())
    started_by = directory.by_login(ctx.started_by.username)
    write_step_file(
        ctx.step_dir,
        f"request-attempt-{request.attempt}.json",
        _json({**request.to_dict(), **request_file_facts(ctx.workflow.approvals.file, request)}),
    )
    state = ApprovalState(
        GateState.WAITING, interruption=request, submissions=tuple(known), refused=tuple(refused)
    )
    checkpoint(state)
    sources = make_sources(ctx, request.sources, directory, git)
    announce(ctx, request, sources)
    usable: list[ApprovalSource] = []
    for source in sources:
        try:
            ctx.interruptible(functools.partial(source.register, request))
            usable.append(source)
        except Cancelled:
            withdraw(sources, request, WITHDRAW_SECONDS)
            return _entry(ctx, request, state, GuidedOutcome.CANCELLED)
        except RunnerError as exc:
            ctx.log.line(step, f"approval source {source.name}: {exc}")
    if not usable:
        raise ApprovalError(
            f"no approval source can ask what to do about failed step '{step.name}'",
            hint="configure `approvals.file` or `approvals.server`, or run on a terminal",
        )
    notify(ctx, request)
    interactive = any(source.name == "prompt" for source in usable)
    failing: dict[str, str] = {}
    shown = [""]
    recorded = {s.key or repr(s) for s in known}

    def on_status(verdict: Verdict, remaining: float | None) -> None:
        nonlocal state
        failing.clear()
        fresh = [
            a.submission
            for a in verdict.accepted
            if (a.submission.key or repr(a.submission)) not in recorded
        ]
        if fresh:
            recorded.update(s.key or repr(s) for s in fresh)
            state = structs.replace(state, submissions=(*state.submissions, *fresh))
            checkpoint(state)
        text = status_line(request, verdict, 0.0, remaining).split(",")[0]
        if not interactive and text != shown[0]:
            shown[0] = text
            ctx.log.waiting(step, {}, text)

    def on_refused(refusal: Refused) -> None:
        nonlocal state
        seen = recorded_refusal(refusal)
        if any(r.key == seen.key for r in state.refused):
            return
        ctx.log.annotation(step, "warning", f"refused {refusal.reason}", {})
        state = structs.replace(state, refused=(*state.refused, seen))

    def on_source_error(name: str, error: RunnerError) -> None:
        if failing.get(name) != error.message:
            ctx.log.line(
                step,
                f"approval source {name} did not answer: {error.message} "
                "(still waiting; a failure is never a decision)",
            )
        failing[name] = error.message

    outcome = wait_for_decision(
        request,
        usable,
        directory,
        started_by,
        now=ctx.now,
        sleep=ctx.sleep,
        on_status=on_status,
        on_refused=on_refused,
        on_source_error=on_source_error,
        known=known,
        detach=ctx.options.detach_on_wait,
        cancelled=ctx.cancelled,
        call=ctx.interruptible,
    )
    state = structs.replace(state, submissions=tuple(outcome.submissions))
    if outcome.state == "detached":
        checkpoint(state)

        raise Detached(step.id)
    for source in usable:
        with contextlib.suppress(RunnerError):
            source.cancel(request, outcome.state)
    deciding = outcome.verdict.deciding
    if outcome.state in ("approved", "aborted") and deciding is not None:
        person = deciding.person
        decision = Decision(
            result=deciding.submission.result,
            source=deciding.submission.source,
            person_id=person.id,
            username=person.username,
            display_name=person.display_name,
            email=person.email,
            notes=ctx.masker.mask(deciding.submission.notes),
            submitted_at=deciding.submission.submitted_at,
        )
        ctx.log.decision(step, decision)
        return structs.replace(
            _entry(ctx, request, state, GuidedOutcome.DECIDED),
            choice=decision.result,
            source=decision.source,
            person_id=decision.person_id,
            username=decision.username,
            display_name=decision.display_name,
            email=decision.email,
            notes=decision.notes,
            submitted_at=decision.submitted_at,
            evidence=deciding.submission.evidence,
        )
    if outcome.state == "cancelled":
        return _entry(ctx, request, state, GuidedOutcome.CANCELLED)
    entry = _entry(ctx, request, state, GuidedOutcome.TIMED_OUT)
    if guided.on_timeout == "skip" and not failing:
        notes = "skipped on timeout, nobody decided"
        ctx.log.annotation(step, "warning", f"{step.name}: {notes}", {})
        return structs.replace(entry, choice="skip", notes=notes)
    return structs.replace(
        entry,
        choice="fail",
        notes="timed out, nobody decided",
        unread_sources=dict(failing) if failing else None,
    )


def _entry(
    ctx: StepContext, request: Interruption, state: ApprovalState, how: GuidedOutcome
) -> GuidedDecision:
    return GuidedDecision(
        attempt=request.attempt,
        interruption=request.id,
        failure=dict(request.failure),
        state=how,
        decided_at=_iso(ctx),
        submissions=state.submissions,
        refused=state.refused,
    )


def unasked(request: Interruption, why: str, now: str) -> GuidedDecision:
    """The record of a failed attempt nobody could be asked about: it fails the step."""
    return GuidedDecision(
        attempt=request.attempt,
        interruption=request.id,
        failure=dict(request.failure),
        state=GuidedOutcome.UNASKED,
        choice="fail",
        notes=f"nobody could be asked: {why}",
        decided_at=now,
    )


def outputs(
    decisions: Sequence[GuidedDecision], attempt: int
) -> tuple[dict[str, str], dict[str, str]]:
    """The step's ``guided-*`` outputs and Octopus's ``Output.Guided.*`` from its last
    decision; ``attempt`` is the attempt the step ended with."""
    if not decisions:
        return {}, {}
    last = decisions[-1]
    choice = last.choice or ""
    notes = last.notes or ""
    by = last.username or ""
    at = last.submitted_at or last.decided_at
    return (
        {
            "guided-decision": choice,
            "guided-notes": notes,
            "guided-decided-by": by,
            "guided-decided-at": at,
            "guided-attempt": str(attempt),
        },
        {
            "Guided.Decision": choice.capitalize(),
            "Guided.Notes": notes,
            "Guided.DecidedBy": by,
            "Guided.DecidedBy.DisplayName": last.display_name or "",
            "Guided.DecidedAt": at,
            "Guided.Attempt": str(attempt),
        },
    )


def settle(
    step: Step, result: StepResult, decisions: Sequence[GuidedDecision], attempt: int
) -> StepResult:
    """The step's result once guided failure is done with it: the last attempt's result, with
    the decision's outputs; a skip tolerates the failure (the step stays ``Failed``), a fail or
    a timeout fails it (exit 4 for a timeout, as a manual step's)."""
    guided_outputs, octopus = outputs(decisions, attempt)
    result.outputs = {**result.outputs, **guided_outputs}
    result.octopus = {**result.octopus, **octopus}
    if not decisions or result.outcome != "failure":
        return result
    last = decisions[-1]
    if last.state == GuidedOutcome.CANCELLED:
        result.outcome = "cancelled"
        result.error = "cancelled while waiting for a decision about the failure"
        return result
    who = last.who
    if last.choice == "skip":
        result.tolerated = True
        result.summary = f"failed; skipped by {who}" if who else "failed; skipped on timeout"
        return result
    if last.state == GuidedOutcome.TIMED_OUT:
        result.error = (
            f"Step '{step.name}' failed and nobody decided what to do before the timeout"
            + (
                f" (approval source {', '.join(sorted(last.unread_sources))} could not be read)"
                if last.unread_sources
                else ""
            )
        )
        result.exit_code_hint = ExitCode.TIMED_OUT
        return result
    what = result.error or (
        f"exit code {result.exit_code}" if result.exit_code is not None else "failed"
    )
    notes = f": {last.notes}" if last.notes else ""
    if last.state in (GuidedOutcome.UNASKED, GuidedOutcome.EXHAUSTED):
        result.error = f"{what}; {last.notes}"
        return result
    result.error = f"{what}; the deployment was failed by {who}{notes}"
    return result


def _json(data: Any) -> str:

    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
