"""The deployment lock on one machine, through the state folder (see ``engine.deployment_lock``);
and each run's own lock.

A lock is held by an owner: a random token of the process that took it, recorded in the lock
file with the run it deploys. Another owner is refused, whatever run id it gives: two processes
started with the same ``--run-id`` are two deployments (#17). The one exception is a run that
detached at a ``block-deployments`` step and kept its lock: the process resuming that run takes
it over, holding the run's own lock (``run_lock``), so no other process goes on with that run in
this state folder. A lock is stale, and broken with a message, when its run has ended, or when
its process is gone (on this host) while the run was not detached. Checking and taking happen
under an exclusive ``flock`` of one mutex file, so two runners never both take it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from msgspec import Struct

from runner.bounded import NotTheRunnersFile, loads, open_regular, read_file
from runner.engine.deployment_lock import Attempt
from runner.engine.record import RecordStore
from runner.errors import RefusedError, StateError
from runner.workspace import write_replacing


class LockInfo(Struct, frozen=True):
    run_id: str
    pid: int
    host: str
    detached: bool
    since: str
    #: the random token of the process that took the lock (empty in older lock files)
    owner: str = ""


class LocalLock:
    """This process's hold on the deployment lock in the state folder (a
    :class:`~runner.engine.deployment_lock.DeploymentLock`), for run ``run_id``."""

    def __init__(
        self, store: RecordStore, workflow_name: str, environment: str, run_id: str
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.folder = store.state_dir / "locks"
        key = hashlib.sha256(f"{workflow_name}\0{environment}".encode()).hexdigest()[:16]
        self.path = self.folder / f"{key}.json"
        self.label = f"{workflow_name} -> {environment}"
        #: this process's claim: the lock file holds it while this process holds the lock
        self.owner = secrets.token_hex(16)

    @contextmanager
    def _mutex(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with _lock_file(self.folder / ".mutex") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def holder(self) -> LockInfo | None:
        """Who holds the lock: None when nobody does. A lock file that exists but cannot be read
        (a newer runner's, a damaged one) is held by someone unknown: never taken as free."""
        try:
            raw = read_file(self.path, what="lock file", limit=LOCK_FILE_BYTES, follow=False)
            return LockInfo(**loads(raw.decode("utf-8"), what="the lock file"))
        except FileNotFoundError:
            return None
        except OSError as exc:
            return _unknown(f"cannot be read ({exc.strerror or exc})")
        except (ValueError, TypeError):  # too large, not a regular file, not a lock file
            return _unknown("is not a lock file this runner can read")

    def _stale(self, info: LockInfo) -> str | None:
        """Why the lock no longer protects a live run, or None."""
        if info.owner == UNKNOWN:
            return None  # nothing to judge it by: it holds until someone looks
        if self.store.exists(info.run_id):
            try:
                record = self.store.load(info.run_id)
            except (OSError, ValueError, TypeError, KeyError):
                return f"run {info.run_id}'s record is unreadable"
            if record.finished:
                return f"run {info.run_id} has ended ({record.status})"
        else:
            return f"run {info.run_id} has no record"
        if not info.detached and info.host == platform.node() and not _alive(info.pid):
            return f"the process of run {info.run_id} (pid {info.pid}) is gone"
        return None

    def try_acquire(self) -> Attempt:
        with self._mutex():
            info = self.holder()
            note = ""
            if info is not None and info.owner != self.owner:
                if info.run_id == self.run_id and info.detached:
                    # the run resumed after detaching at a ``block-deployments`` step: the
                    # caller holds the run's own lock, so this is the one process going on
                    note = (
                        f"took over the lock of {self.label} that run {self.run_id} kept while "
                        "waiting"
                    )
                else:
                    reason = self._stale(info)
                    if reason is None:
                        held = _held(
                            self.label, info, same_run=info.run_id == self.run_id, path=self.path
                        )
                        return Attempt(False, held, info.run_id, info.detached)
                    note = f"broke the stale lock of {self.label}: {reason}"
            self._write(detached=False)
            return Attempt(True, note)

    def keep(self, seconds: float) -> None:
        """Marked detached, the lock file stays (a local lock has no lease: ``seconds`` does not
        matter); it is stale once the run has ended."""
        with self._mutex():
            info = self.holder()
            if info is not None and info.owner == self.owner:
                self._write(detached=True)

    def release(self) -> None:
        with self._mutex():
            info = self.holder()
            if info is not None and info.owner == self.owner:
                self.path.unlink(missing_ok=True)

    def release_kept(self) -> None:
        """Give up the lock this run kept when it detached, from a process that never took it
        (a resume cancelled before it went on): held by the run's own lock, that process is the
        one the kept lock would be handed to."""
        with self._mutex():
            info = self.holder()
            if info is not None and info.run_id == self.run_id and info.detached:
                self.path.unlink(missing_ok=True)

    def _write(self, *, detached: bool) -> None:
        info = {
            "run_id": self.run_id,
            "pid": os.getpid(),
            "host": platform.node(),
            "detached": detached,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "owner": self.owner,
        }
        write_replacing(self.path, json.dumps(info).encode(), durable=True)


#: the owner of a lock file that cannot be read
UNKNOWN = "?"
#: a lock file is a few hundred bytes; a larger one is held by someone unknown
LOCK_FILE_BYTES = 64 * 1024


def _unknown(problem: str) -> LockInfo:
    return LockInfo(run_id="?", pid=0, host="?", detached=False, since=problem, owner=UNKNOWN)


def _held(label: str, info: LockInfo, *, same_run: bool, path: object = None) -> str:
    if info.owner == UNKNOWN:
        return (
            f"{label} may be being deployed: its lock file {path} {info.since}; check that no "
            "run holds it, then delete the file"
        )
    if info.detached:
        # its process is long gone: the run waits for a person, and keeps the environment
        # (`block-deployments`) until it is resumed and ends
        return (
            f"{label} is held by run {info.run_id}, waiting for approval at a manual step with "
            f"block-deployments (since {info.since})"
        )
    where = f"since {info.since}, pid {info.pid} on {info.host}"
    same = ", another process with the same run id" if same_run else ""
    return f"{label} is being deployed by run {info.run_id} ({where}){same}"


@contextmanager
def run_lock(store: RecordStore, run_id: str) -> Iterator[None]:
    """Exclusive use of one run's record: a run resumed twice at once is refused."""
    folder = store.folder(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    with _lock_file(folder / ".lock") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefusedError(f"run {run_id} is already being run or resumed") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _lock_file(path: Path) -> Iterator[int]:
    """The descriptor of the lock file ``path`` (made if need be), never through a link: the
    state folder travels as a CI artifact, and a ``.lock`` replaced there by a link to a file of
    the resume machine was opened, made if missing, and locked. A FIFO or a device is refused
    too."""
    try:
        handle, _ = open_regular(path, os.O_RDWR | os.O_CREAT)
    except NotTheRunnersFile as exc:
        raise StateError(
            f"{path} is {exc.what}, not the lock file the runner made: not following or opening "
            "it (the state folder was changed since the runner wrote it)",
            hint=f"remove {path} if the state folder is otherwise yours",
        ) from None
    try:
        yield handle
    finally:
        os.close(handle)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
