"""A run's presence on the approval server, where ``approvals.server`` is configured: a copy of
its record (so a machine with nothing can resume it) and its hold on the server's deployment
lock.

Both clients retry on the run's ``sleep`` (as the approval sources do): a signal wakes a backoff
at once, and a test's fake clock makes it take no time."""

from __future__ import annotations

import json
from typing import Any

from runner.approvals.server_client import ServerAnswer
from runner.approvals.server_source import client_for
from runner.engine.record import RunRecord
from runner.engine.run import Run
from runner.engine.server_lock import ServerLock, lease_seconds, lock_key
from runner.errors import ApprovalError, RefusedError


def mirror_to_server(run: Run) -> Any:
    """Where the ``server`` source is configured, keep a copy of the record on the server (so a
    machine with nothing can resume) and hold the deployment lock there too (across machines)."""
    if run.workflow.approvals.server is None:
        return None
    try:
        client = client_for(run.workflow.approvals, run.environ, attempts=3, sleep=run.sleep)
    except ApprovalError as exc:
        run.log.write(f"not keeping the record on the approval server: {exc.message}")
        return None

    def mirror(record: RunRecord) -> None:
        try:
            client.call("PUT", f"/runs/{record.run_id}", json=json.loads(record.to_json()))
        except ApprovalError as exc:
            run.log.write(f"could not copy the record to the approval server: {exc.message}")

    run.store.mirror = mirror
    return client


def claim_on_server(client: Any, run: Run) -> None:
    """Put the record on the server before anything runs. The server refuses a run id that
    another token keeps there (403) or a record that would rewrite another run's (409): this run
    is then refused (exit 5), since its copy, its lock and its resume would be someone else's."""
    try:
        client.call(
            "PUT", f"/runs/{run.record.run_id}", json=json.loads(run.record.to_json()), attempts=3
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


def server_lock(run: Run) -> ServerLock:
    """This process's hold on the deployment lock on the server (see ``engine.server_lock``)."""

    def lost(message: str) -> None:
        run.log.write(message)
        run.groups.cancel_all()

    # a client of its own: the heartbeat thread must not share a session with the main thread
    return ServerLock(
        client_for(run.workflow.approvals, run.environ, attempts=3, sleep=run.sleep),
        lock_key(run.workflow.name, run.environment),
        run.record.run_id,
        f"{run.workflow.name} -> {run.environment}",
        lease=lease_seconds(run.environ),
        say=run.log.write,
        on_lost=lost,
    )
