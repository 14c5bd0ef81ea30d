"""Resuming a recorded run, here or on another machine with a copy of the state folder.

Refused (exit 5) when the workflow or an action it uses changed since the run started, when the
run is being run or resumed elsewhere at this moment, or when a step was running as the runner died
and ``--rerun-interrupted`` was not given. A finished run is reported, not run again.

The record itself is not evidence (``runner.engine.evidence``): its trust commit must be reachable
from the trust ref, its digest, steps and commit must be those here, and every gate it shows as
passed is verified again from its evidence before anything runs.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msgspec import structs

from runner import policy as rules
from runner.approvals.prompt import in_ci
from runner.approvals.server_client import ServerClient
from runner.approvals.state import RecordShapeError
from runner.engine import carried_env, evidence, session, start
from runner.engine.gates import refuse
from runner.engine.journal import JournalError
from runner.engine.lock import run_lock
from runner.engine.preflight import PreflightError, steps_that_may_ask
from runner.engine.record import RecordStore, RunRecord, RunStatus, StepStatus
from runner.engine.run import Run
from runner.engine.seal import KEY_ENV, SealError, record_key
from runner.errors import RefusedError, UsageError
from runner.errors import UsageError as _UsageError
from runner.evaluation.contexts import UNFINISHED
from runner.git import Git
from runner.masking import MASK, Masker
from runner.model import Identity, Workflow
from runner.options import RunOptions
from runner.prepare import prepare
from runner.process import processes_in
from runner.steps.base import RunLog
from runner.workspace import absolute, shown_path, workspace_here

_ACTION_OUTPUT = re.compile(r"Octopus\.Action\[([^\]]+)\]\.Output\.([A-Za-z0-9_.-]+)", re.I)
_SECRET_OUTPUT = re.compile(
    r"steps\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\.\s*outputs\s*\.\s*([A-Za-z0-9_-]+)", re.I
)


def changed_files(record: RunRecord, now: Mapping[str, str]) -> list[str]:
    """What differs between the files the run started with and those here now."""
    changes = []
    for name in sorted(set(record.files) | set(now)):
        before, after = record.files.get(name), now.get(name)
        if before != after:
            if before is None:
                changes.append(f"{name}: new (sha256 {after})")
            elif after is None:
                changes.append(f"{name}: no longer used")
            else:
                changes.append(f"{name}: sha256 {before[:12]} -> {after[:12]}")
    return changes


def load_for_resume(store: RecordStore, run_id: str) -> RunRecord:
    """The record, its seal verified when this process has the key."""

    if not store.exists(run_id):
        raise UsageError(f"no run {run_id!r} in {store.state_dir}", hint=_other_runs(store, run_id))
    try:
        if store.key is not None:
            return store.load_sealed(run_id)
        return store.load(run_id)
    except RecordShapeError as exc:
        # a step's approval of the wrong type, refused as ``evidence.check_shape`` refuses the
        # record's other fields
        raise refuse(run_id, str(exc)) from None
    except JournalError as exc:
        raise RefusedError(
            f"the journal of run {run_id} does not match its record: {exc}",
            hint="the state folder was changed after the runner wrote it: restore it as the "
            "runner left it, or start a new run",
        ) from None
    except SealError as exc:
        raise RefusedError(
            f"the record of run {run_id} is not sealed by ${KEY_ENV}: {exc}: {store.path(run_id)}",
            hint=f"the state folder was changed, or the run was started without ${KEY_ENV} "
            "(or with another key): start a new run with the same key in both jobs",
        ) from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise RefusedError(
            f"the record of run {run_id} cannot be read: {store.path(run_id)}: {exc}"
        ) from None


def check_unsealed(
    record: RunRecord,
    store: RecordStore,
    environ: Mapping[str, str],
    log: RunLog,
    masker: Masker,
) -> None:
    """What a resume refuses to take from the record's environment (``carried_env``); without
    the key, in CI, one warning that the record is not sealed. The refusal quotes what the
    record holds, masked with the run's secrets (a record written before the runner stored PATH
    entries masked held them in clear, and this message went to the job's log)."""

    sealed = store.key is not None
    found = carried_env.problems(record.env, record.path, store.state_dir, sealed=sealed)
    if found:
        found = [masker.mask(problem) for problem in found]
        why = (
            "the state folder's files travel unsealed"
            if sealed
            else f"the record is not sealed (${KEY_ENV} is not set)"
        )
        raise RefusedError(
            f"run {record.run_id}'s record sets what a resumed run does not take from it, as "
            f"{why}: " + "; ".join(found[:10]),
            hint=f"set ${KEY_ENV} (a CI secret of the deployment environment) in the job that "
            "starts the run and in the one that resumes it, and keep tools out of the state "
            "folder; or set these in a step after the gate",
        )
    if not sealed and in_ci(environ):
        log.write(
            f"warning: run {record.run_id}'s record is not sealed: whoever can replace the "
            f"state folder between jobs can change it; set ${KEY_ENV} (`openssl rand -hex 32`, "
            "a secret of the deployment environment) in both jobs to seal it"
        )


