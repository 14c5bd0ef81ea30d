"""The start of a run: its id, the files it used, its first record, and the engine built on a
record (new, or reloaded by ``engine.resume``) with this process's effects."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

from msgspec import Struct
from msgspec.structs import asdict

from runner.actor import current_actor
from runner.approvals.server_client import DEFAULT_TOKEN_ENV
from runner.ci import default_run_id
from runner.engine.record import RecordStore, RunRecord, RunStatus
from runner.engine.run import Run, new_record, utc_now
from runner.engine.seal import record_key
from runner.errors import RefusedError, UsageError
from runner.git import Git, deployed_commit
from runner.inputs import shown_inputs
from runner.load.action import load_action
from runner.load.build import text
from runner.load.checks import action_path
from runner.model import Identity, Workflow, is_run_id
from runner.options import RunOptions
from runner.prepare import Prepared
from runner.process import ProcessGroups
from runner.steps.base import RunLog
from runner.steps.kinds import step_kinds
from runner.workspace import recorded_path


def check_run_id(run_id: str) -> str:
    """``run_id``, if it can name a folder of the state folder and nothing else; else a usage
    error."""
    if not is_run_id(run_id):
        raise UsageError(
            f"run id {run_id!r} is not valid",
            hint="use 1 to 64 letters, digits, `.`, `_` or `-`",
        )
    return run_id


def used_files(workflow: Workflow, workspace: Path) -> dict[str, str]:
    """sha256 of the workflow file (named as the record names it: relative to the workspace
    root) and of every action it uses (recursively)."""
    digest = hashlib.sha256(Path(workflow.path).read_bytes()).hexdigest()
    files = {recorded_path(workflow.path, workspace): digest}
    queue = [s.uses for s in workflow.steps if s.uses]
    seen: set[str] = set()
    while queue:
        uses = queue.pop()
        if uses in seen:
            continue
        seen.add(uses)
        path = action_path(workspace, uses)
        action = load_action(path)
        files[uses] = action.digest
        queue.extend(s.uses for s in action.steps if s.uses)
    return files


class RunRequest(Struct):
    prepared: Prepared
    run_id: str | None
    state_dir: Path
    log: RunLog
    environ: Mapping[str, str]
    options: RunOptions
    #: told of the run just before its first record is saved (from then on a signal cancels it)
    on_record: Callable[[Run], None] | None = None


def start_run(request: RunRequest) -> Run:
    """A new run with its first record saved."""
    prepared = request.prepared
    workflow = prepared.workflow
    run_id = check_run_id(request.run_id or default_run_id(request.environ))
    store = RecordStore(request.state_dir, key=record_key(request.environ))
    if store.exists(run_id):
        raise taken(store, run_id)
    created_by = current_actor(request.environ)
    workspace = prepared.loaded.workspace
    record = new_record(
        workflow,
        run_id,
        prepared.environment,
        prepared.inputs,
        {n for n, i in workflow.inputs.items() if i.secret},
        created_by,
        used_files(workflow, workspace),
        utc_now(),
    )
    # relative to the workspace root: a resume from another folder or in another checkout
    # reads its own copy of the file, never the one this process happened to be given
    record.workflow_path = recorded_path(workflow.path, workspace)
    record.commit = deployed_commit(Git(workspace))
    trust = workflow.approvals.trust
    record.trust_commit = trust.commit if trust else None
    record.skip = sorted(prepared.skip)
    if prepared.policy is not None:
        record.policy = [asdict(check) for check in prepared.policy.checks]
        glass = prepared.policy.break_glass
        record.break_glass = glass.to_json() if glass is not None else None
    run = build_run(
        prepared, record, store, request.log, request.environ, request.options, created_by
    )
    # masked before the record is first saved: an input that is not secret may hold one of
    # the run's secrets (registered by `Run.execute` too, which only starts after)
    for secret in prepared.variables.secrets():
        run.masker.add(secret)
    secret_inputs = {n for n, i in workflow.inputs.items() if i.secret}
    record.inputs = shown_inputs(prepared.inputs, secret_inputs, run.masker.mask)
    if not store.create(record):  # another process started this run id meanwhile
        raise taken(store, run_id)
    if request.on_record is not None:
        request.on_record(run)
    return run


def taken(store: RecordStore, run_id: str) -> RefusedError:
    """The refusal of a run id the state folder has: a finished run says so (its hint was to
    resume it, which has nothing left to do: newcomer pass), an unfinished one is resumed."""
    status = recorded_status(store, run_id)
    if status is not None and status not in (RunStatus.RUNNING, RunStatus.WAITING):
        return RefusedError(
            f"run {run_id} already exists in {store.state_dir} and has finished ({status})",
            hint="a run id is used once: choose another --run-id "
            f"(`runner runs show {run_id}` shows that run)",
        )
    return RefusedError(
        f"run {run_id} already exists in {store.state_dir}",
        hint=f"resume it with `runner resume {run_id}`, or pick another --run-id",
    )


def recorded_status(store: RecordStore, run_id: str) -> RunStatus | None:
    """The status run ``run_id``'s record says, read without its seal (None: unreadable). Only
    for what a message says: a record is anyone's to rewrite, and no decision rests on this."""
    try:
        return RecordStore(store.state_dir).load(run_id).status
    except (OSError, ValueError, TypeError, KeyError):
        return None


