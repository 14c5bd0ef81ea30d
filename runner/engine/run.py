"""The engine: a state machine over the run record.

Each step goes ``pending -> running -> success|failure|cancelled`` or ``pending -> skipped``;
manual steps pass through ``waiting``. The record is saved at every boundary, so a run can be
reloaded and resumed from it; everything the engine needs to go on (outputs, job status, the
deployment error, environment set by steps) lives in the record, except secret values, which are
never stored and are read again from the environment on resume.

Effects come in through the constructor: the clock, the step kinds, the approval wait, the log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msgspec import structs

from runner import expressions
from runner.approvals.request import Submission
from runner.approvals.state import ApprovalState, GuidedDecision, GuidedState, Refusal
from runner.bounded import read_prefix
from runner.engine.record import RecordStore, RunRecord, RunStatus, StepRecord, StepStatus
from runner.errors import ExitCode, ExpressionError, RunnerError, expression_at
from runner.evaluation.conditions import (
    Decision,
    JobStatus,
    barrier_decision,
    evaluate_condition,
    scope_decision,
    steps_after,
)
from runner.evaluation.contexts import UNFINISHED, ContextBuilder, RunFacts, StepState
from runner.evaluation.hashfiles import hash_files
from runner.evaluation.render import escape_octostache, note_json_reads, render_text
from runner.expressions import FunctionSpec
from runner.load.build import text
from runner.load.checks import action_path
from runner.load.yaml import MAX_FILE_BYTES, expression_in
from runner.masking import Masker
from runner.model import Identity, Step, Workflow
from runner.options import RunOptions
from runner.process import ProcessGroups
from runner.steps import guided as gf
from runner.steps.base import Detached, RunLog, Siblings, StepContext, StepKind, StepResult
from runner.steps.scratch import Scratch
from runner.variables.resolve import SECRET_MASK, VariableSet

#: steps started together by ``start: with-previous`` run at most this many at once
MAX_PARALLEL = 8
__all__ = ["UNFINISHED", "Run", "cancel_record", "new_record", "utc_now"]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Run:
    """One run of a workflow: its model, its record, and the effects it may use."""

    workflow: Workflow
    record: RunRecord
    store: RecordStore
    variables: VariableSet
    inputs: Mapping[str, Any]
    created_by: Identity
    kinds: Mapping[str, StepKind]
    log: RunLog
    workspace: Path
    environ: Mapping[str, str]
    masker: Masker = field(default_factory=Masker)
    groups: ProcessGroups = field(default_factory=ProcessGroups)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = field(default=lambda seconds: None)
    skip: frozenset[str] = frozenset()
    #: what the command line asks (``--detach-on-wait`` ...), for the steps to read
    options: RunOptions = field(default_factory=RunOptions)
    #: the values of secret outputs of this process's steps (never stored in the record)
    secret_values: dict[tuple[str, str], str] = field(default_factory=dict)
    #: environment variables steps set (``RUNNER_ENV``) to values holding a secret: the
    #: record keeps them masked, later steps of this process get them whole
    secret_env: dict[str, str] = field(default_factory=dict)
    #: the PATH entries steps added (``RUNNER_PATH``) as this process knows them, whole, in
    #: the record's order; None while this process has added none (the record's are whole
    #: then, but for those ``record.secret_path`` lists, which a resume refuses to run after)
    path: list[str] | None = None
    #: the manual step the run detached at, if it did
    detached_at: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: held while a failed step asks what to do (guided failure): one question at a time
    _asking: threading.Lock = field(default_factory=threading.Lock)
    #: the values and contexts a step alone in its group was decided on, for its run
    _decided: tuple[str, tuple[dict[str, str], dict[str, object]]] | None = None
    #: the workflow's barriers (the policy's approval), looked at before each step
    _barriers: tuple[Step, ...] | None = None

    def stamp(self) -> str:
        return self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @property
    def environment(self) -> str:
        return self.record.environment

    def execute(self) -> int:
        """Run (or go on running) every step not yet finished; return the exit code."""
        for secret in self.variables.secrets():
            self.masker.add(secret)
        if self.store.key is not None:
            self.masker.add(self.store.key.decode("utf-8"))
        self.record.status = RunStatus.RUNNING
        self.record.pid = os.getpid()
        self.contexts.invalidate()  # a resume may have changed steps since the last build
        self._derive_ran()
        self.store.save(self.record)
        self.log.run_started(self.workflow, self.record)
        for unset in self.variables.items:
            if unset.value is None and unset.missing_env is not None:
                # a CI job that forgot to pass a secret would deploy with the text as written
                self.log.write(
                    f"warning: variable `{unset.name}` reads ${unset.missing_env}, which is not "
                    f"set: `#{{{unset.name}}}` stays as written where a step uses it"
                )
        # made here, before steps run in threads, so that they all share one (its folder is
        # made when the first script step needs it)
        scratch = self.scratch
        # $RUNNER_TEMP is emptied when a process of the run starts and ends, as GitHub empties
        # it at each job's start and end: steps leave credentials there (a kubeconfig, a
        # database password file), and a resume is another job, often on another machine
        self._empty_temp()
        try:
            return self._execute()
        finally:
            # at the end, a detach, an error or a second Ctrl-C: the steps' files are per process
            scratch.close()
            self._empty_temp()

    def _derive_ran(self) -> None:
        """A resumed run: register again what the steps that ran computed from secrets
        (``#{Creds.password}`` or ``${{ fromJSON(secrets.Creds).password }}`` written to a file
        that a later step prints), as their texts render now. What cannot be told again (a
        ``fromJSON`` read of a text that no longer renders, a secret step output's being gone;
        a composite action's own steps) is taken as every part of every JSON secret."""
        if not self.masker.values:
            return
        every_part = False
        for step in self.workflow.steps:
            if step.kind == "manual" or self.record.step(step.id).status in (
                StepStatus.PENDING,
                StepStatus.WAITING,
                StepStatus.SKIPPED,
            ):
                continue
            if step.uses and not every_part:
                every_part = _reads_json(self.workspace, step.uses)
            texts = [
                template
                for template in (step.run or "", *step.env.values(), *step.with_.values())
                if "#{" in template or "fromjson" in template.lower()
            ]
            if not texts:
                continue
            try:
                values, contexts = self.substitution(step)
            except RunnerError:
                every_part = every_part or any("fromjson" in t.lower() for t in texts)
                continue
            functions = self.host_functions()
            for template in texts:
                try:
                    render_text(template, values, contexts, functions, secrets=self.masker)
                except RunnerError:
                    every_part = every_part or "fromjson" in template.lower()
        if every_part:
            self.masker.add_every_part(expressions.json_parts)

    def _execute(self) -> int:
        try:
            for group in self._groups():
                pending = [
                    s
                    for s in group
                    if self.record.step(s.id).status in (StepStatus.PENDING, StepStatus.WAITING)
                ]
                if pending:
                    self._run_group(pending)
        except Detached as detached:
            self.detached_at = detached.step_id
            self.record.status = RunStatus.WAITING
            self.record.exit_code = ExitCode.WAITING
            self.store.save(self.record, durable=True)
            self.log.run_detached(self.record, self.store.resume_command(self.record.run_id))
            return ExitCode.WAITING
        return self._finish()

    # -- groups and decisions -------------------------------------------------------------

    def _groups(self) -> list[list[Step]]:
        groups: list[list[Step]] = []
        for step in self.workflow.steps:
            if step.with_previous and groups:
                groups[-1].append(step)
            else:
                groups.append([step])
        return groups

    def _status(self) -> JobStatus:
        if self.groups.cancelled.is_set():
            return JobStatus.CANCELLED
        return JobStatus(self.record.job_status)

    @functools.cached_property
    def contexts(self) -> ContextBuilder:
        """The run's shared values and contexts, told of each step that finishes."""
        return ContextBuilder(
            self.workflow,
            self.record,
            RunFacts(self.record.run_id, self.environment, self.created_by, self.inputs),
            self.variables,
            {k: escape_octostache(_text(v)) for k, v in self.inputs.items()},
            self.secret_values,
        )

    @functools.cached_property
    def _steps_folder(self) -> Path:
        return self.store.folder(self.record.run_id) / "steps"

    @functools.cached_property
    def scratch(self) -> Scratch:
        """This process's folder for the steps' scripts and file-command files."""
        return Scratch(self.environ)

    @functools.cached_property
    def _temp_folder(self) -> str:
        return str(self.store.folder(self.record.run_id) / "tmp")

    def _empty_temp(self) -> None:
        # a link a step put in the folder's place is removed, not followed; rmtree follows none
        # inside it
        if os.path.islink(self._temp_folder):
            with contextlib.suppress(OSError):
                os.unlink(self._temp_folder)
        shutil.rmtree(self._temp_folder, ignore_errors=True)

    def states(self) -> dict[str, StepState]:
        """What ``steps.<id>`` and Octopus's output variables show of finished steps."""
        return self.contexts.states()

    def substitution(self, step: Step) -> tuple[dict[str, str], dict[str, object]]:
        """The ``#{}`` variables and ``${{ }}`` contexts a step sees."""
        shared_values, shared_contexts = self.contexts.shared()
        values = dict(shared_values)
        contexts = dict(shared_contexts)
        # the env context holds values, not templates: the workflow's env rendered, then what
        # steps set through RUNNER_ENV, then the step's own env rendered with those (GitHub's
        # order: the step's env wins)
        functions = self.host_functions()
        masker = self.masker
        env: dict[str, str] = {}
        contexts["env"] = {}
        contexts["job"] = {"status": self._status().value}
        for name, template in self.workflow.env.items():
            with expression_in(self.workflow.at(f"env.{name}"), template):
                env[name] = render_text(template, values, contexts, functions, secrets=masker)
        env.update(self.record.env)
        env.update(self.secret_env)
        contexts["env"] = dict(env)
        for name, template in step.env.items():
            with expression_in(step.where.get(f"env.{name}") or step.at("env"), template):
                env[name] = render_text(template, values, contexts, functions, secrets=masker)
        contexts["env"] = env
        return values, contexts

    def decision(self, step: Step) -> Decision:
        """Whether ``step`` runs, decided on the run as it stands (a resume checks a gate the
        record says was skipped with it). The states kept for later steps are dropped after:
        the resume may then set back to pending a step the record showed as finished, and the
        kept ones take a finished step's outputs as final."""
        try:
            return self._decide(step)
        finally:
            self.contexts.invalidate()

    def _decide(
        self,
        step: Step,
        substituted: dict[str, tuple[dict[str, str], dict[str, object]]] | None = None,
    ) -> Decision:
        if self._barriers is None:
            # only the barriers: each step looking at every one before it grew with the run
            self._barriers = tuple(s for s in self.workflow.steps if s.barrier)
        scoped = scope_decision(step, self.environment, self.skip) or barrier_decision(
            step, self._barriers, self._passed
        )
        if scoped is not None:
            return scoped
        values, contexts = self.substitution(step)
        if substituted is not None:
            substituted[step.id] = (values, dict(contexts))
        with expression_at(step.at("if")):
            return evaluate_condition(
                step.condition,
                self._status(),
                contexts,
                values,
                functions=self.host_functions(),
                secrets=self.masker,
            )

    def _passed(self, gate: Step) -> bool:
        rec = self.record.step(gate.id)
        return rec.status == StepStatus.SUCCESS and rec.conclusion == "success"

    # -- running ---------------------------------------------------------------------------

    def _run_group(self, steps: list[Step]) -> None:
        if self.groups.cancelled.is_set():
            with self._lock:
                self._note_cancelled(None)
                self.contexts.invalidate()
        started: list[Step] = []
        substituted: dict[str, tuple[dict[str, str], dict[str, object]]] = {}
        for step in steps:
            rec = self.record.step(step.id)
            if rec.status == StepStatus.WAITING:
                started.append(step)
                continue
            try:
                decision = self._decide(step, substituted)
            except ExpressionError as exc:
                # its message may quote a value it was given (a secret input's, in format())
                why = self.masker.mask(str(exc))
                self._finish_step(step, StepResult("failure", error=why), reason=why)
                continue
            if not decision.run:
                with self._lock:
                    skipped = self.record.update_step(
                        step.id,
                        status=StepStatus.SKIPPED,
                        outcome=StepStatus.SKIPPED,
                        conclusion=StepStatus.SKIPPED,
                        reason=decision.reason,
                    )
                    self.contexts.step_finished(skipped)
                self.log.step_skipped(step, decision.reason)
                continue
            self.record.update_step(
                step.id, status=StepStatus.RUNNING, reason=decision.reason, started_at=self.stamp()
            )
            started.append(step)
        self.store.save(self.record)
        if len(started) == 1:
            if not self.groups.cancelled.is_set() and started[0].id in substituted:
                # alone in its group, the step runs on the run as it was decided on: its values
                # and contexts are the decision's (building them again cost as much as the rest
                # of deciding), unless a cancellation changed ``job.status`` since
                self._decided = (started[0].id, substituted[started[0].id])
            self._run_step(started[0])
        elif started:
            # about 7 ms of every `runner run`; only steps started together use threads
            from concurrent.futures import ThreadPoolExecutor

            siblings = Siblings()
            with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(started))) as pool:
                for future in [pool.submit(self._run_step, s, siblings) for s in started]:
                    future.result()

    def _run_step(self, step: Step, siblings: Siblings | None = None) -> None:
        self.log.step_started(step)
        decided, self._decided = self._decided, None
        if decided is not None and decided[0] == step.id:
            values, contexts = decided[1]
        else:
            values, contexts = self.substitution(step)
        env = self._process_env(step, values, contexts)
        # made only if a file goes there (a manual step's request): a folder a step costs a new
        # inode on disk, more than the step's bookkeeping
        step_dir = self._steps_folder / step.id

        functions = self.host_functions()

        def render(template: str) -> str:
            return render_text(template, values, contexts, functions, secrets=self.masker)

        ctx = StepContext(
            workflow=self.workflow,
            step=step,
            environment=self.environment,
            run_id=self.record.run_id,
            workspace=self.workspace,
            step_dir=step_dir,
            scratch=self.scratch,
            env=env,
            render=render,
            masker=self.masker,
            log=self.log,
            groups=self.groups,
            contexts=contexts,
            variables=values,
            sleep=self.sleep,
            now=self.clock,
            previous=self.record.step(step.id).approval,
            checkpoint=lambda state: self._checkpoint(step, state),
            options=self.options,
            started_by=self.created_by,
            run_facts={
                "digest": self.record.digest,
                "commit": self.record.commit,
                "inputs": self.record.inputs,
                "started_at": self.record.started_at,
                "skipped": self.skip,
            },
            # only a question to people lists them: for every step, the cost of a step grew
            # with the number of steps
            following=steps_after(self.workflow.steps, step.index, self.environment, self.skip)
            if step.kind == "manual" or step.guided is not None
            else (),
            cancelled=self.groups.cancelled.is_set,
            interruptible=self.groups.cancelled.call,
            host_env=self.environ,
            siblings=siblings,
        )
        if step.guided is not None and step.kind != "manual":
            result = self._guided(step, ctx)
        else:
            result = self._attempt(step, ctx)
        self._finish_step(step, result)

    def _attempt(self, step: Step, ctx: StepContext) -> StepResult:
        try:
            return self.kinds[step.kind](ctx)
        except Detached:
            raise
        except RunnerError as exc:
            # a message may quote a value the step was given (the record masks it too)
            self.log.step_error(step, self.masker.mask(str(exc)), exc.location)
            return StepResult("failure", error=str(exc), exit_code_hint=None)

    def _guided(self, step: Step, ctx: StepContext) -> StepResult:
        """Run the step under guided failure (issue 21): while it fails, ask what to do; a
        retry runs it again as a new attempt. A resumed run goes on from the open question."""

        guided = step.guided
        assert guided is not None
        saved = self.record.step(step.id).guided or GuidedState()
        decisions = list(saved.decisions)
        waiting = saved.waiting
        attempt = len(decisions) + 1
        while True:
            fresh = waiting is None
            if waiting is None:
                tail = gf.TailLog(self.log)
                result = self._attempt(step, structs.replace(ctx, log=tail))
                if (
                    result.outcome != "failure"
                    or self.groups.cancelled.is_set()
                    or self._continue_on_error(step)
                ):
                    break
                failure = gf.failure_of(ctx, result, list(tail.lines))
                request = gf.build_request(ctx, guided, attempt, failure, decisions)
                known: tuple[Submission, ...] = ()
                refused: tuple[Refusal, ...] = ()
            else:
                # the failed attempt ran before the detach: what it showed is in the record
                recorded = waiting.interruption
                failure = dict(recorded.failure) if recorded is not None else {}
                result = StepResult(
                    "failure",
                    exit_code=failure.get("exit_code"),
                    error=failure.get("error") or None,
                    timed_out=bool(failure.get("timed_out")),
                )
                request = gf.build_request(ctx, guided, attempt, failure, decisions, recorded)
                known = waiting.submissions
                refused = waiting.refused
                waiting = None

            def checkpoint(state: ApprovalState) -> None:
                self._guided_checkpoint(step, decisions, state)

            # one question at a time: steps started together may fail together
            try:
                with self._asking:
                    if fresh:
                        # asked from now: it was not while another step's question was open
                        request = gf.build_request(ctx, guided, attempt, failure, decisions)
                    decision = gf.ask(ctx, guided, request, known, refused, checkpoint)
            except RunnerError as exc:
                # nobody can be asked (no usable source): the step fails as it would have
                # without guided failure, and says why nobody was asked
                message = self.masker.mask(str(exc))
                self.log.step_error(step, message, exc.location)
                decision = gf.unasked(request, message, self.stamp())
            decisions.append(decision)
            self._guided_checkpoint(step, decisions, None)
            if decision.choice != "retry":
                break
            attempt += 1
            self.log.line(step, f"retrying: attempt {attempt}")
        result = gf.settle(step, result, decisions, attempt)
        result.guided = GuidedState(tuple(decisions)) if decisions else None
        return result

    def _guided_checkpoint(
        self, step: Step, decisions: list[GuidedDecision], waiting: ApprovalState | None
    ) -> None:
        """Record a failed step's decisions and open question durably (before waiting on, and
        as soon as one is decided: a retry that then crashes the runner is not asked twice)."""
        with self._lock:
            rec = self.record.step(step.id)
            self.record.update_step(
                step.id,
                status=StepStatus.WAITING if waiting is not None else rec.status,
                guided=self._recorded_guided(GuidedState(tuple(decisions), waiting)),
            )
            self.store.save(self.record, durable=True)

    def _checkpoint(self, step: Step, state: ApprovalState) -> None:
        """Record a manual step's interruption and submissions durably before waiting on."""
        with self._lock:
            self.record.update_step(
                step.id, status=StepStatus.WAITING, approval=self._recorded(state)
            )
            self.store.save(self.record, durable=True)

    def _recorded(self, state: ApprovalState | None) -> ApprovalState | None:
        """A gate's state as the record keeps it: the submissions' notes and fields masked, as
        its decisions' are (an approver may quote a secret; the record travels as a CI
        artifact). A resume never reads them: it verifies a signed file again from its
        evidence, and asks the server and the terminal again."""
        if state is None or not state.submissions:
            return state
        return structs.replace(state, submissions=self._masked(state.submissions))

    def _recorded_guided(self, state: GuidedState | None) -> GuidedState | None:
        """A guided failure's state as the record keeps it (see :meth:`_recorded`)."""
        if state is None:
            return None
        decisions = tuple(
            structs.replace(d, submissions=self._masked(d.submissions)) if d.submissions else d
            for d in state.decisions
        )
        return structs.replace(state, decisions=decisions, waiting=self._recorded(state.waiting))

    def _masked(self, submissions: tuple[Submission, ...]) -> tuple[Submission, ...]:
        mask = self.masker.mask
        return tuple(
            structs.replace(
                s, notes=mask(s.notes), fields={k: mask(v) for k, v in s.fields.items()}
            )
            if s.notes or s.fields
            else s
            for s in submissions
        )

    def host_functions(self) -> dict[str, Callable[..., object]]:

        return {"hashFiles": FunctionSpec(lambda *p: hash_files(self.workspace, *p), 1, None)}

    def _process_env(
        self, step: Step, values: Mapping[str, str], contexts: Mapping[str, object]
    ) -> dict[str, str]:
        env = dict(self.environ)
        # no step needs the record key, and with it one could seal a record of its own
        env.pop("RUNNER_RECORD_KEY", None)
        rendered = contexts["env"]
        assert isinstance(rendered, dict)
        env.update(rendered)
        if self.record.path:
            added = self.path if self.path is not None else self.record.path
            env["PATH"] = os.pathsep.join([*added, env.get("PATH", "")])
        env.update(
            {
                "RUNNER_RUN_ID": self.record.run_id,
                "RUNNER_ENVIRONMENT": self.environment,
                "RUNNER_WORKSPACE": str(self.workspace),
                "RUNNER_TEMP": self._temp_folder,
                "CI": env.get("CI", "true"),
            }
        )
        # again at each step: a step may have removed it (one `stat` when it is there)
        if not os.path.isdir(self._temp_folder):
            os.makedirs(self._temp_folder, exist_ok=True)
        return env

    def _finish_step(self, step: Step, result: StepResult, reason: str | None = None) -> None:
        with self._lock:
            old = self.record.step(step.id)
            # GitHub's split: ``continue-on-error`` keeps the failed outcome but concludes success
            tolerated = result.outcome == "failure" and (
                result.tolerated or self._continue_on_error(step)
            )
            conclusion = "success" if tolerated else result.outcome
            # one replacement, with the final status: a parallel step reading the run without
            # the lock sees the step either unfinished or finished with its outputs
            rec = self.record.update_step(
                step.id,
                status=StepStatus(result.outcome),
                outcome=result.outcome,
                conclusion=conclusion,
                reason=reason or old.reason,
                finished_at=self.stamp(),
                attempts=result.attempts,
                exit_code=result.exit_code,
                error=self.masker.mask(result.error) if result.error else None,
                approval=self._recorded(result.approval)
                if result.approval is not None
                else old.approval,
                guided=self._recorded_guided(result.guided)
                if result.guided is not None
                else old.guided,
                **self._outputs(step.id, old, result),
            )
            self._store_env(result.env)
            if result.path:
                self._store_path(result.path)
            if rec.conclusion == "cancelled":
                self._note_cancelled(step)
            if rec.conclusion == "failure" and self.record.job_status == "success":
                self.record.job_status = "failure"
                message, detail = self._error_text(step, result)
                self.record.error = {"message": message, "detail": detail}
                if result.exit_code_hint is not None:
                    self.record.exit_code = result.exit_code_hint
            elif rec.conclusion == "failure" and result.exit_code_hint is not None:
                self.record.exit_code = self.record.exit_code or result.exit_code_hint
            self.contexts.step_finished(rec)
            durable = step.kind == "manual" or rec.guided is not None
            self.store.save(self.record, durable=durable)
        self.log.step_finished(step, rec, result.summary)

    def _note_cancelled(self, step: Step | None) -> None:
        """A cancelled run is not a successful one: ``Octopus.Deployment.Error`` says so to the
        ``always()`` steps (the seed's report said "succeeded" after a Ctrl-C), unless an
        earlier failure already set it."""
        if self.record.error is None:
            detail = f"Step '{step.name}' was cancelled" if step is not None else ""
            self.record.error = {"message": "The deployment was cancelled", "detail": detail}

    def _error_text(self, step: Step, result: StepResult) -> tuple[str, str]:
        if step.kind == "manual":
            return (
                self.masker.mask(result.error or f"Manual intervention '{step.name}' failed"),
                self.masker.mask(result.octopus.get("Manual.Notes", "")),
            )
        detail = result.error or (
            f"exit code {result.exit_code}" if result.exit_code is not None else "failed"
        )
        return f"Step '{step.name}' failed", self.masker.mask(detail)

    def _continue_on_error(self, step: Step) -> bool:
        value = step.continue_on_error
        if isinstance(value, bool):
            return value

        if "${{" not in value:
            return value.strip().lower() == "true"
        _, contexts = self.substitution(step)
        expression, functions = _unwrap(value), self.host_functions()
        try:
            with expression_at(step.at("continue-on-error")):
                return expressions.is_truthy(
                    expressions.evaluate(expression, contexts, functions=functions)
                )
        except ExpressionError as exc:
            # the step failed, and whether that is tolerated cannot be told: it is not (an
            # error here once ended the run with the record left `running`, unmasked)
            note_json_reads(expression, contexts, functions, self.masker, str(exc))
            message = self.masker.mask(f"{exc}; the step's failure is not tolerated")
            self.log.step_error(step, message, exc.location)
            return False

    def _outputs(self, step_id: str, old: StepRecord, result: StepResult) -> dict[str, Any]:
        """A finished step's outputs for its record, masked: one that holds a secret (the step
        wrote a secret, or an encoding of one, to ``RUNNER_OUTPUT``) is a secret output, its
        value kept in this process only for the steps that read it, and shown masked in the
        record."""
        outputs = dict(old.outputs)
        octopus = dict(old.octopus)
        secret_outputs = list(old.secret_outputs)
        for name, value in result.outputs.items():
            masked = self.masker.mask(value)
            if name in result.secret_outputs or masked != value:
                self.secret_values[(step_id, name)] = value
                secret_outputs.append(name)
            if name not in result.secret_outputs:
                outputs[name] = masked
        for name, value in result.octopus.items():
            key = f"Octopus:{name}"
            masked = self.masker.mask(value)
            if key in result.secret_outputs or masked != value:
                self.secret_values[(step_id, key)] = value
                secret_outputs.append(key)
            if key not in result.secret_outputs:
                octopus[name] = masked
        return {"outputs": outputs, "octopus": octopus, "secret_outputs": secret_outputs}

    def _store_env(self, env: Mapping[str, str]) -> None:
        """``RUNNER_ENV`` values into the record, masked; whole ones stay in this process."""
        for name, value in env.items():
            masked = self.masker.mask(value)
            self.record.env[name] = masked
            if masked != value:
                self.secret_env[name] = value
                if name not in self.record.secret_env:
                    self.record.secret_env.append(name)
            else:
                self.secret_env.pop(name, None)
                if name in self.record.secret_env:
                    self.record.secret_env.remove(name)

    def _store_path(self, entries: list[str]) -> None:
        """``RUNNER_PATH`` entries into the record, masked (one holding a secret was stored,
        sent to the server and shown by ``runs show`` in clear); whole ones stay in this
        process, as ``RUNNER_ENV``'s values do."""
        masked = [self.masker.mask(entry) for entry in entries]
        whole = self.path if self.path is not None else self.record.path
        self.path = [*entries, *whole]
        self.record.path = [*masked, *self.record.path]
        for shown, entry in zip(masked, entries, strict=True):
            if shown != entry and shown not in self.record.secret_path:
                self.record.secret_path.append(shown)

    # -- the end ---------------------------------------------------------------------------

    def _finish(self) -> int:
        if self.groups.cancelled.is_set():
            status, code = RunStatus.CANCELLED, int(ExitCode.INTERRUPTED)
        elif self.record.job_status == "success":
            status, code = RunStatus.SUCCESS, int(ExitCode.SUCCESS)
        elif self.record.exit_code == ExitCode.ABORTED:
            status, code = RunStatus.ABORTED, int(ExitCode.ABORTED)
        elif self.record.exit_code == ExitCode.TIMED_OUT:
            status, code = RunStatus.TIMED_OUT, int(ExitCode.TIMED_OUT)
        else:
            status, code = RunStatus.FAILURE, int(ExitCode.STEP_FAILED)
        self.record.status = status
        self.record.exit_code = code
        self.record.finished_at = self.stamp()
        self.store.save(self.record, durable=True)
        self.log.run_finished(self.workflow, self.record)
        return code

    def cancel_now(self) -> None:
        """End the run as cancelled where it stands (a signal before its steps began, or a
        second one): nothing more runs. See :func:`cancel_record`."""
        with self._lock:
            cancel_record(self.record, self.stamp())
            self.store.save(self.record, durable=True)

    def outputs(self) -> dict[str, str]:
        """The workflow's ``outputs``, evaluated at the end of the run (masked)."""
        result: dict[str, str] = {}
        for output in self.workflow.outputs.values():
            values, contexts = self.substitution(self.workflow.steps[-1])
            try:
                text = render_text(output.value, values, contexts, secrets=self.masker)
                result[output.name] = self.masker.mask(text)
            except ExpressionError:
                result[output.name] = ""
        return result