def check_unsealed_facts(record: RunRecord, workflow: Workflow) -> None:
    """Refuse what only a sealed record can show: that a gate passed (its decisions verify
    again, but the record picks which: an abort can be left out), who started the run (a gate
    that prevents self-approval is judged by it) and when a gate began waiting (an
    ``on-timeout: proceed`` gate passes by it).

    In CI only: on a machine of one's own, the starter is who the environment says
    (``RUNNER_ACTOR``) and the state folder is one's own, so the record claims nothing more."""

    for step in workflow.steps:
        manual = step.manual
        try:
            rec = record.step(step.id)
        except KeyError:
            continue  # refused later, with the other differences
        decisions = rec.guided.decisions if rec.guided is not None else ()
        if manual is None and any(d.choice == "skip" for d in decisions):
            # a failure someone chose to skip is a decision as a gate's is: an unsealed record
            # can claim it (and leave out a fail) with nobody having decided (issue 21)
            raise RefusedError(
                f"run {record.run_id} cannot be resumed from an unsealed record: step "
                f"`{step.id}` failed and is recorded as skipped under guided failure, which "
                "only a sealed record can show",
                hint=f"set ${KEY_ENV} (a CI secret of the deployment environment) in the job "
                "that starts the run and in the one that resumes it, then start a new run",
            )
        guided = step.guided if manual is None else None
        if guided is not None and rec.status in _UNFINISHED:
            problem = ""
            if guided.prevent_self_approval:
                problem = (
                    f"step `{step.id}`'s guided failure prevents self-approval, and who "
                    "started the run is known only from the record"
                )
            elif (
                guided.on_timeout == "skip"
                and rec.guided is not None
                and rec.guided.waiting is not None
            ):
                problem = (
                    f"step `{step.id}` failed and its question skips on timeout, and when it "
                    "began waiting is known only from the record"
                )
            if problem:
                raise RefusedError(
                    f"run {record.run_id} cannot be resumed from an unsealed record: {problem}",
                    hint=f"set ${KEY_ENV} (a CI secret of the deployment environment) in the "
                    "job that starts the run and in the one that resumes it, then start a new run",
                )
        if manual is None or rec.status in (
            StepStatus.SKIPPED,
            StepStatus.FAILURE,
            StepStatus.CANCELLED,
        ):
            continue
        if rec.status == StepStatus.SUCCESS:
            # its evidence verifies, but an unsealed record chooses which evidence it shows: it
            # can leave out an abort signed on the branch, the deadline, or who started the run
            problem = (
                f"gate `{step.id}` is recorded as passed, and an unsealed record can leave out "
                "what would have stopped it (an abort, its deadline, who started the run)"
            )
        elif manual.prevent_self_approval:
            problem = f"gate `{step.id}` prevents self-approval, and who started the run"
            problem += " is known only from the record"
        elif manual.on_timeout == "proceed":
            problem = f"gate `{step.id}` proceeds on timeout, and when it began waiting is"
            problem += " known only from the record"
        else:
            continue
        raise RefusedError(
            f"run {record.run_id} cannot be resumed from an unsealed record: {problem}",
            hint=f"set ${KEY_ENV} (a CI secret of the deployment environment) in the job that "
            "starts the run and in the one that resumes it, then start a new run",
        )


#: a step's states before it has finished: a question about its failure may still be asked
_UNFINISHED = (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING, StepStatus.INTERRUPTED)


def prepare_steps(record: RunRecord, rerun_interrupted: bool) -> list[str]:
    """Steps left running by a dead runner: reported, and re-run only when asked."""
    interrupted = [
        s for s in record.steps if s.status in (StepStatus.RUNNING, StepStatus.INTERRUPTED)
    ]
    for step in interrupted:
        if rerun_interrupted:
            record.update_step(
                step.id,
                status=StepStatus.PENDING,
                outcome="",
                conclusion="",
                reason="re-run after an interruption (--rerun-interrupted)",
            )
        else:
            record.update_step(step.id, status=StepStatus.INTERRUPTED)
    return [s.id for s in interrupted]


