"""Starting a run: everything between the command line and the engine (effects at this edge:
files, the environment, the clock, signals)."""

from __future__ import annotations

import hashlib
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.actor import current_actor
from runner.ci import default_run_id, write_job_outputs
from runner.engine.contexts import Identity
from runner.engine.history import git_commit, run_history
from runner.engine.lock import DeploymentLock, run_lock
from runner.engine.record import RecordStore, RunRecord
from runner.engine.run import Run, new_record, utc_now
from runner.errors import ExitCode, RefusedError, UsageError
from runner.load.action import load_action
from runner.load.checks import action_path
from runner.model import Workflow
from runner.notify import WebhookError, post_json, webhook_url
from runner.options import RunOptions
from runner.prepare import Prepared
from runner.process import ProcessGroups
from runner.steps.base import RunLog, StepKind
from runner.workspace import recorded_path

RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
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


def step_kinds() -> dict[str, StepKind]:
    from runner.steps.composite import run_composite_step
    from runner.steps.manual import run_manual_step
    from runner.steps.script import run_script_step

    return {"run": run_script_step, "uses": run_composite_step, "manual": run_manual_step}


@dataclass
class RunRequest:
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
    from runner.engine.seal import record_key

    store = RecordStore(request.state_dir, key=record_key(request.environ))
    if store.exists(run_id):
        raise RefusedError(
            f"run {run_id} already exists in {request.state_dir}",
            hint=f"resume it with `runner resume {run_id}`, or pick another --run-id",
        )
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
    record.commit = git_commit(workspace)
    trust = workflow.approvals.trust
    record.trust_commit = trust.commit if trust else None
    record.skip = sorted(prepared.skip)
    if prepared.policy is not None:
        from dataclasses import asdict

        record.policy = [asdict(check) for check in prepared.policy.checks]
        record.break_glass = prepared.policy.break_glass
    run = build_run(
        prepared, record, store, request.log, request.environ, request.options, created_by
    )
    if not store.create(record):  # another process started this run id meanwhile
        raise RefusedError(
            f"run {run_id} already exists in {request.state_dir}",
            hint=f"resume it with `runner resume {run_id}`, or pick another --run-id",
        )
    if request.on_record is not None:
        request.on_record(run)
    return run


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
    for name, spec in workflow.inputs.items():
        value = prepared.inputs.get(name)
        if spec.secret and isinstance(value, str) and value:
            run.masker.add(value)
    return run


def mirror_to_server(run: Run) -> Any:
    """Where the ``server`` source is configured, keep a copy of the record on the server (so a
    machine with nothing can resume) and hold the deployment lock there too (across machines)."""
    if run.workflow.approvals.server is None:
        return None
    from runner.approvals.server_source import client_for
    from runner.errors import ApprovalError

    try:
        client = client_for(run.workflow.approvals, run.environ, attempts=3)
    except ApprovalError as exc:
        run.log.write(f"not keeping the record on the approval server: {exc.message}")
        return None

    def mirror(record: RunRecord) -> None:
        import json as _json

        try:
            client.call("PUT", f"/runs/{record.run_id}", json=_json.loads(record.to_json()))
        except ApprovalError as exc:
            run.log.write(f"could not copy the record to the approval server: {exc.message}")

    run.store.mirror = mirror
    return client


def claim_on_server(client: Any, run: Run) -> None:
    """Put the record on the server before anything runs. The server refuses a run id that
    another token keeps there (403) or a record that would rewrite another run's (409): this run
    is then refused (exit 5), since its copy, its lock and its resume would be someone else's."""
    import json as _json

    from runner.approvals.server_client import ServerAnswer
    from runner.errors import ApprovalError

    try:
        client.call(
            "PUT", f"/runs/{run.record.run_id}", json=_json.loads(run.record.to_json()), attempts=3
        )
    except ServerAnswer as exc:
        if exc.status in (403, 409):
            raise RefusedError(
                f"the approval server refuses this run's record: {exc.message}",
                hint="a run id is used once: start the run with another --run-id (a resume "
                "needs the runner token that started the run)",
            ) from None
        run.log.write(f"could not copy the record to the approval server: {exc.message}")
    except ApprovalError as exc:
        run.log.write(f"could not copy the record to the approval server: {exc.message}")


