"""One deployment per workflow and environment at a time (Octopus's rule), and the one way a run
waits for it.

The lock lives in two places: the state folder (:class:`runner.engine.lock.LocalLock`, one
machine or one shared disk) and, where ``approvals.server`` is configured, the approval server
(:class:`runner.engine.server_lock.ServerLock`, across machines). Both are held by a random token
of the process that took them, never by a run id (#17). Both are taken through :func:`acquire`,
so waiting, announcing the wait and refusing (exit 5) read the same wherever the lock is.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from msgspec import Struct

from runner.ci import in_ci
from runner.errors import RefusedError

#: seconds between two asks while waiting with ``--wait-for-lock``
POLL = 2.0


class Attempt(Struct, frozen=True):
    """The answer to one ask for the lock."""

    taken: bool
    #: taken: what taking it did (a stale lock broken, a kept one taken over), or ""; not
    #: taken: who holds it, for the waiting line and the refusal
    message: str = ""
    #: the run holding it, and whether that run is detached at a ``block-deployments`` step
    holder: str | None = None
    detached: bool = False


class DeploymentLock(Protocol):
    """One process's hold on the deployment lock of one workflow and environment."""

    #: ``workflow -> environment``, as messages name the lock
    label: str

    def try_acquire(self) -> Attempt:
        """Ask once, without waiting."""
        ...

    def keep(self, seconds: float) -> None:
        """The run detaches at a ``block-deployments`` step: hold the lock while it waits for a
        person, for ``seconds`` (until the step's deadline), for its own resume to take over."""
        ...

    def release(self) -> None:
        """Give the lock up, if this process holds it (a no-op otherwise)."""
        ...


def acquire(
    lock: DeploymentLock,
    *,
    wait: bool,
    say: Callable[[str], None],
    sleep: Callable[[float], None],
    poll: float = POLL,
) -> None:
    """Take ``lock``; held by someone else, wait for it with ``wait`` (saying so once), else
    refuse (exit 5) with what to do."""
    announced = False
    while True:
        attempt = lock.try_acquire()
        if attempt.taken:
            if attempt.message:
                say(attempt.message)
            return
        if not wait:
            raise RefusedError(attempt.message, hint=refused_hint(attempt.holder, attempt.detached))
        if not announced:
            say(f"waiting for the lock: {attempt.message}")
            announced = True
        sleep(poll)


def refused_hint(run_id: object, detached: bool) -> str:
    """What to do about a deployment lock that run ``run_id`` holds (here or on the server)."""
    if detached:
        # --wait-for-lock would keep a CI job waiting for hours on a person
        return (
            f"run this again once run {run_id} has ended: decide its manual step, then "
            f"`runner resume {run_id}`"
        )
    if in_ci(os.environ):
        return "run the job again when that run has ended, or pass --wait-for-lock to queue"
    return "wait for it with --wait-for-lock"