def lost_secret(workflow: Workflow, run: Run) -> str | None:
    """A pending step that reads a secret output, or runs after a step set an environment
    variable to a secret, whose value this process no longer has."""
    lost_env = [name for name in run.record.secret_env if name not in run.secret_env]
    lost = (
        f"set the environment variable `{lost_env[0]}` to a value holding a secret"
        if lost_env
        # kept masked in the record as a variable's value is: the resumed process has the
        # entry as `***`, and a later step would run programs from another folder
        else f"added the PATH entry `{run.record.secret_path[0]}`, which holds a secret"
        if run.record.secret_path and run.path is None
        else None
    )
    if lost is not None:
        for step in workflow.steps:
            if run.record.step(step.id).status == StepStatus.PENDING and step.kind != "manual":
                # any process a later step starts would see the variable: which read it cannot
                # be told from the workflow
                return (
                    f"an earlier step {lost}, and secret values are never stored: step "
                    f"`{step.id}` and the steps after it cannot run in a resumed run"
                )
    secrets = {
        (rec.id, name)
        for rec in run.record.steps
        for name in rec.secret_outputs
        if (rec.id, name) not in run.secret_values
    }
    if not secrets:
        return None
    ids = {s.name.lower(): s.id for s in workflow.steps}
    for step in workflow.steps:
        if run.record.step(step.id).status != StepStatus.PENDING:
            continue
        texts = [
            step.run or "",
            str(step.condition or ""),
            *step.env.values(),
            *step.with_.values(),
        ]
        for text in texts:
            wanted = [(m.group(1), m.group(2)) for m in _SECRET_OUTPUT.finditer(text)]
            wanted += [
                (ids.get(m.group(1).lower(), ""), f"Octopus:{m.group(2)}")
                for m in _ACTION_OUTPUT.finditer(text)
            ]
            for source, name in wanted:
                if (source, name) in secrets:
                    return (
                        f"step `{step.id}` needs the secret output "
                        f"`{name.removeprefix('Octopus:')}` of step `{source}`, and secret "
                        "values are never stored: it cannot run in a resumed run"
                    )
    return None


def workflow_file(record: RunRecord, workspace: Path) -> str:
    """The run's workflow file in ``workspace``, as messages show it; a clear refusal when
    this checkout has no such file (started elsewhere, or resumed outside the checkout)."""
    path = absolute(record.workflow_path, workspace)
    if not path.is_file():
        raise UsageError(
            f"run {record.run_id} deploys {record.workflow_path}, which is not in the workspace "
            f"{workspace}",
            hint="run `runner resume` from inside the checkout (of the same commit) that the "
            "run deploys",
        )
    return shown_path(path)


def fetch_from_server(
    store: RecordStore, run_id: str, url: str, token: str | None, ca_bundle: str | None = None
) -> None:
    """Bring a run's record from the approval server into an empty state folder."""

    if not token:
        raise UsageError("--server needs a runner token in $RUNNER_SERVER_TOKEN")
    data = ServerClient(url, token, ca_bundle=ca_bundle).call("GET", f"/runs/{run_id}")
    try:
        record = RunRecord.from_json(json.dumps(data))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RefusedError(
            f"the approval server's record of run {run_id} cannot be read: {exc}"
        ) from None
    if record.run_id != run_id:
        # saved under its own id, it would be another run's record in this folder
        raise RefusedError(f"the server's copy of run {run_id} is the record of {record.run_id!r}")
    if record.status == RunStatus.RUNNING:
        # a run copies its record when it stops to wait and when it ends: a copy still
        # `running` is older than the run (which goes on elsewhere, was killed, or could not
        # copy a later record: one past the server's size limit), and going on from it ran
        # the steps it had finished again, then asked its gate again
        raise RefusedError(
            f"the server's copy of run {run_id} was made while it was running, not when it "
            "stopped to wait or ended: it is older than the run, and going on from it would "
            "run finished steps again",
            hint="resume it where its state folder is (the CI artifact); the run's log says "
            "why its record could not be copied when it stopped",
        )
    store.save(record)