def server_lock(run: Run) -> Any:
    """This process's hold on the deployment lock on the server (see ``engine.server_lock``)."""
    from runner.approvals.server_source import client_for
    from runner.engine.server_lock import ServerLock, lease_seconds, lock_key

    def lost(message: str) -> None:
        run.log.write(message)
        run.groups.cancel_all()

    # a client of its own: the heartbeat thread must not share a session with the main thread
    return ServerLock(
        client_for(run.workflow.approvals, run.environ, attempts=3),
        lock_key(run.workflow.name, run.environment),
        run.record.run_id,
        f"{run.workflow.name} -> {run.environment}",
        lease=lease_seconds(run.environ),
        say=run.log.write,
        on_lost=lost,
        sleep=time.sleep,
    )


def _detached_hold(run: Run) -> float:
    """How long a run detached at a ``block-deployments`` step keeps the server's lock: until
    the step's deadline (a resume after it times out at once), 30 days without one."""
    from datetime import UTC, datetime

    from runner.engine.server_lock import MAX_DETACHED_LEASE

    assert run.detached_at is not None
    approval = run.record.step(run.detached_at).approval
    asked = approval.interruption if approval else None
    deadline = asked.deadline if asked else None
    if not deadline:
        return MAX_DETACHED_LEASE
    try:
        end = datetime.fromisoformat(str(deadline).replace("Z", "+00:00"))
    except ValueError:
        return MAX_DETACHED_LEASE
    return (end - datetime.now(UTC)).total_seconds()


def execute(run: Run, *, wait_for_lock: bool, new: bool = False) -> int:
    """Run under the run's own lock and the environment's deployment lock.

    A ``new`` run that the deployment lock refuses is recorded as ``refused`` (exit 5): its
    record was saved before the lock was asked for, and left ``running`` it could be resumed,
    once the environment is free, into the deployment that was refused.

    From here on a signal ends the run (see ``Signals``): while waiting for a lock no step runs
    and the run is recorded as cancelled; once the steps have begun, ``always()`` steps still
    run."""
    lock = DeploymentLock(run.store, run.workflow.name, run.environment)
    held: dict[str, Any] = {}
    with cancellation(run) as signals:
        try:
            return _execute(run, lock, held, signals, wait_for_lock, new)
        except KeyboardInterrupt as exc:
            # before the steps began, or a second signal: nothing more runs
            signum = signals.first or _signum(exc)
            code = cancel_now(run, signum, lock, held.get("server"), announce=not signals.stepping)
            if signals.stepping:
                raise  # a second signal: the runner stops (the CLI's "interrupted")
            return code


def _execute(
    run: Run,
    lock: DeploymentLock,
    held: dict[str, Any],
    signals: Signals,
    wait_for_lock: bool,
    new: bool,
) -> int:
    store = run.store
    client = held["client"] = mirror_to_server(run)
    with run_lock(store, run.record.run_id):
        shared = None
        try:
            lock.acquire(run.record.run_id, wait=wait_for_lock, say=run.log.write)
            if client is not None:
                try:
                    claim_on_server(client, run)
                    # released on a signal, even one in the middle of asking for it
                    shared = held["server"] = server_lock(run)
                    shared.acquire(wait=wait_for_lock)
                except BaseException:
                    lock.release(run.record.run_id)
                    raise
        except RefusedError as refused:
            if new:
                record = run.record
                record.status, record.exit_code = "refused", int(ExitCode.REFUSED)
                record.error = {"message": refused.message, "detail": ""}
                record.finished_at = utc_now()
                store.save(record, durable=True)
            raise
        try:
            signals.steps_begin()
            code = run.execute()
        except BaseException:
            lock.release(run.record.run_id)
            if shared is not None:
                shared.release()
            raise
        finally:
            # a CI's group or section left open by a step that never finished (an error, a
            # second signal) is closed before the error is printed
            run.log.close()
        keep = False
        if run.detached_at is not None:
            step = run.workflow.step(run.detached_at)
            keep = bool(step and step.manual and step.manual.block_deployments)
            lock.mark_detached(run.record.run_id, keep)
        else:
            lock.release(run.record.run_id)
        if shared is not None:
            if keep:
                shared.detach(_detached_hold(run) + shared.lease)
            else:
                shared.release()
    return code


