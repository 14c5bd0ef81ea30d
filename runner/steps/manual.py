"""Manual intervention steps: raise an interruption, wait for a decision, record it.

Octopus's semantics: Proceed makes the step succeed; Abort makes it fail (later steps follow their
own run conditions, ``always()`` steps still run, ``Octopus.Deployment.Error`` is set, exit 3). A
timeout aborts (exit 4) unless the step opts into ``on-timeout: proceed``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from msgspec.structs import replace

from runner.approvals.files import FileSource, request_file_facts
from runner.approvals.identity import Directory
from runner.approvals.prompt import PromptSource, end_question, local_user
from runner.approvals.quorum import Refused, Verdict
from runner.approvals.request import FieldSpec, Interruption, describe_field
from runner.approvals.server_source import ServerSource
from runner.approvals.source import ApprovalSource
from runner.approvals.state import ApprovalState, Decision, GateState, Refusal
from runner.approvals.trust import load_directory
from runner.approvals.wait import WaitOutcome, wait_for_decision
from runner.cancel import Cancelled
from runner.characters import visible
from runner.durations import format_duration
from runner.errors import ApprovalError, ExitCode, RunnerError
from runner.git import Git, GitReader
from runner.model import Identity, Manual
from runner.notify import WebhookError, post_json, webhook_url
from runner.steps.base import Detached, StepContext, StepResult, write_step_file
from runner.steps.outputs import manual_outputs


def _iso(ctx: StepContext, delta: timedelta = timedelta(0)) -> str:
    moment = ctx.now() + delta
    # milliseconds: a deadline cut to the second would time out up to a second early
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_interruption(ctx: StepContext, manual: Manual, sources: tuple[str, ...]) -> Interruption:
    step = ctx.step
    deadline = None
    if manual.timeout_minutes is not None:
        deadline = _iso(ctx, timedelta(minutes=manual.timeout_minutes))
    facts = ctx.run_facts
    return Interruption(
        id=f"{ctx.run_id}--{step.id}",
        run_id=ctx.run_id,
        step_id=step.id,
        step_name=step.name,
        # what earlier steps' outputs put in them is shown to the people who decide (terminal,
        # log, server, request file): no escape code of a script's may rewrite what they see
        title=(
            visible(ctx.masker.mask(ctx.render_at("manual.title", manual.title)))
            if manual.title
            else step.name
        ),
        instructions=visible(
            ctx.masker.mask(ctx.render_at("manual.instructions", manual.instructions))
        ),
        teams=manual.teams,
        quorum=tuple((q.team, q.count) for q in manual.require),
        fields=tuple(
            FieldSpec(
                f.name,
                f.type,
                visible(ctx.masker.mask(ctx.render_at(f"manual.fields.{i}.label", f.label)))
                if f.label
                else "",
                f.required,
                f.pattern,
                f.options,
            )
            for i, f in enumerate(manual.fields)
        ),
        created=_iso(ctx),
        deadline=deadline,
        environment=ctx.environment,
        workflow=ctx.workflow.name,
        digest=str(facts.get("digest", ctx.workflow.digest)),
        commit=facts.get("commit"),
        inputs=dict(facts.get("inputs", {})),
        following_steps=ctx.following,
        skipped=tuple(sorted(facts.get("skipped", ()))),
        started_by=ctx.started_by.username,
        prevent_self_approval=manual.prevent_self_approval,
        sources=sources,
        run_started=str(facts.get("started_at", "")),
    )


SourceFactory = Callable[..., ApprovalSource]
#: the approval sources by the name a workflow gives them (``approvals.sources``, ``sources``)
SOURCES: dict[str, SourceFactory] = {
    "prompt": PromptSource,
    "file": FileSource,
    "server": ServerSource,
}


def source_class(name: str) -> SourceFactory:
    return SOURCES[name]


def make_sources(
    ctx: StepContext, names: tuple[str, ...], directory: Directory, git: GitReader | None = None
) -> list[ApprovalSource]:
    sources = []
    for name in names:
        factory = source_class(name)
        sources.append(
            factory(
                environ=ctx.host_env,
                approvals=ctx.workflow.approvals,
                workspace=ctx.workspace,
                directory=directory,
                options=ctx.options,
                # the engine's clock and sleep: a source's own waits (a server's retries and
                # backoff) then end on cancellation, and tests run them on a fake clock
                now=ctx.now,
                sleep=ctx.sleep,
                git=git or Git(ctx.workspace),
            )
        )
    return sources


def run_manual_step(ctx: StepContext) -> StepResult:
    step = ctx.step
    manual = step.manual
    assert manual is not None
    names = manual.sources or ctx.workflow.approvals.sources
    # one reader for the trust files and the sources: the step's git reads go through it
    git = Git(ctx.workspace)
    directory = load_directory(ctx.workflow.approvals.trust, git, local_user())
    started_by = directory.by_login(ctx.started_by.username)
    previous = ctx.previous
    if previous is not None and previous.interruption is not None:
        request = previous.interruption
    else:
        request = build_interruption(ctx, manual, tuple(names))
    known = list(previous.submissions) if previous else []
    # the request as a file, for `runner approval new --request` on the approver's machine
    facts = request_file_facts(ctx.workflow.approvals.file, request)
    write_step_file(
        ctx.step_dir,
        "request.json",
        json.dumps({**request.to_dict(), **facts}, indent=2, ensure_ascii=False) + "\n",
    )
    # one cell, replaced as the wait learns more (the callbacks below update it)
    state = [
        ApprovalState(
            state=GateState.WAITING,
            interruption=request,
            submissions=tuple(known),
            refused=previous.refused if previous else (),
        )
    ]
    ctx.checkpoint(state[0])
    sources = make_sources(ctx, tuple(names), directory, git)
    announce(ctx, request, sources)
    usable: list[ApprovalSource] = []
    for source in sources:
        try:
            # registering may wait too (a server's retries and backoff): a signal ends it
            ctx.interruptible(functools.partial(source.register, request))
            usable.append(source)
        except Cancelled:
            withdraw(sources, request, WITHDRAW_SECONDS)
            cancelled = replace(state[0], state=GateState.CANCELLED, decided_at=_iso(ctx))
            return StepResult("cancelled", approval=cancelled, error="cancelled while waiting")
        except RunnerError as exc:
            ctx.log.line(step, f"approval source {source.name}: {exc}")
    if not usable:
        raise ApprovalError(
            f"no approval source can ask for step '{step.name}'",
            hint="configure `approvals.file` or `approvals.server`, or run on a terminal",
        )
    # a live status line would tear through the question the prompt is asking
    interactive = any(source.name == "prompt" for source in usable)
    notify(ctx, request)
    last_status: list[str] = [""]
    last_shown = [0.0]
    clock_start = ctx.now()

    recorded = {s.key or repr(s) for s in known}
    #: the sources whose poll failed in the latest round, and why (cleared after each round)
    failing: dict[str, str] = {}

    def on_status(verdict: Verdict, remaining: float | None) -> None:
        failing.clear()
        # a decision that counts is recorded the moment it is seen, not only when the wait
        # ends: a runner killed mid-quorum and resumed after the approvals branch was rewritten
        # still has it (#17)
        fresh = [
            a.submission
            for a in verdict.accepted
            if (a.submission.key or repr(a.submission)) not in recorded
        ]
        if fresh:
            recorded.update(s.key or repr(s) for s in fresh)
            state[0] = replace(state[0], submissions=(*state[0].submissions, *fresh))
            ctx.checkpoint(state[0])
        waited = (ctx.now() - clock_start).total_seconds()
        text = status_line(request, verdict, waited, remaining)
        shown = text.split(",")[0]
        if interactive:
            return
        if shown != last_status[0] or waited - last_shown[0] >= 60:
            last_status[0], last_shown[0] = shown, waited
            ctx.log.waiting(step, {}, text)

    def on_refused(refusal: Refused) -> None:
        refused = recorded_refusal(refusal)
        if any(r.key == refused.key for r in state[0].refused):
            return  # recorded before a detach: once is enough
        ctx.log.annotation(step, "warning", f"refused {refusal.reason}", {})
        state[0] = replace(state[0], refused=(*state[0].refused, refused))

    last_errors: dict[str, str] = {}

    def on_source_error(name: str, error: RunnerError) -> None:
        failing[name] = error.message
        if last_errors.get(name) == error.message:
            return  # said once is enough while the source keeps failing the same way
        last_errors[name] = error.message
        ctx.log.line(
            step,
            f"approval source {name} did not answer: {error.message} "
            "(still waiting; a failure is never a decision)",
        )

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
    waited = replace(state[0], submissions=outcome.submissions)
    if outcome.state == "detached":
        ctx.checkpoint(replace(waited, state=GateState.WAITING))
        end_question()  # a prompt's question left open: the detach message starts a line
        raise Detached(step.id)
    if outcome.state == "timed-out":
        for source in usable:
            with contextlib.suppress(RunnerError):
                source.cancel(request, outcome.state)
    elif outcome.state == "cancelled":
        withdraw(usable, request, WITHDRAW_SECONDS)
    return settle(ctx, manual, request, outcome, waited, failing)


#: on cancellation, how long withdrawing the request from the sources may hold up the
#: ``always()`` steps (the CI kills the job seconds after its signal)
WITHDRAW_SECONDS = 2.0


def withdraw(sources: list[ApprovalSource], request: Interruption, seconds: float) -> None:
    """Withdraw the request from every source together, giving up after ``seconds`` (best
    effort: an unreachable server must not use up the time the ``always()`` steps have)."""

    def one(source: ApprovalSource) -> None:
        with contextlib.suppress(RunnerError):
            source.cancel(request, "cancelled")

    threads = [threading.Thread(target=one, args=(s,), daemon=True) for s in sources]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def settle(
    ctx: StepContext,
    manual: Manual,
    request: Interruption,
    outcome: WaitOutcome,
    state: ApprovalState,
    failing: dict[str, str] | None = None,
) -> StepResult:
    """The step's result, outputs and record entry for a finished wait; ``failing`` are the
    sources that could not be read at the last poll."""
    step = ctx.step
    decisions = tuple(
        Decision(
            result=a.submission.result,
            source=a.submission.source,
            person_id=a.person.id,
            username=a.person.username,
            display_name=a.person.display_name,
            email=a.person.email,
            notes=ctx.masker.mask(a.submission.notes),
            fields={k: ctx.masker.mask(v) for k, v in a.submission.fields.items()},
            submitted_at=a.submission.submitted_at,
            evidence=a.submission.evidence,
        )
        for a in outcome.verdict.accepted
    )
    state = replace(
        state, state=GateState(outcome.state), decided_at=_iso(ctx), decisions=decisions
    )
    deciding = outcome.verdict.deciding
    if outcome.state in ("approved", "aborted") and deciding is not None:
        approved = outcome.state == "approved"
        person = deciding.person.identity()
        notes = deciding.submission.notes
        fields = dict(deciding.submission.fields) if approved else {}
        for decision in decisions[-1:]:
            ctx.log.decision(step, decision)
        outputs, octopus = manual_outputs(approved, notes, person, fields)
        if approved:
            return StepResult("success", outputs=outputs, octopus=octopus, approval=state)
        return StepResult(
            "failure",
            outputs=outputs,
            octopus=octopus,
            approval=state,
            error=f"Manual intervention '{step.name}' was aborted by {person.display_name}",
            exit_code_hint=ExitCode.ABORTED,
        )
    if outcome.state == "cancelled":
        return StepResult("cancelled", approval=state, error="cancelled while waiting")
    # timed out
    nobody = Identity()
    if manual.on_timeout == "proceed" and failing:
        # an abort on a source that could not be read was not seen: proceeding would let whoever
        # broke the source (e.g. a pusher past the file source's bounds) hide it (#17)
        state = replace(state, unread_sources=dict(failing))
        names = ", ".join(sorted(failing))
        outputs, octopus = manual_outputs(False, "timed out", nobody, {})
        return StepResult(
            "failure",
            outputs=outputs,
            octopus=octopus,
            approval=state,
            error=f"Manual intervention '{step.name}' timed out while approval source {names} "
            "could not be read; it does not proceed on timeout, since an abort there could not "
            "be seen",
            exit_code_hint=ExitCode.TIMED_OUT,
        )
    if manual.on_timeout == "proceed":
        state = replace(state, state=GateState.PROCEEDED_ON_TIMEOUT)
        note = "proceeded on timeout, no approval"
        ctx.log.annotation(step, "warning", f"{step.name}: {note}", {})
        outputs, octopus = manual_outputs(False, note, nobody, {})
        return StepResult("success", outputs=outputs, octopus=octopus, approval=state)
    outputs, octopus = manual_outputs(False, "timed out", nobody, {})
    return StepResult(
        "failure",
        outputs=outputs,
        octopus=octopus,
        approval=state,
        error=f"Manual intervention '{step.name}' timed out after "
        f"{format_duration((manual.timeout_minutes or 0) * 60)} without a decision",
        exit_code_hint=ExitCode.TIMED_OUT,
    )


def status_line(
    request: Interruption, verdict: Verdict, waited: float, remaining: float | None
) -> str:
    """ "Waiting for trading-desk (0/1), 2m13s"."""
    if verdict.progress:
        parts = [f"{team} ({have}/{need})" for team, have, need in verdict.progress]
    else:
        who = " or ".join(request.teams) if request.teams else "an approver"
        parts = [f"{who} ({min(len(verdict.accepted), 1)}/1)"]
    text = f"Waiting for {', '.join(parts)}, {format_duration(waited)}"
    if remaining is not None:
        text += f" (times out in {format_duration(remaining)})"
    return text


def announce(ctx: StepContext, request: Interruption, sources: list[ApprovalSource]) -> None:
    """The request in full, in the job log, with how to answer through each source."""
    header = "Guided failure" if request.guided else "Manual intervention required"
    lines = [f"{header}: {request.title}"]
    if request.guided:
        # masked by the engine before the request was built
        tail = [str(line) for line in request.failure.get("log_tail", ())]
        if request.failure.get("error"):
            lines.append(f"Error: {request.failure['error']}")
        if tail:
            lines += ["Last lines of its log:", *(f"  | {line}" for line in tail)]
    if request.instructions.strip():
        lines += ["", *request.instructions.rstrip().splitlines(), ""]
    if request.teams:
        who = ", ".join(request.teams)
    elif ctx.workflow.approvals.trust is None:
        who = "the local user at the terminal (the workflow names no people file)"
    else:
        who = "anyone in the people file"
    lines.append(f"Who may decide: {who}")
    if request.quorum:
        lines.append("Quorum: " + "; ".join(f"{c} from {t}" for t, c in request.quorum))
    if request.prevent_self_approval:
        lines.append(f"Not {request.started_by}, who started this run")
    lines.append(
        f"Approving: {request.workflow} -> {request.environment}, digest "
        f"{request.digest[:12]}" + (f", commit {request.commit[:12]}" if request.commit else "")
    )
    if request.inputs:
        # the record's inputs are masked; a record an older runner wrote held them in clear
        shown = json.dumps(request.inputs, ensure_ascii=False)
        lines.append("Inputs: " + ctx.masker.mask(shown))
    if request.following_steps:
        lines.append("Then: " + ", ".join(request.following_steps))
    if request.skipped:
        lines.append("Skipped with --skip: " + ", ".join(request.skipped))
    if request.deadline:
        lines.append(f"Deadline: {request.deadline}")
    if request.fields:
        # said before the sources: whichever the approver uses, a proceed without a required
        # field, or with one the pattern refuses, does not count (newcomer pass)
        lines.append("Fields (a proceed gives them; an abort needs none):")
        lines += [f"  {describe_field(spec)}" for spec in request.fields]
    for source in sources:
        for how in source.instructions(request):
            lines.append(f"  via {source.name}: {how}")
    name = f"request-attempt-{request.attempt}.json" if request.guided else "request.json"
    lines.append(f"Request file (for --request): {ctx.step_dir / name}")
    # all of it, not only the texts steps' outputs made: the inputs are the deployer's own text
    # (json.dumps escapes C0 controls, not a C1 CSI or U+202E), and so is who started the run
    ctx.log.waiting(ctx.step, request.to_dict(), visible("\n".join(lines)))


def notify(ctx: StepContext, request: Interruption) -> None:
    """Announce the wait on the optional chat webhook, in the background; failures only log."""
    own = ctx.step.manual.notify if ctx.step.manual else None
    if request.guided and ctx.step.guided is not None:
        own = ctx.step.guided.notify
    hook = own or ctx.workflow.approvals.notify
    if hook is None:
        return
    url = webhook_url(hook, ctx.env)
    if not url:
        ctx.log.line(ctx.step, f"notify: ${hook.url_env} is not set; no announcement sent")
        return
    ctx.masker.add(url)
    text = (
        f"Deployment of {request.workflow} to {request.environment} is waiting: "
        f"{request.title}. Run {request.run_id}."
    )

    def post() -> None:
        try:
            post_json(url, {"text": text})
        except WebhookError as exc:
            ctx.log.line(ctx.step, ctx.masker.mask(f"notify: webhook failed: {exc}"))

    threading.Thread(target=post, daemon=True).start()


def recorded_refusal(refusal: Refused) -> Refusal:
    """A refused submission as a wait's record keeps it, keyed so that the same refusal seen
    again (after a detach too) is recorded once."""
    submission = refusal.submission
    return Refusal(
        reason=refusal.reason,
        source=submission.source,
        who=submission.who,
        key=submission.key or repr(submission),
        evidence=submission.evidence,
    )