def resume(
    run_id: str,
    state_dir: Path,
    *,
    log: RunLog,
    environ: Mapping[str, str],
    options: RunOptions,
    rerun_interrupted: bool,
    wait_for_lock: bool,
    secret_inputs: Mapping[str, str] | None = None,
    workspace: Path | None = None,
) -> int:
    """Go on with run ``run_id``, reading its workflow from ``workspace`` (the current
    folder's workspace root): the checkout being resumed, not the one the run started in."""

    store = RecordStore(state_dir, key=record_key(environ))
    record = load_for_resume(store, run_id)
    if record.run_id != run_id:
        # saved under its own id, it would write another run's folder (or outside the state
        # folder: the id in the file was never checked)
        raise RefusedError(
            f"the record of run {run_id} names another run ({str(record.run_id)[:80]!r})",
            hint="the state folder was changed; restore it as the runner left it",
        )
    if record.finished:
        log.write(
            f"run {run_id} already finished: {record.status} (exit code "
            f"{record.exit_code}); nothing to resume"
        )
        return int(record.exit_code or 0)
    with run_lock(store, run_id):
        pass  # refuse at once if another process holds the run

    evidence.check_pin_format(record)
    prepared = prepare(
        workflow_file(record, workspace or workspace_here()),
        record.environment,
        [],
        record.skip,
        environ,
        trust_commit=record.trust_commit,
        resumed=True,
    )
    # after the workflow's variables are known: what the record holds is masked with their
    # secrets in the refusals that quote it
    masker = Masker()
    for secret in [
        *prepared.variables.secrets(),
        *start.start_secrets(prepared, environ),
        # given again: a secret input's value (not one that only held a secret)
        *(
            value
            for name, value in (secret_inputs or {}).items()
            if name in prepared.workflow.inputs and prepared.workflow.inputs[name].secret
        ),
    ]:
        masker.add(secret)
    check_unsealed(record, store, environ, log, masker)
    # a record is not evidence (#17): the trust it pins must be the protected ref's
    evidence.check_trust_pin(record, prepared.workflow, prepared.loaded.workspace)
    trust = prepared.workflow.approvals.trust
    if trust is not None and trust.policy:
        # the policy's approval step, from the pinned policy whatever the record holds (its
        # other rules were checked when the run started)

        document = rules.load_policy(
            prepared.workflow,
            Git(prepared.loaded.workspace),
            insecure=options.insecure_local_trust,
        )
        prepared = structs.replace(
            prepared,
            workflow=rules.with_policy_approval(prepared.workflow, document, record.environment),
        )
    if store.key is None and in_ci(environ):
        check_unsealed_facts(record, prepared.workflow)
    changes = changed_files(record, start.used_files(prepared.workflow, prepared.loaded.workspace))
    if changes:
        raise RefusedError(
            f"run {run_id} started from other files than those here now: " + "; ".join(changes),
            hint="resume with the same commit as the run started, or start a new run",
        )
    evidence.check_record(
        record,
        prepared.workflow,
        prepared.loaded.workspace,
        environ=environ,
        options=options,
        log=log,
        skip=frozenset(record.skip) | prepared.skip,
        state=store.state_dir,
    )
    interrupted = prepare_steps(record, rerun_interrupted)
    if interrupted:
        # a runner killed mid-step leaves its step's processes running on this host (they
        # have their own session): rerunning started a second migration beside the first
        # (newcomer pass)
        alive = processes_in(store.folder(run_id) / "tmp")
        if alive:
            shown = ", ".join(str(pid) for pid in alive[:10]) + (" ..." if len(alive) > 10 else "")
            raise RefusedError(
                f"step(s) {', '.join(interrupted)} were running when the runner stopped, and "
                f"processes they started are still running here (pid {shown})",
                hint="wait for them to end, or stop them (kill -- -PGID, the process group "
                f"`ps -o pgid= -p {alive[0]}` shows), then resume"
                + (" with --rerun-interrupted" if rerun_interrupted else ""),
            )
    if interrupted and not rerun_interrupted:
        store.save(record)
        raise RefusedError(
            f"step(s) {', '.join(interrupted)} were running when the runner stopped; whether they "
            "finished is unknown",
            hint="check what they did, then resume with --rerun-interrupted to run them again",
        )
    inputs = restore_inputs(prepared.workflow, record.inputs, secret_inputs or {}, log, masker)
    prepared = _with_inputs(prepared, inputs)
    _preflight(prepared, record, environ, options, log)
    by = record.started_by
    created_by = Identity(
        by.get("id", ""), by.get("username", ""), by.get("display_name", ""), by.get("email", "")
    )
    run = start.build_run(prepared, record, store, log, environ, options, created_by)
    evidence.check_progress(run, frozenset(record.skip) | prepared.skip)
    problem = lost_secret(prepared.workflow, run)
    if problem:
        raise RefusedError(problem)
    log.write(f"resuming run {run_id} on {os.uname().nodename}")
    code = session.execute(run, wait_for_lock=wait_for_lock)
    session.export_outputs(run, environ)
    return code


