"""The deployment lock on the approval server: one deployment per workflow and environment across
machines.

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
from typing import Any

from runner.engine.lock import refused_hint
from runner.errors import ApprovalError, RefusedError, UsageError

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


class ServerLock:
    """One process's hold on one deployment lock of the server."""

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
        sleep: Callable[[float], None],
    ) -> None:
        self.client = client
        self.key = key
        self.run_id = run_id
        self.label = label
        self.lease = lease
        self.say = say
        self.on_lost = on_lost
        self.sleep = sleep
        self.owner = secrets.token_urlsafe(32)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _ask(self, lease: float, detached: bool = False, attempts: int | None = None) -> Any:
        body = {"run_id": self.run_id, "owner": self.owner, "lease": lease, "detached": detached}
        return self.client.call("POST", f"/locks/{self.key}", json=body, attempts=attempts)

    def acquire(self, *, wait: bool, poll: float = 2.0) -> None:
        """Take the lock (or wait for it with ``wait``, else refuse: exit 5), then keep it."""
        announced = False
        while True:
            answer = self._ask(self.lease)
            if isinstance(answer, dict) and answer.get("taken"):
                break
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
            if not wait:
                raise RefusedError(
                    message,
                    hint=refused_hint(holder.get("run_id"), bool(holder.get("detached"))),
                )
            if not announced:
                self.say(f"waiting for the lock: {message}")
                announced = True
            self.sleep(poll)
        self._beat = threading.Thread(target=self._heartbeat, name="server-lock", daemon=True)
        self._beat.start()

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

    def detach(self, hold_seconds: float) -> None:
        """Keep the lock while the run is detached: the lease becomes ``hold_seconds``."""
        self._stop_heartbeat()
        hold = max(self.lease, min(hold_seconds, MAX_DETACHED_LEASE))
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