def _signum(exc: KeyboardInterrupt) -> int:
    """The signal a ``KeyboardInterrupt`` came from (``runner.cli.main`` raises it with the
    number for SIGTERM and SIGINT; Python's own handler, for SIGINT, gives none)."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else int(signal.SIGINT)


def cancel_started(run: Run, exc: KeyboardInterrupt) -> int:
    """``cancel_now`` for a signal between the first record and ``execute``."""
    return cancel_now(
        run, _signum(exc), DeploymentLock(run.store, run.workflow.name, run.environment), None
    )


def cancel_recorded(store: RecordStore, run_id: str, exc: KeyboardInterrupt, log: RunLog) -> int:
    """A signal while ``runner resume`` prepares (reads the record, pins the trust, checks the
    files): the run is cancelled all the same, as ``cancel_now`` does, if this process can take
    the run's own lock; with no record (``--server`` fetching it), the CLI's one line."""
    from runner.engine.run import cancel_record

    if not store.exists(run_id):
        raise exc
    name = signal.Signals(_signum(exc)).name
    ended = False
    try:
        with run_lock(store, run_id):
            record = store.load(run_id)
            ended = record.finished  # by this process, on a second signal
            if not ended:
                log.write(f"received {name}: cancelling the run")
                cancel_record(record, utc_now())
                store.save(record, durable=True)
                log.write(f"Run {run_id} was cancelled ({name})")
            # the lock a run detached at a ``block-deployments`` step kept
            DeploymentLock(store, record.workflow_name, record.environment).release(run_id)
    except RefusedError:
        log.write(f"received {name}: stopping (run {run_id} is another process's)")
    except (OSError, ValueError, TypeError, KeyError):
        raise exc from None  # an unreadable record: resume reports it; here, the one line
    finally:
        log.close()
    if ended:
        raise exc
    return int(ExitCode.INTERRUPTED)


def cancel_now(
    run: Run, signum: int, lock: DeploymentLock, shared: Any, *, announce: bool = True
) -> int:
    """End ``run`` at once after a signal: its record cancelled (steps left running or waiting
    are cancelled, those not started skipped), its locks released, the log's open group closed;
    exit 130. Only while holding the run's own lock: without it, another process has the run."""
    name = signal.Signals(signum).name
    try:
        with run_lock(run.store, run.record.run_id):
            if not run.record.finished:
                if announce:
                    run.log.write(f"received {name}: cancelling the run")
                run.cancel_now()
                run.log.write(f"Run {run.record.run_id} was cancelled ({name})")
            lock.release(run.record.run_id)
            if shared is not None:
                shared.release()
    except RefusedError:
        run.log.write(f"received {name}: stopping (run {run.record.run_id} is another process's)")
    finally:
        run.log.close()
    return int(ExitCode.INTERRUPTED)