def cancel_record(record: RunRecord, now: str) -> None:
    """Mark ``record`` cancelled (exit 130): steps running or waiting are cancelled (whether a
    killed one finished is unknown), steps not started are skipped, and
    ``Octopus.Deployment.Error`` says so unless an earlier failure set it."""
    for step in list(record.steps):
        if step.status in (StepStatus.RUNNING, StepStatus.WAITING, StepStatus.INTERRUPTED):
            record.update_step(
                step.id,
                status=StepStatus.CANCELLED,
                outcome=StepStatus.CANCELLED,
                conclusion=StepStatus.CANCELLED,
                finished_at=step.finished_at or now,
            )
        elif step.status == StepStatus.PENDING:
            record.update_step(
                step.id,
                status=StepStatus.SKIPPED,
                outcome=StepStatus.SKIPPED,
                conclusion=StepStatus.SKIPPED,
                reason="the run was cancelled before this step",
            )
    if record.error is None:
        record.error = {"message": "The deployment was cancelled", "detail": ""}
    record.status = RunStatus.CANCELLED
    record.exit_code = int(ExitCode.INTERRUPTED)
    record.finished_at = now


def new_record(
    workflow: Workflow,
    run_id: str,
    environment: str,
    inputs: Mapping[str, Any],
    secret_inputs: set[str],
    created_by: Identity,
    files: Mapping[str, str],
    now: str,
) -> RunRecord:
    """A fresh record with every step pending."""

    return RunRecord(
        run_id=run_id,
        workflow_path=workflow.path,
        workflow_name=workflow.name,
        digest=workflow.digest,
        environment=environment,
        files=dict(files),
        inputs={k: (SECRET_MASK if k in secret_inputs else v) for k, v in inputs.items()},
        started_by={
            "id": created_by.id,
            "username": created_by.username,
            "display_name": created_by.display_name,
            "email": created_by.email,
        },
        started_at=now,
        host=platform.node(),
        steps=[StepRecord(step.id, step.name) for step in workflow.steps],
    )


def _text(value: Any) -> str:

    return text(value)


#: a local action's own `uses:` of another local action
_USES = re.compile(r"""uses:[ \t]*["']?(\./[^\s"'#]+)""")


def _reads_json(workspace: Path, uses: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a local action, or one it uses, reads JSON with ``fromJSON`` (or cannot be read
    to tell)."""
    try:
        # bounded as every action is read (``load_action``): the `uses:` here are found by a
        # pattern in the text, a script's included, so an action no check loaded is read too,
        # and one linked to /dev/zero was read whole (a MemoryError on resume)
        raw = read_prefix(action_path(workspace, uses), MAX_FILE_BYTES)
    except OSError:
        return True
    if len(raw) > MAX_FILE_BYTES:
        return True  # cannot be read to tell
    text = raw.decode("utf-8", errors="replace")
    if "fromjson" in text.lower():
        return True
    seen = seen | {uses}
    inner = {found for found in _USES.findall(text) if found not in seen}
    return any(_reads_json(workspace, found, seen) for found in inner)


def _unwrap(value: str) -> str:
    text = value.strip()
    if text.startswith("${{") and text.endswith("}}"):
        return text[3:-2]
    return text
