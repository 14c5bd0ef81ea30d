"""What a resumed run checks again before it trusts its record (issue #17: a record is not
evidence).

A run record is a file in the state folder, and the state folder travels: a CI artifact carries it
between jobs, the approval server keeps a copy any runner token may write. So ``runner resume``
takes nothing that lets a deployment past a gate from the record alone:

- the trust commit the record pins must be the trust ref's tip or one of its ancestors;
- the record's workflow digest, steps and commit must be those of the files here;
- every gate is checked again from its evidence (``runner.engine.gates``), and so is every
  failed step skipped under guided failure;
- a gate recorded as skipped is decided again, a failed or aborted one stays failed, and the job
  status follows the steps' conclusions, not the record's field;
- no step after the first gate not passed can have run: one the record shows as finished runs.

Each refusal is a :class:`RefusedError` (exit 5) naming the run and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from runner.approvals.trust import reachable
from runner.engine.gates import Gates, deployed_here, pending, refuse
from runner.engine.record import RunRecord, StepStatus
from runner.errors import RunnerError
from runner.evaluation.conditions import scope_decision
from runner.git import Git
from runner.model import Workflow
from runner.options import RunOptions
from runner.steps.base import RunLog

if TYPE_CHECKING:
    from runner.engine.run import Run

_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def check_pin_format(record: RunRecord) -> None:
    """A trust commit is a commit id: it reaches ``git`` as an argument (checked before any trust
    file is read through it). The record's shape is checked first."""
    check_shape(record)
    pinned = record.trust_commit
    if pinned is not None and (not isinstance(pinned, str) or not _COMMIT.fullmatch(pinned)):
        raise refuse(record.run_id, f"its record names trust commit {pinned!r}, not a commit id")


def check_trust_pin(record: RunRecord, workflow: Workflow, workspace: Path) -> None:
    """The record's trust commit must be one the protected trust ref has named (its tip or an
    ancestor): a commit of the deployer's own, with trust files of their own, is refused."""

    trust = workflow.approvals.trust
    pinned = record.trust_commit
    check_pin_format(record)
    if pinned is None or trust is None or not trust.ref:
        return  # nothing pinned: trust is read from the ref's tip (the protected place)
    if not reachable(Git(workspace), pinned, trust.ref):
        raise refuse(
            record.run_id,
            f"the trust commit its record pins ({pinned[:12]}) is not reachable from the trust "
            f"ref {trust.ref}; trust is only read from commits that ref has named",
            hint=f"fetch the full history of {trust.ref} (no --depth=1); if the commit is not in "
            "it, the record was changed: start a new run",
        )


#: the record's fields a resume reads, and the JSON types they must have
_RECORD_SHAPE: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("run_id", str),
    ("digest", str),
    ("environment", str),
    ("files", dict),
    ("inputs", dict),
    ("started_by", dict),
    ("started_at", str),
    ("skip", list),
    ("env", dict),
    ("path", list),
    ("job_status", str),
    ("commit", (str, type(None))),
    ("error", (dict, type(None))),
)
_STEP_SHAPE: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("id", str),
    ("status", str),
    ("outcome", str),
    ("conclusion", str),
    ("outputs", dict),
    ("octopus", dict),
    ("secret_outputs", list),
)


def check_shape(record: RunRecord) -> None:
    """Refuse a record whose fields are not of their types (a hand-written one), with a message
    rather than a traceback later."""
    for name, kind in _RECORD_SHAPE:
        if not isinstance(getattr(record, name), kind):
            raise refuse(record.run_id, f"its record's `{name}` is not of the right type")
    if not isinstance(record.steps, list):
        raise refuse(record.run_id, "its record's `steps` is not a list")
    for rec in record.steps:
        for name, kind in _STEP_SHAPE:
            if not isinstance(getattr(rec, name), kind):
                raise refuse(
                    record.run_id, f"its record's step `{rec.id}` has a `{name}` of the wrong type"
                )


def check_files(record: RunRecord, workflow: Workflow, commit: str | None) -> None:
    """The record's digest, steps and commit are those of the workflow and commit here."""
    if record.digest != workflow.digest:
        raise refuse(
            record.run_id,
            f"its record says workflow digest {str(record.digest)[:12]}, but "
            f"{workflow.path} has digest {workflow.digest[:12]}",
            hint="resume with the workflow file the run started with, or start a new run",
        )
    wanted = [step.id for step in workflow.steps]
    have = [step.id for step in record.steps]
    if wanted != have:
        raise refuse(
            record.run_id,
            f"its record has steps {', '.join(have) or 'none'}, but the workflow (with its "
            f"policy) has {', '.join(wanted)}",
        )
    if record.commit != commit:
        raise refuse(
            record.run_id,
            f"it started from commit {record.commit or 'unknown'}, but the commit here is "
            f"{commit or 'unknown'}",
            hint="check out the commit the run started from, or start a new run",
        )