class Signals:
    """What SIGINT / SIGTERM do to a run, from the moment its record exists.

    Before its steps begin (waiting for a lock, on the approval server), a signal raises
    ``KeyboardInterrupt`` at once wherever the main thread is: no step runs (as GitHub runs no
    step of a job cancelled before it started), and ``execute`` records the run as cancelled.
    Once the steps have begun, the first signal only hands itself to a thread, which cancels
    the run: running steps' process groups are stopped and every wait ends (``runner.cancel``);
    ``always()`` steps still run. A second signal stops the runner at once.

    Handing to a thread because Python runs the handler in the main thread between two
    bytecodes, maybe while that thread holds a lock that cancelling takes (the log's, an
    event's), and waiting on it there would never end. ``SimpleQueue.put`` is safe there."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.received: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        #: the first signal received
        self.first: int | None = None
        self.stepping = False

    def steps_begin(self) -> None:
        self.stepping = True

    def handle(self, signum: int, frame: object) -> None:
        if self.first is not None or not self.stepping:
            if self.first is not None:
                # the steps still running (``always()`` ones) must not outlive the runner
                self.run.groups.kill_all()
            else:
                self.first = signum
            raise KeyboardInterrupt(signum)
        self.first = signum
        self.received.put(signum)

    def cancel(self) -> None:
        signum = self.received.get()
        if signum is None:
            return
        end_question = getattr(sys.modules.get("runner.approvals.prompt"), "end_question", None)
        if end_question is not None:
            end_question()  # a question on the terminal: what follows starts a line of its own
        self.run.log.write(f"received {signal.Signals(signum).name}: cancelling the run")
        self.run.groups.cancel_all()


@contextmanager
def cancellation(run: Run) -> Iterator[Signals]:
    """SIGINT and SIGTERM handled as :class:`Signals` says, for the time of the block."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signals = Signals(run)
    canceller = threading.Thread(target=signals.cancel, name="runner-cancel", daemon=True)
    canceller.start()
    for sig in previous:
        signal.signal(sig, signals.handle)
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signals.received.put(None)


def export_outputs(run: Run, environ: Mapping[str, str]) -> None:
    """The workflow's ``outputs`` (and the run id) to the outer CI job."""
    values = {"run-id": run.record.run_id}
    if run.detached_at is None:
        values.update(run.outputs())
    write_job_outputs(environ, values)


def policy_gate(
    prepared: Prepared, state_dir: Path, environ: Mapping[str, str], options: RunOptions
) -> Prepared:
    """Apply the environment policy; refuse the run (exit 5) naming the rule that fails."""
    from runner.prepare import apply_policy

    gated = apply_policy(
        prepared,
        history=run_history(state_dir),
        environ=environ,
        insecure=options.insecure_local_trust,
        break_glass=options.break_glass,
    )
    verdict = gated.policy
    if verdict is not None and not verdict.allowed:
        raise RefusedError(
            verdict.refusal(),
            hint=f"`runner policy check {prepared.workflow.path} --env "
            f"{prepared.environment}` explains the decision",
        )
    return gated


def announce_break_glass(run: Run) -> None:
    """Say loudly that a policy rule was overridden: in the log and on the chat webhook."""
    glass = run.record.break_glass or {}
    text = (
        f"BREAK-GLASS: {glass.get('by')} overrides {', '.join(glass.get('overrode', []))} "
        f"for {run.workflow.name} -> {run.environment} (run {run.record.run_id}): "
        f"{glass.get('reason')}"
    )
    run.log.write(text)
    url = webhook_url(run.workflow.approvals.notify, run.environ)
    if url:
        try:
            post_json(url, {"text": text})
        except WebhookError as exc:
            run.log.write(f"could not announce the break-glass on the webhook: {exc}")


def preflight(
    prepared: Prepared,
    environ: Mapping[str, str],
    options: RunOptions,
    log: RunLog | None = None,
) -> None:
    """Refuse, before the first step and with nothing recorded, a run whose manual steps could
    not be decided here (exit 1, each step named with its fix)."""
    from runner.approvals.preflight import PreflightError, approval_problems

    problems = approval_problems(prepared, environ, options)
    if problems:
        if log is not None:
            log.preflight_failed(problems)
        raise PreflightError(problems)
