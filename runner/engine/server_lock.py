"""The deployment lock on the approval server (see ``engine.deployment_lock``): one deployment per
workflow and environment across machines.

The lock is held by an *owner*, a random token of this process, never by a run id: a second
process naming the same run is refused like any other (issue #17: two machines started with the
same ``--run-id`` both deployed). Only the owner releases it. Its lease
(``RUNNER_SERVER_LOCK_LEASE`` seconds, 60 by default) is renewed by a heartbeat thread while the
run runs or waits, so a holder killed with SIGKILL frees the environment when its lease runs out.

A run that detaches at a ``block-deployments`` step keeps the lock: it stretches the lease to the
step's deadline (plus one lease, for the resume to take it), or to 30 days when the step has no
deadline, and the server hands it to that run's own resume (the same run id, with the token
that took it). An administrator can always remove a lock: ``runner server locks break``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from runner.engine.deployment_lock import Attempt
from runner.engine.run import Run
from runner.errors import ApprovalError, UsageError

DEFAULT_LEASE = 60.0
MAX_DETACHED_LEASE = 30 * 24 * 3600.0
LEASE_ENV = "RUNNER_SERVER_LOCK_LEASE"


def lock_key(workflow_name: str, environment: str) -> str:
    return hashlib.sha256(f"{workflow_name}\0{environment}".encode()).hexdigest()[:32]


def lease_seconds(environ: Mapping[str, str]) -> float:
    raw = environ.get(LEASE_ENV)
    if not raw:
        return DEFAULT_LEASE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1.0 <= value <= 3600.0:
        raise UsageError(f"${LEASE_ENV} must be a number of seconds from 1 to 3600, not {raw!r}")
    return value


def detached_hold(run: Run) -> float:
    """How long a run detached at a ``block-deployments`` step keeps the lock: until the step's
    deadline (a resume after it times out at once), 30 days without one."""
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


class ServerLock:
    """One process's hold on one deployment lock of the server (a
    :class:`~runner.engine.deployment_lock.DeploymentLock`)."""

    def __init__(
        self,
        client: Any,
        key: str,
        run_id: str,
        label: str,
        *,
        lease: float,
        say: Callable[[str], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.client = client
        self.key = key
        self.run_id = run_id
        self.label = label
        self.lease = lease
        self.say = say
        self.on_lost = on_lost
        self.owner = secrets.token_urlsafe(32)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _ask(self, lease: float, detached: bool = False, attempts: int | None = None) -> Any:
        body = {"run_id": self.run_id, "owner": self.owner, "lease": lease, "detached": detached}
        return self.client.call("POST", f"/locks/{self.key}", json=body, attempts=attempts)

    def try_acquire(self) -> Attempt:
        """Ask once; taken, a heartbeat keeps the lease from running out."""
        answer = self._ask(self.lease)
        if isinstance(answer, dict) and answer.get("taken"):
            if self._beat is None:
                self._beat = threading.Thread(
                    target=self._heartbeat, name="server-lock", daemon=True
                )
                self._beat.start()
            return Attempt(True)
        holder = answer if isinstance(answer, dict) else {}
        message = (
            f"{self.label} is being deployed by run {holder.get('run_id')} (since "
            f"{holder.get('since')}, on the server; "
            + (
                "detached at a block-deployments step"
                if holder.get("detached")
                else f"its lease ends at {holder.get('expires')} unless renewed"
            )
            + ")"
        )
        return Attempt(False, message, holder.get("run_id"), bool(holder.get("detached")))

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                answer = self._ask(self.lease, attempts=1)
            except ApprovalError:
                continue  # the server is away: try again; the lease covers two misses
            if not (isinstance(answer, dict) and answer.get("taken")):
                self._stop.set()
                holder = answer.get("run_id") if isinstance(answer, dict) else "?"
                self.on_lost(
                    f"the deployment lock of {self.label} on the approval server was lost "
                    f"(its lease ran out while the server was unreachable; run {holder} holds "
                    "it now): cancelling this run"
                )

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(30)

    def keep(self, seconds: float) -> None:
        """The lease becomes ``seconds`` and one more lease (for the resume to take it), at
        least one lease and at most 30 days."""
        self._stop_heartbeat()
        hold = max(self.lease, min(seconds + self.lease, MAX_DETACHED_LEASE))
        try:
            self._ask(hold, detached=True, attempts=2)
        except ApprovalError as exc:
            self.say(
                f"could not keep the lock on the approval server while detached: {exc.message}"
            )

    def release(self) -> None:
        self._stop_heartbeat()
        try:
            self.client.call(
                "POST", f"/locks/{self.key}/release", json={"owner": self.owner}, attempts=2
            )
        except ApprovalError as exc:
            self.say(
                f"could not release the lock on the approval server ({exc.message}); it frees "
                f"itself when its lease ends, within {self.lease:.0f} s"
            )