def check_workflow_place(
    record: RunRecord, workflow: Workflow, workspace: Path, state: Path
) -> None:
    """The workflow a resume runs is a file of the checkout, never one of the state folder: the
    record names it, and whoever wrote the record wrote the state folder too (a workflow of
    theirs there, with its digest in the record, would run with no gate at all)."""
    path = Path(workflow.path).resolve()
    root, folder = workspace.resolve(), state.resolve()
    if path.is_relative_to(folder):
        where = f"in the state folder {folder}"
    elif not path.is_relative_to(root):
        where = f"outside the workspace {root}"
    else:
        return
    raise refuse(record.run_id, f"its record names the workflow {record.workflow_path}, {where}")


def check_record(
    record: RunRecord,
    workflow: Workflow,
    workspace: Path,
    *,
    environ: Mapping[str, str],
    options: RunOptions,
    log: RunLog,
    skip: frozenset[str],
    state: Path | None = None,
    now: datetime | None = None,
    terminal: bool | None = None,
) -> None:
    """Re-verify every gate of ``record`` and repair what a resume may not take from it
    (changes ``record``); refuse (RefusedError) a gate the record says passed that does not."""
    if state is not None:
        check_workflow_place(record, workflow, workspace, state)
    check_files(record, workflow, deployed_here(workspace))
    moment = now or datetime.now(UTC)
    checker = Gates(record, workflow, workspace, environ, options, log, moment, terminal)
    for step in workflow.steps:
        if step.kind == "manual":
            checker.check(step, record.step(step.id), skip)
        elif step.guided is not None:
            checker.check_guided(step, record.step(step.id))
    _conclusions(record, workflow)


#: step states of a gate the run has not got past
_UNFINISHED_GATE = ("pending", "waiting", "running", "interrupted")


def check_progress(run: Run, skip: frozenset[str]) -> None:
    """Where the run really got to, from its gates rather than its steps' statuses.

    A gate recorded as skipped by its condition is decided again (one that should run is asked);
    then no step after the first gate not passed can have run: the engine starts the steps after a
    gate only once it has finished. Such a step the record shows as finished (a step "done" that
    never ran, whose outputs would feed later conditions) is set back to pending and runs."""
    record, workflow = run.record, run.workflow
    for secret in run.variables.secrets():
        run.masker.add(secret)
    for step in workflow.steps:
        rec = record.step(step.id)
        if step.kind == "manual" and rec.status == StepStatus.SUCCESS:
            # the outputs ``check_record`` took from the verified decision, masked as a
            # finished step's are
            rec = record.update_step(
                step.id,
                outputs={k: run.masker.mask(v) for k, v in rec.outputs.items()},
                octopus={k: run.masker.mask(v) for k, v in rec.octopus.items()},
            )
        if step.kind != "manual" or rec.status != StepStatus.SKIPPED:
            continue
        if scope_decision(step, record.environment, skip) is not None:
            continue  # out of this environment, or --skip: nothing the record decides
        try:
            again = run.decision(step).run
        except RunnerError:
            again = True  # a condition that cannot be decided does not skip a gate
        if again:
            run.log.write(f"gate `{step.id}`: recorded as skipped, but its condition holds")
            pending(record, step.id, "decided again on resume")
    group = 0
    stop: int | None = None
    for index, step in enumerate(workflow.steps):
        if index and not step.with_previous:
            group += 1
        rec = record.step(step.id)
        if stop is not None and group > stop and rec.status != StepStatus.PENDING:
            run.log.write(
                f"step `{step.id}` comes after a gate not passed, so it cannot have run; "
                f"its record said {rec.status}: it runs again"
            )
            pending(record, step.id, "after a gate not passed")
        if stop is None and step.kind == "manual" and rec.status in _UNFINISHED_GATE:
            stop = group


def _conclusions(record: RunRecord, workflow: Workflow) -> None:
    """The job status follows the steps' conclusions, whatever the record's field says: a
    failed or aborted step keeps the steps after it from running as if all went well."""
    failed = [rec for rec in record.steps if rec.conclusion == "failure"]
    if failed and record.job_status == "success":
        record.job_status = "failure"
        if not record.error:
            step = workflow.step(failed[0].id)
            name = step.name if step else failed[0].id
            record.error = {"message": f"Step '{name}' failed", "detail": failed[0].error or ""}