def build_run(
    prepared: Prepared,
    record: RunRecord,
    store: RecordStore,
    log: RunLog,
    environ: Mapping[str, str],
    options: RunOptions,
    created_by: Identity,
) -> Run:
    """The engine for ``record``, new or reloaded, with this process's effects."""
    workflow = prepared.workflow
    groups = ProcessGroups()
    run = Run(
        workflow=workflow,
        record=record,
        store=store,
        variables=prepared.variables,
        inputs=prepared.inputs,
        created_by=created_by,
        kinds=step_kinds(),
        log=log,
        workspace=prepared.loaded.workspace,
        environ=environ,
        skip=frozenset(record.skip) | prepared.skip,
        groups=groups,
        # a wait (a source's poll interval, a retry delay) ends at once on cancellation
        sleep=groups.cancelled.sleep,
        options=options,
    )
    for secret in start_secrets(prepared, environ):
        run.masker.add(secret)
    return run


def start_secrets(prepared: Prepared, environ: Mapping[str, str]) -> list[str]:
    """The secrets a run of ``prepared`` masks from its start, besides its variables' (which
    :meth:`Run.execute` registers):

    * its secret inputs, as given and as a step prints them (a number's ``12345`` for
      ``012345``: only string values were registered, and a secret number was printed in
      clear). Not a boolean's ``true`` or ``false``: masking every one of the log would tell
      nothing a reader could not guess;
    * the values of every secret variable read from the environment, whatever the
      environment it is scoped to: a prod run's steps have ``$STAGING_DB_PW`` in their
      environment too, as every variable of the job is (GitHub passes the job's whole
      environment), and ``env`` printed it;
    * the approval server's runner token and the notify webhooks' ``url-env`` URLs, which
      every step's environment holds as well (the URL was registered only when a manual step
      posted, after the steps before it had run).
    """
    workflow = prepared.workflow
    found = [*prepared.secret_texts]
    for name, spec in workflow.inputs.items():
        value = prepared.inputs.get(name)
        if spec.secret and not isinstance(value, bool) and value is not None:
            found.append(value if isinstance(value, str) else text(value))
    for variable in workflow.variables.values():
        if variable.secret:
            found += [environ.get(v.from_env, "") for v in variable.values if v.from_env]
    approvals = workflow.approvals
    if approvals.server is not None:
        found.append(environ.get(approvals.server.token_env or DEFAULT_TOKEN_ENV, ""))
    hooks = [approvals.notify]
    for step in workflow.steps:
        hooks += [step.manual.notify if step.manual else None]
        hooks += [step.guided.notify if step.guided else None]
    found += [environ.get(hook.url_env, "") for hook in hooks if hook and hook.url_env]
    return [secret for secret in found if secret]
