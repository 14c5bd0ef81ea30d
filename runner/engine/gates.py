"""The gates of a run record, verified again before a resume trusts them (#17).

A manual step (the policy's ``policy-approval`` too) the record shows as passed counts only if its
evidence passes it again (``runner.approvals.verify``), judged by ``quorum.judge`` under the
workflow's rules, not those of the interruption the record holds: signed files from the body and
signature the record keeps, approval-server decisions from the server's own rows. A gate passed at
the terminal prompt leaves nothing to verify: it is asked again on a terminal, refused in CI or
without one. A waiting gate keeps the workflow's rules and only the recorded signed files that
verify again; a failed or aborted one stays failed. A failed step recorded as skipped under
guided failure (issue 21) is a decision too, verified the same way for the attempt it decided.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from msgspec import structs

from runner.approvals.prompt import local_user
from runner.approvals.quorum import judge
from runner.approvals.request import GUIDED, FieldSpec, Interruption, Submission, guided_slot
from runner.approvals.server_source import client_for
from runner.approvals.state import (
    ApprovalState,
    Decision,
    GateState,
    GuidedDecision,
    GuidedOutcome,
    GuidedState,
)
from runner.approvals.trust import TrustFiles, keys_at_tip, load_directory, read_keys
from runner.approvals.verify import (
    check_server_view,
    missing_server_rows,
    server_rows,
    signed_submission,
)
from runner.ci import in_ci
from runner.engine.record import RunRecord, StepRecord, StepStatus
from runner.errors import RefusedError, RunnerError, VerificationError
from runner.evaluation.conditions import steps_after
from runner.git import Git, deployed_commit
from runner.model import Identity, Step, Workflow
from runner.options import RunOptions
from runner.steps.base import RunLog
from runner.steps.guided import retries_left
from runner.steps.outputs import manual_outputs


def deployed_here(workspace: Path) -> str | None:
    """The commit checked out here, whose scripts a resumed run runs: HEAD, not ``$GITHUB_SHA``
    (a resume job checks out the run's commit, and its own event may name another one)."""
    return deployed_commit(Git(workspace))


def refuse(run_id: str, problem: str, hint: str | None = None) -> RefusedError:
    return RefusedError(
        f"run {run_id} cannot be resumed: {problem}",
        hint=hint
        or "the state folder was changed or is not this run's; start a new run "
        f"(`runner run`), or restore run {run_id}'s state folder as the runner left it",
    )


class Gates:
    """Checks each gate of one record against the workflow and the evidence."""

    def __init__(
        self,
        record: RunRecord,
        workflow: Workflow,
        workspace: Path,
        environ: Mapping[str, str],
        options: RunOptions,
        log: RunLog,
        now: datetime,
        terminal: bool | None,
    ) -> None:
        self.record = record
        self.workflow = workflow
        self.workspace = workspace
        #: the git reader for the trust files the gates are verified against
        self.git = Git(workspace)
        self.environ = environ
        self.options = options
        self.log = log
        self.now = now
        self.terminal = terminal
        self._keys: tuple[Any, Any] | None = None
        self._directory: Any = None

    # -- per gate --------------------------------------------------------------------------

    def check(self, step: Step, rec: StepRecord, skip: frozenset[str]) -> None:
        if rec.status == StepStatus.SUCCESS:
            self._passed(step, rec)
        elif rec.status == StepStatus.SKIPPED:
            pass  # decided again once the run is built (``check_progress``)
        elif rec.status in (StepStatus.FAILURE, StepStatus.CANCELLED):
            tolerated = rec.status == StepStatus.FAILURE and step.continue_on_error is True
            self.record.update_step(
                step.id,
                outcome=rec.status,  # an abort or a failure never becomes a success
                conclusion="success" if tolerated else rec.status,
            )
        else:  # pending, waiting, running, interrupted: what it knows is checked again
            self._waiting(step, rec)

    def _passed(self, step: Step, rec: StepRecord) -> None:
        approval = rec.approval
        state = approval.state if approval else None
        decisions = list(approval.decisions or ()) if approval else []
        run_id = self.record.run_id
        if state == GateState.PROCEEDED_ON_TIMEOUT:
            # no quorum was reached: what counts is whether the workflow lets it proceed
            assert step.manual is not None
            if step.manual.on_timeout != "proceed":
                raise refuse(
                    run_id,
                    f"its record says gate `{step.id}` proceeded on timeout, but the workflow "
                    "aborts it on timeout",
                )
            _outputs(
                self.record, step.id, False, "proceeded on timeout, no approval", Identity(), {}
            )
            return
        if approval is None or not approval.passed or not decisions:
            raise refuse(
                run_id,
                f"its record says gate `{step.id}` passed, but holds no decision to verify",
            )
        prompted = [d for d in decisions if d.source == "prompt"]
        if prompted:
            self._ask_again(step, rec, prompted)
            return
        request = self.request(step)
        decided = _decided_at(approval, self.now)
        if self._approves_steps_to_run(step):
            # the steps only this gate lets run have not run yet: its approval must still be
            # valid now, as a live one must. Checked as of when it was decided, a state folder
            # put back together from two jobs' genuine files (a gate passed, the deployment
            # after it not yet run) ran that deployment again on an approval long expired
            # (attack pass); an honest resume after the approval expired asks the gate again
            try:
                submissions = self._verified(step, request, decisions, self.now)
            except RefusedError:
                self._verified(step, request, decisions, decided)  # refused as before if not
                self._reset(
                    step,
                    rec,
                    "its approval is no longer valid, and the steps it lets run have not run "
                    "yet: asked again",
                )
                return
        else:
            submissions = self._verified(step, request, decisions, decided)
        if any(d.source == "server" for d in decisions):
            claimed = [d.to_json() for d in decisions if d.source == "server"]
            submissions += self._server(step, request, claimed)
        verdict = self._judge(request, submissions)
        if verdict.state != "approved":
            reasons = "; ".join(r.reason for r in verdict.refused) or verdict.state
            raise refuse(
                run_id,
                f"the decisions of gate `{step.id}` do not approve it when judged again: {reasons}",
            )
        deciding = verdict.deciding
        assert deciding is not None
        # what later steps read of the gate (who, notes, the approver's fields) comes from the
        # verified decision, not from the record's outputs
        _outputs(
            self.record,
            step.id,
            True,
            deciding.submission.notes,
            deciding.person.identity(),
            dict(deciding.submission.fields),
        )
        self.log.write(f"gate `{step.id}`: decisions re-verified from their evidence")

    def check_guided(self, step: Step, rec: StepRecord) -> None:
        """A failed step the record shows as skipped under guided failure (issue 21) went on
        past its failure by a decision, which counts only if its evidence passes it again, as a
        gate's does: the signed files verified again (a key revoked since no longer skips it),
        the server's rows fetched again, judged by the workflow's rules for the attempt the
        skip decided. A skip typed at a terminal prompt cannot be verified, and is refused in CI
        or without a terminal; one on timeout stands only if the workflow skips on timeout."""
        guided = step.guided
        saved = rec.guided
        if guided is not None and saved is not None and saved.waiting is not None:
            self._guided_waiting(step, saved)
            return
        if guided is None or saved is None or not saved.skipped:
            return  # a retry ran the step again, a fail failed it: neither lets a failure pass
        decisions = saved.decisions
        last, run_id = decisions[-1], self.record.run_id
        if last.state == GuidedOutcome.TIMED_OUT:
            if guided.on_timeout != "skip":
                raise refuse(
                    run_id,
                    f"its record says step `{step.id}` was skipped on timeout, but the workflow "
                    "fails it on timeout",
                )
            return
        who = f"skip by {last.username} via {last.source}"
        if last.source == "prompt":
            self._prompted_skip(step, who)
            return
        # the attempt the skip decided is the one after the decisions before it, whatever the
        # entry says; what could be chosen then comes from the workflow
        request = self._guided_request(step, len(decisions), decisions[:-1])
        at = _moment(last.decided_at, self.now)
        # the deciding submission and every other skip that counted towards the quorum
        recorded = [
            {
                "source": last.source,
                "result": "skip",
                "username": last.username,
                "evidence": last.evidence or {},
            }
        ] + [
            {**structs.asdict(s), "username": s.who} for s in last.submissions if s.result == "skip"
        ]
        submissions: list[Submission] = []
        for item in recorded:
            source = item["source"]
            if source == "server":
                continue
            try:
                if source != "file":
                    raise VerificationError("it has no evidence a resume can verify")
                signers, revoked = self.keys(step)
                submissions.append(
                    signed_submission(
                        item["evidence"],
                        signers=signers,
                        revoked=revoked,
                        namespace=self._namespace(),
                        request=request,
                        at=at,
                    )
                )
            except RunnerError as exc:
                raise refuse(
                    run_id, f"step `{step.id}`: {who} does not verify again: {exc.message}"
                ) from None
        claimed = [item for item in recorded if item["source"] == "server"]
        if claimed:
            submissions += self._server(step, request, claimed)
        verdict = self._judge(request, submissions)
        deciding = verdict.deciding
        if verdict.state != "approved" or deciding is None or deciding.submission.result != "skip":
            reasons = "; ".join(r.reason for r in verdict.refused)
            shown = f"its evidence decides {deciding.submission.result}" if deciding else reasons
            raise refuse(
                run_id,
                f"step `{step.id}`: {who} does not verify again: {shown or verdict.state}",
            )
        if deciding.person.username != last.username:
            raise refuse(
                run_id,
                f"step `{step.id}`: {who} does not verify again: its evidence is "
                f"{deciding.person.username}'s",
            )
        self.log.write(f"step `{step.id}`: its skip re-verified from its evidence")

    def _guided_waiting(self, step: Step, saved: GuidedState) -> None:
        """A failed step's question still open: as at a waiting gate, only the recorded signed
        files that verify again now, bound to the attempt asked about, stay known (the server
        and the terminal are asked again). The record's list is anyone's writing: a submission
        taken from it unverified would decide the question (a "skip by alice" with no
        signature skipped the failure)."""
        waiting = saved.waiting
        assert waiting is not None
        request = self._guided_request(step, len(saved.decisions) + 1, saved.decisions)
        known = self._files_verified_now(step, request, waiting.submissions)
        kept = structs.replace(waiting, submissions=known)
        self.record.update_step(step.id, guided=structs.replace(saved, waiting=kept))

    def _files_verified_now(
        self, step: Step, request: Interruption, recorded: Sequence[Submission]
    ) -> tuple[Submission, ...]:
        """Of an open wait's recorded submissions, the signed files that verify again now for
        ``request``: the record's list is anyone's writing, and the server and the terminal are
        asked again anyway."""
        known = []
        for item in recorded:
            if item.source != "file":
                continue
            try:
                signers, revoked = self.keys(step)
                known.append(
                    signed_submission(
                        item.evidence,
                        signers=signers,
                        revoked=revoked,
                        namespace=self._namespace(),
                        request=request,
                        at=self.now,
                    )
                )
            except RunnerError:
                continue  # not counted; the file source reads the branch again anyway
        return tuple(known)

    def _prompted_skip(self, step: Step, who: str) -> None:

        ci = in_ci(self.environ)
        terminal = self.terminal if self.terminal is not None else sys.stdin.isatty()
        if ci or not terminal:
            where = f"in CI (${ci} is set)" if ci else "without a terminal"
            raise refuse(
                self.record.run_id,
                f"step `{step.id}` failed and was skipped at a terminal prompt ({who}), which "
                f"leaves no evidence a resume can verify {where}",
                hint="resume on the terminal it was decided at, or start a new run decided "
                "through signed files or the approval server",
            )

    def _guided_request(
        self, step: Step, attempt: int, before: Sequence[GuidedDecision]
    ) -> Interruption:
        """The question about ``attempt`` of a failed step, as the workflow, the files and the
        commit here make it (what binds and judges a decision about it)."""
        guided = step.guided
        assert guided is not None
        record = self.record
        return Interruption(
            id=f"{record.run_id}--{guided_slot(step.id, attempt)}",
            run_id=record.run_id,
            step_id=step.id,
            step_name=step.name,
            title=step.name,
            instructions="",
            teams=guided.teams,
            quorum=tuple((q.team, q.count) for q in guided.require),
            fields=(),
            created=record.started_at,
            deadline=None,
            environment=record.environment,
            workflow=self.workflow.name,
            digest=self.workflow.digest,
            commit=deployed_here(self.workspace),
            inputs=dict(record.inputs),
            following_steps=steps_after(
                self.workflow.steps, step.index, record.environment, frozenset(record.skip)
            ),
            skipped=tuple(sorted(record.skip)),
            started_by=str(record.started_by.get("username", "")),
            prevent_self_approval=guided.prevent_self_approval,
            sources=tuple(guided.sources or self.workflow.approvals.sources),
            run_started=record.started_at,
            kind=GUIDED,
            attempt=attempt,
            choices=tuple(
                c for c in guided.choices if c != "retry" or retries_left(guided, before)
            ),
        )

    def _verified(
        self,
        step: Step,
        request: Interruption,
        decisions: list[Decision],
        at: datetime,
    ) -> list[Submission]:

        found = []
        for decision in decisions:
            source = decision.source
            if source == "server":
                continue  # the server's own rows stand for them (``_server``)
            who = f"{decision.result} by {decision.username} via {source}"
            if source != "file":
                raise refuse(
                    self.record.run_id,
                    f"gate `{step.id}`: {who} has no evidence a resume can verify",
                )
            signers, revoked = self.keys(step)
            try:
                found.append(
                    signed_submission(
                        decision.evidence,
                        signers=signers,
                        revoked=revoked,
                        namespace=self._namespace(),
                        request=request,
                        at=at,
                    )
                )
            except RunnerError as exc:
                raise refuse(
                    self.record.run_id,
                    f"gate `{step.id}`: {who} does not verify again: {exc.message}",
                ) from None
        return found

    def _approves_steps_to_run(self, step: Step) -> bool:
        """Whether a step after gate ``step``, and before the next gate, has still to run."""
        for later in self.workflow.steps[step.index + 1 :]:
            if later.kind == "manual":
                return False
            if self.record.step(later.id).status not in _DONE:
                return True
        return False

    def _server(
        self, step: Step, request: Interruption, claimed: Sequence[Mapping[str, Any]]
    ) -> list[Submission]:
        """The server's own decision rows for the gate's interruption, fetched again."""

        run_id = self.record.run_id
        what = "step" if request.guided else "gate"
        config = self.workflow.approvals.server
        if config is None:
            raise refuse(
                run_id,
                f"{what} `{step.id}`: its record names approval-server decisions, but the "
                "workflow has no `approvals.server`",
            )
        try:
            client = client_for(self.workflow.approvals, self.environ, attempts=3)
            view = client.call("GET", f"/interruptions/{request.id}")
            if not isinstance(view, dict):
                raise refuse(run_id, f"{what} `{step.id}`: the server answered no interruption")
            try:
                check_server_view(view, request)
                asked = view.get("request")
                if request.guided and (
                    not isinstance(asked, dict)
                    or (asked.get("kind"), asked.get("attempt")) != (GUIDED, request.attempt)
                ):
                    raise VerificationError(
                        f"the server's interruption is not the question about attempt "
                        f"{request.attempt}"
                    )
            except VerificationError as exc:
                raise refuse(run_id, f"{what} `{step.id}`: {exc.message}") from None
        except RefusedError:
            raise
        except RunnerError as exc:
            raise refuse(
                run_id,
                f"{what} `{step.id}` was passed through the approval server, whose decisions "
                f"cannot be fetched to verify it: {exc.message}",
                hint=f"resume when {config.url} answers (with a runner token in "
                f"${config.token_env or 'RUNNER_SERVER_TOKEN'})",
            ) from None
        rows = server_rows(view, request.id, config.url)
        missing = missing_server_rows(claimed, rows)
        if missing:
            raise refuse(
                run_id,
                f"{what} `{step.id}`: the approval server has no decision {', '.join(missing)} "
                f"for interruption {request.id}, though the record says so",
            )
        return rows

    def _ask_again(self, step: Step, rec: StepRecord, prompted: list[Decision]) -> None:
        """A decision typed at a terminal leaves nothing to verify later: the person at this
        terminal is asked again (the prompt's own guarantee); in CI, or without a terminal,
        nobody can be, and the resume is refused."""

        ci = in_ci(self.environ)
        terminal = self.terminal if self.terminal is not None else sys.stdin.isatty()
        if ci or not terminal:
            where = f"in CI (${ci} is set)" if ci else "without a terminal"
            who = ", ".join(d.username for d in prompted)
            raise refuse(
                self.record.run_id,
                f"gate `{step.id}` was passed at a terminal prompt (by {who}), which leaves no "
                f"evidence a resume can verify, and it cannot be asked again {where}",
                hint="resume on a terminal to be asked again, or start a new run approved "
                "through signed files or the approval server",
            )
        self._reset(step, rec, "passed at a terminal prompt: asked again on resume")

    def _waiting(self, step: Step, rec: StepRecord) -> None:
        """A gate not yet decided: the interruption takes the workflow's rules again, and only
        recorded signed files that verify again stay known (the sources ask the server and the
        terminal again)."""

        approval = rec.approval
        if approval is None:
            return
        request = self.request(step, approval.interruption)
        known = self._files_verified_now(step, request, approval.submissions)
        self.record.update_step(
            step.id,
            approval=ApprovalState(
                state=GateState.WAITING,
                interruption=request,
                submissions=known,
                refused=approval.refused,
            ),
        )

    def _reset(self, step: Step, rec: StepRecord, why: str) -> None:
        self.log.write(f"gate `{step.id}`: {why}")
        pending(self.record, step.id, why)

    # -- what the gate is judged by ----------------------------------------------------------

    def request(self, step: Step, recorded: Interruption | None = None) -> Interruption:
        """The gate's interruption with what binds and judges it taken from the workflow file,
        the files and commit here; only display text and times come from the record."""
        manual = step.manual
        assert manual is not None
        labels = {f.name: f.label for f in recorded.fields} if recorded else {}
        record = self.record

        def text(value: object, default: str) -> str:
            # a record is JSON written by anyone: a text field may hold another type
            return value if isinstance(value, str) else default

        deadline = recorded.deadline if recorded else None
        if isinstance(deadline, str) and not _is_moment(deadline):
            # the wait reads it as a time: a record saying "soon" stopped every resume with an
            # internal error (attack pass)
            raise refuse(record.run_id, f"its record's deadline of gate `{step.id}` is not a time")
        return Interruption(
            id=f"{record.run_id}--{step.id}",
            run_id=record.run_id,
            step_id=step.id,
            step_name=step.name,
            title=text(recorded and recorded.title, manual.title or step.name),
            instructions=text(recorded and recorded.instructions, ""),
            teams=manual.teams,
            quorum=tuple((q.team, q.count) for q in manual.require),
            fields=tuple(
                FieldSpec(
                    f.name,
                    f.type,
                    text(labels.get(f.name), "") or f.label,
                    f.required,
                    f.pattern,
                    f.options,
                )
                for f in manual.fields
            ),
            created=text(recorded and recorded.created, record.started_at),
            deadline=deadline if isinstance(deadline, str) else None,
            environment=record.environment,
            workflow=self.workflow.name,
            digest=self.workflow.digest,
            commit=deployed_here(self.workspace),
            inputs=dict(record.inputs),
            following_steps=steps_after(
                self.workflow.steps, step.index, record.environment, frozenset(record.skip)
            ),
            skipped=tuple(sorted(record.skip)),
            started_by=str(record.started_by.get("username", "")),
            prevent_self_approval=manual.prevent_self_approval,
            sources=tuple(manual.sources or self.workflow.approvals.sources),
            run_started=record.started_at,
        )

    def keys(self, step: Step) -> tuple[Any, Any]:
        """Allowed signers of the pinned trust commit; revoked keys of it and of the ref's tip
        (a key revoked since the gate passed no longer passes it)."""
        if self._keys is not None:
            return self._keys

        trust = self.workflow.approvals.trust
        run_id = self.record.run_id
        if trust is None or not trust.allowed_signers:
            raise refuse(
                run_id,
                f"gate `{step.id}` holds signed files, but the workflow has no "
                "`approvals.trust.allowed-signers` to verify them",
            )
        files = TrustFiles.of(trust, self.git)
        if not files.protected and not self.options.insecure_local_trust:
            raise refuse(
                run_id,
                f"gate `{step.id}`: signed files are only verified against a protected "
                "`approvals.trust.ref`",
                hint="set `approvals.trust.ref`, or pass --insecure-local-trust for a local try",
            )
        try:
            signers, revoked = read_keys(trust, files)
            if files.protected and files.commit is not None:
                revoked = revoked | keys_at_tip(trust, signers, self.git)
        except RunnerError as exc:
            raise refuse(
                run_id,
                f"the trust files to verify gate `{step.id}` cannot be read: {exc.message}",
                hint=getattr(exc, "hint", None),
            ) from None
        self._keys = (signers, revoked)
        return self._keys

    def _namespace(self) -> str:
        config = self.workflow.approvals.file
        return config.namespace if config else "runner-approval"

    def _judge(self, request: Interruption, submissions: list[Submission]) -> Any:

        if self._directory is None:
            try:
                self._directory = load_directory(
                    self.workflow.approvals.trust, self.git, local_user()
                )
            except RunnerError as exc:
                raise refuse(
                    self.record.run_id,
                    f"the people file to judge the gates again cannot be read: {exc.message}",
                ) from None
        directory = self._directory
        started_by = directory.by_login(request.started_by)
        return judge(request, submissions, directory, started_by)


def _outputs(
    record: RunRecord,
    step_id: str,
    approved: bool,
    notes: str,
    person: Identity,
    fields: Mapping[str, str],
) -> None:

    outputs, octopus = manual_outputs(approved, notes, person, fields)
    record.update_step(step_id, outputs=outputs, octopus=octopus, secret_outputs=[])


#: the states of a step that has run, or will not
_DONE = frozenset(
    {StepStatus.SUCCESS, StepStatus.FAILURE, StepStatus.CANCELLED, StepStatus.SKIPPED}
)


def pending(record: RunRecord, step_id: str, why: str) -> None:
    """Set step ``step_id`` back to pending, as if it had never started."""
    record.update_step(
        step_id,
        status=StepStatus.PENDING,
        outcome="",
        conclusion="",
        reason=why,
        approval=None,
        outputs={},
        octopus={},
        secret_outputs=[],
        started_at=None,
        finished_at=None,
        exit_code=None,
        error=None,
        attempts=0,
    )


def _decided_at(approval: ApprovalState, now: datetime) -> datetime:
    """When the record says the gate was decided, never later than now: a signed approval is
    checked as of then (it may have expired since, as a legitimately resumed run's has)."""
    return _moment(approval.decided_at, now)


def _moment(text: object, now: datetime) -> datetime:
    moment = _aware(text)
    return now if moment is None else min(moment, now)


def _is_moment(text: str) -> bool:
    return _aware(text) is not None


def _aware(text: object) -> datetime | None:
    """``text`` as a time with its zone, or None (a record is JSON written by anyone)."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
