"""The deployment lock through its protocol (``engine.deployment_lock``), for both places it
lives: the state folder (``LocalLock``) and a real approval server on loopback (``ServerLock``).

What must read the same wherever the lock is: a second owner is refused (exit 5) whatever run id
it gives, or waits with ``--wait-for-lock``; only the holder releases; a lock kept by a run
detached at a ``block-deployments`` step refuses others without suggesting a wait, and is taken
over by that run's resume.
"""

from __future__ import annotations

import io
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn

from runner.approvals.server_client import ServerClient
from runner.engine.deployment_lock import DeploymentLock, acquire, refused_hint
from runner.engine.lock import LocalLock
from runner.engine.record import RecordStore
from runner.engine.run import new_record, utc_now
from runner.engine.server_lock import ServerLock, lock_key
from runner.engine.signals import cancel_recorded
from runner.errors import ExitCode, RefusedError
from runner.logs.text import TextLog
from runner.model import Identity, Workflow
from runner.server.app import create_app
from runner.server.storage import Store, make_engine, migrate

LABEL = "Locked -> production"

#: a lock for run ``run_id``, a new owner (process) each call
MakeLock = Callable[[str], DeploymentLock]


@pytest.fixture(autouse=True)
def outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal's hint differs in CI (``deployment_lock.refused_hint``)."""
    for name in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL", "TF_BUILD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real approval server (SQLite) on a free loopback port, and a runner token for it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('server') / 'server.db'}"
    engine = make_engine(url)
    migrate(engine)
    store = Store(engine)
    token = store.issue_token("runner", label="deployment lock tests")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", token
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        engine.dispose()


def waiting_record(store: RecordStore, run_id: str) -> None:
    """A run that is going on, so that the state folder's lock of it is not stale."""
    if store.exists(run_id):
        return
    workflow = Workflow(name="Locked", path="w.yml", digest="d", steps=())
    record = new_record(workflow, run_id, "production", {}, set(), Identity(), {}, utc_now())
    record.status = "running"
    store.save(record)


@pytest.fixture(params=["local", "server"])
def make_lock(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeLock]:
    made: list[DeploymentLock] = []
    if request.param == "local":
        store = RecordStore(tmp_path / "state")

        def make(run_id: str) -> DeploymentLock:
            waiting_record(store, run_id)
            lock = LocalLock(store, "Locked", "production", run_id)
            made.append(lock)
            return lock

    else:
        url, token = request.getfixturevalue("server_url")
        # a key of its own per test: the server is shared by the module
        key = lock_key("Locked", f"production {request.node.name}")

        def make(run_id: str) -> DeploymentLock:
            lock = ServerLock(
                ServerClient(url, token, attempts=1),
                key,
                run_id,
                LABEL,
                lease=60,
                say=lambda text: None,
                on_lost=lambda text: pytest.fail(text),
            )
            made.append(lock)
            return lock

    yield make
    for lock in made:
        lock.release()  # stops a server lock's heartbeat


def take(lock: DeploymentLock, say: Callable[[str], None] = lambda text: None) -> None:
    acquire(lock, wait=False, say=say, sleep=lambda seconds: pytest.fail("waited"))


@pytest.mark.parametrize("second_run", ["same-1", "other-2"])
def test_a_second_owner_is_refused_whatever_run_id_it_gives(
    make_lock: MakeLock, second_run: str
) -> None:
    take(make_lock("same-1"))
    with pytest.raises(RefusedError) as caught:
        take(make_lock(second_run))
    assert caught.value.message.startswith(f"{LABEL} is being deployed by run same-1 (")
    assert caught.value.exit_code == ExitCode.REFUSED
    assert caught.value.hint == "wait for it with --wait-for-lock"


def test_only_the_holder_releases(make_lock: MakeLock) -> None:
    first = make_lock("r1")
    take(first)
    make_lock("r1").release()  # another process naming the same run
    with pytest.raises(RefusedError):
        take(make_lock("r2"))
    first.release()
    take(make_lock("r2"))


def test_a_second_owner_waits_and_says_so_once(make_lock: MakeLock) -> None:
    first, second = make_lock("r1"), make_lock("r2")
    take(first)
    said: list[str] = []
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            first.release()  # the first deployment ends while the second waits

    acquire(second, wait=True, say=said.append, sleep=sleep, poll=0.5)
    assert sleeps == [0.5, 0.5, 0.5]
    assert len(said) == 1
    assert said[0].startswith(f"waiting for the lock: {LABEL} is being deployed by run r1 (")
    with pytest.raises(RefusedError):
        take(make_lock("r3"))  # the second holds it now


def test_a_kept_lock_refuses_others_without_suggesting_a_wait_and_goes_to_its_resume(
    make_lock: MakeLock,
) -> None:
    first = make_lock("waiting-1")
    take(first)
    first.keep(3600)  # detached at a block-deployments step
    with pytest.raises(RefusedError) as caught:
        take(make_lock("other-2"))
    assert "waiting-1" in caught.value.message
    assert "block-deployments" in caught.value.message
    assert caught.value.hint == refused_hint("waiting-1", True)
    assert "--wait-for-lock" not in caught.value.hint
    resumed = make_lock("waiting-1")
    take(resumed)
    with pytest.raises(RefusedError):
        take(make_lock("other-2"))
    resumed.release()
    take(make_lock("other-2"))


def test_a_resume_cancelled_before_it_goes_on_gives_up_the_lock_its_run_kept(
    tmp_path: Path,
) -> None:
    """``signals.cancel_recorded`` (a signal while ``runner resume`` prepares) cancels the run
    and frees the environment the run kept, though that process never took the lock."""
    store = RecordStore(tmp_path / "state")
    waiting_record(store, "waiting-1")
    kept = LocalLock(store, "Locked", "production", "waiting-1")
    take(kept)
    kept.keep(3600)
    out = io.StringIO()
    code = cancel_recorded(store, "waiting-1", KeyboardInterrupt(signal.SIGTERM), TextLog(out))
    assert code == ExitCode.INTERRUPTED
    assert store.load("waiting-1").status == "cancelled"
    assert kept.holder() is None
    take(LocalLock(store, "Locked", "production", "next-2"))


def test_a_cancelled_resume_leaves_another_runs_lock_alone(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "state")
    waiting_record(store, "waiting-1")
    waiting_record(store, "running-2")
    other = LocalLock(store, "Locked", "production", "running-2")
    take(other)
    cancel_recorded(store, "waiting-1", KeyboardInterrupt(signal.SIGINT), TextLog(io.StringIO()))
    holder = other.holder()
    assert holder is not None and holder.owner == other.owner
