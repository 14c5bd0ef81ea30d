"""A run from the command line to its end: the policy gate and the preflight before anything is
recorded, then the run under its locks and signal handlers, then its outputs to the CI. The
pieces are their own modules: ``start`` (the id and the first record), ``deployment_lock``
(``lock``, ``server_lock``), ``server_record``, ``signals``; ``runner.ci``, ``runner.notify``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from runner.ci import in_ci, write_job_outputs
from runner.engine.deployment_lock import DeploymentLock, acquire
from runner.engine.history import run_history
from runner.engine.lock import LocalLock, run_lock
from runner.engine.preflight import PreflightError, approval_problems, steps_that_may_ask
from runner.engine.record import RunStatus
from runner.engine.run import Run, utc_now
from runner.engine.seal import KEY_ENV
from runner.engine.server_lock import detached_hold
from runner.engine.server_record import claim_on_server, mirror_to_server, server_lock
from runner.engine.signals import Signals, cancel_now, cancellation, signum_of
from runner.errors import RefusedError, RunnerError
from runner.model import Step
from runner.notify import WebhookError, post_json, webhook_url
from runner.options import RunOptions
from runner.prepare import Prepared, apply_policy
from runner.steps.base import RunLog


def execute(run: Run, *, wait_for_lock: bool, new: bool = False) -> int:
    """Run under the run's own lock and the environment's deployment lock (in the state folder,
    and on the approval server where one is configured).

    A ``new`` run that the deployment lock refuses is recorded as ``refused`` (exit 5): its
    record was saved before the lock was asked for, and left ``running`` it could be resumed,
    once the environment is free, into the deployment that was refused.

    From here on a signal ends the run (see ``Signals``): while waiting for a lock no step runs
    and the run is recorded as cancelled; once the steps have begun, ``always()`` steps still
    run."""
    locks: list[DeploymentLock] = [
        LocalLock(run.store, run.workflow.name, run.environment, run.record.run_id)
    ]
    with cancellation(run) as signals:
        try:
            return _execute(run, locks, signals, wait_for_lock, new)
        except KeyboardInterrupt as exc:
            # before the steps began, or a second signal: nothing more runs
            signum = signals.first or signum_of(exc)
            code = cancel_now(run, signum, locks, announce=not signals.stepping)
            if signals.stepping:
                raise  # a second signal: the runner stops (the CLI's "interrupted")
            return code


def _execute(
    run: Run, locks: list[DeploymentLock], signals: Signals, wait_for_lock: bool, new: bool
) -> int:
    store = run.store
    local = locks[0]
    client = mirror_to_server(run)
    with run_lock(store, run.record.run_id):
        if not new:
            # read before the lock was taken: another process may have gone on meanwhile
            store.check_current(run.record.run_id)
        try:
            acquire(local, wait=wait_for_lock, say=run.log.write, sleep=time.sleep)
            if client is not None:
                try:
                    claim_on_server(client, run)
                    shared = server_lock(run)
                    locks.append(shared)  # released on a signal, even one while asking for it
                    acquire(shared, wait=wait_for_lock, say=run.log.write, sleep=time.sleep)
                except BaseException:
                    local.release()
                    raise
        except RunnerError as error:
            if new:
                # Left ``running``, a run that never took its locks would be listed as running
                # forever: refused when the lock is held, failed when it could not be asked for
                # (an unreachable approval server).
                refused = isinstance(error, RefusedError)
                record = run.record
                record.status = RunStatus.REFUSED if refused else RunStatus.FAILURE
                record.exit_code = int(error.exit_code)
                record.error = {"message": error.message, "detail": ""}
                record.finished_at = utc_now()
                store.save(record, durable=True)
            raise
        try:
            signals.steps_begin()
            code = run.execute()
        except BaseException:
            for lock in locks:
                lock.release()
            raise
        finally:
            # a CI's group or section left open by a step that never finished (an error, a
            # second signal) is closed before the error is printed
            run.log.close()
        step = run.workflow.step(run.detached_at) if run.detached_at is not None else None
        if step is not None and step.manual is not None and step.manual.block_deployments:
            hold = detached_hold(run)
            for lock in locks:
                lock.keep(hold)
        else:
            for lock in locks:
                lock.release()
    return code


def export_outputs(run: Run, environ: Mapping[str, str]) -> None:
    """The workflow's ``outputs`` (and the run id) to the outer CI job."""
    values = {"run-id": run.record.run_id}
    if run.detached_at is None:
        values.update(run.outputs())
    problem = write_job_outputs(environ, values)
    if problem is not None:
        run.log.write(f"warning: {problem}")


def policy_gate(
    prepared: Prepared, state_dir: Path, environ: Mapping[str, str], options: RunOptions
) -> Prepared:
    """Apply the environment policy; refuse the run (exit 5) naming the rule that fails."""

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
    *,
    steps: list[Step] | None = None,
    started_by: str | None = None,
) -> None:
    """Refuse, before the first step and with nothing recorded, a run whose manual steps could
    not be decided here (exit 1, each step named with its fix); ``steps``: those still to run
    that may ask, and ``started_by`` the recorded starter (a resume's), else every step that
    may ask and whoever runs this."""

    problems = approval_problems(prepared, environ, options, steps=steps, started_by=started_by)
    if problems:
        if log is not None:
            log.preflight_failed(problems)
        raise PreflightError(problems)
    if log is not None and options.detach_on_wait:
        warning = _resume_refused(prepared, environ)
        if warning is not None:
            log.write(warning)


def _resume_refused(prepared: Prepared, environ: Mapping[str, str]) -> str | None:
    """A CI run that will detach at a gate whose resume needs a sealed record (who started
    the run, when it began waiting), without the key to seal it: said before the first step,
    not by the resume job after the steps before the gate ran."""
    if not in_ci(environ) or environ.get(KEY_ENV):
        return None
    for step in steps_that_may_ask(prepared, environ):
        manual, guided = step.manual, step.guided
        if manual is not None and manual.prevent_self_approval:
            rule = f"gate `{step.id}` prevents self-approval"
        elif manual is not None and manual.on_timeout == "proceed":
            rule = f"gate `{step.id}` proceeds on timeout"
        elif manual is None and guided is not None and guided.prevent_self_approval:
            rule = f"step `{step.id}`'s guided failure prevents self-approval"
        elif manual is None and guided is not None and guided.on_timeout == "skip":
            rule = f"step `{step.id}`'s guided failure skips on timeout"
        else:
            continue
        return (
            f"warning: without ${KEY_ENV} the record is not sealed, and {rule}: `runner "
            "resume` in CI will refuse this run once it detaches there. Set "
            f"${KEY_ENV} (`openssl rand -hex 32`, a secret of the deployment environment) in "
            "this job and in the one that resumes it"
        )
    return None