def _preflight(
    prepared: Any,
    record: RunRecord,
    environ: Mapping[str, str],
    options: RunOptions,
    log: RunLog,
) -> None:
    """Refuse, before anything changes, a resume where the gates still ahead could not be
    decided (a prompt-only gate resumed without a terminal, from a script or CI): the gate
    failed for want of a source, the deployment with it, and the run could never be resumed
    again. ``runner run`` refuses the same way before its first step."""
    ahead = {rec.id for rec in record.steps if rec.status in UNFINISHED}
    asking = [step for step in steps_that_may_ask(prepared, environ) if step.id in ahead]
    try:
        # judged for the run's starter, as its gates are: not whoever resumes it
        starter = record.started_by.get("username", "")
        session.preflight(prepared, environ, options, log, steps=asking, started_by=starter)
    except PreflightError:
        log.write(
            f"run {record.run_id} is still waiting; resume it where one of those sources can "
            "ask (a terminal for the prompt)"
        )
        raise


def _other_runs(store: RecordStore, run_id: str) -> str:
    """What a resume of a run id the state folder does not have is told: the closest one it
    has, and the latest few (the folder was right and the id mistyped), or where else to look."""
    try:
        folders = [p for p in store.runs.iterdir() if (p / "record.json").exists()]
    except OSError:
        folders = []
    if not folders:
        return (
            "this state folder has no runs: pass --state-dir where the run's record is, or "
            "restore the state folder from the CI artifact"
        )
    names = [p.name for p in folders]
    close = difflib.get_close_matches(run_id, names, n=1)
    # finished runs are no candidates: resuming one has nothing left to do (a mistyped id was
    # told `did you mean` a run that had succeeded: newcomer pass). The newest few are read.
    latest = sorted(folders, key=_modified, reverse=True)[:MAX_CANDIDATES_READ]
    statuses = {
        name: start.recorded_status(store, name) for name in {*close, *(p.name for p in latest)}
    }
    hint = ""
    if close:
        status = statuses[close[0]]
        hint = (
            f"did you mean `{close[0]}`? "
            if status is None or not _finished(status)
            else f"`{close[0]}` is close, but it has finished ({status}): nothing to resume. "
        )
    open_runs = [p.name for p in latest if not _finished(statuses[p.name])][:5]
    if open_runs:
        hint += "runs here that can be resumed: " + ", ".join(f"`{name}`" for name in open_runs)
    else:
        hint += "no run here waits to be resumed: the latest have finished"
    command = "runner runs list"
    if Path(store.state_dir) != Path(".runner"):
        command += f" --state-dir {shlex.quote(str(store.state_dir))}"
    return f"{hint} (all of them, with their status: `{command}`)"


#: how many of a state folder's newest runs the hint of an unknown run id reads
MAX_CANDIDATES_READ = 20


def _finished(status: RunStatus | None) -> bool:
    """A run that cannot be resumed: finished, or whose record cannot be read."""
    return status is None or status not in (RunStatus.RUNNING, RunStatus.WAITING)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _with_inputs(prepared: Any, inputs: dict[str, Any]) -> Any:

    return structs.replace(prepared, inputs=inputs)


def restore_inputs(
    workflow: Workflow,
    recorded: Mapping[str, Any],
    given: Mapping[str, str],
    log: RunLog,
    masker: Masker,
) -> dict[str, Any]:
    """The run's inputs: recorded ones, and secret ones given again (they are never stored),
    as is an input that is not secret but held a secret (``masker``: the resumed run's
    secrets), which the record keeps masked: given again, it must mask to what the record
    shows."""

    inputs = dict(recorded)
    for name, value in given.items():
        spec = workflow.inputs.get(name)
        shown = recorded.get(name)
        masked = spec is not None and isinstance(shown, str) and MASK in shown
        if spec is None or not (spec.secret or masked):
            raise _UsageError(
                f"--input {name}: only secret inputs are given again on resume; "
                "the others are the run's own"
            )
        if not spec.secret and masker.mask(value) != shown:
            raise _UsageError(
                f"--input {name}: not the value the run was started with, which its record "
                f"shows as {shown!r}"
            )
        inputs[name] = value
    for name, spec in workflow.inputs.items():
        if spec.secret and name not in given and recorded.get(name) == "***":
            log.write(
                f"secret input {name!r} was not given again (--input {name}=...); "
                "it is empty in the resumed run"
            )
            inputs[name] = ""
        elif not spec.secret and name not in given and MASK in str(recorded.get(name)):
            log.write(
                f"input {name!r} held a secret, and the record keeps it masked: give it again "
                f"(--input {name}=...), or the resumed run's steps get it masked"
            )
    return inputs
