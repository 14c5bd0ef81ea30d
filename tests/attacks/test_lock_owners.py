"""Locks are held by owners, not by run ids (#17).

A run id is whatever ``--run-id`` says, so two processes may give the same one. The deployment
lock records a random token of the process that took it, and another process is refused (exit
5) or waits with ``--wait-for-lock``, whatever run id it gives; only the process resuming a run
that detached and kept its lock takes it over. Two processes starting the same run id at the same
moment: exactly one creates the run.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from runner.engine import session
from runner.engine.contexts import Identity
from runner.engine.lock import DeploymentLock
from runner.engine.record import RecordStore
from runner.engine.run import new_record, utc_now
from runner.errors import RefusedError
from runner.model import Workflow
from runner.options import RunOptions

WORKFLOW = """\
name: Locked
environments: [production]
steps:
  - id: deploy
    name: Deploy
    run: echo deployed
"""


def waiting_record(store: RecordStore, run_id: str) -> None:
    """A run that is going on (its lock is not stale)."""
    workflow = Workflow(name="Locked", path="w.yml", digest="d", steps=())
    record = new_record(workflow, run_id, "production", {}, set(), Identity(), {}, utc_now())
    record.status = "running"
    store.save(record)


def test_a_second_process_with_the_same_run_id_is_refused(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    waiting_record(store, "same-1")
    first = DeploymentLock(store, "Locked", "production")
    second = DeploymentLock(store, "Locked", "production")
    first.acquire("same-1", wait=False)
    with pytest.raises(RefusedError) as caught:
        second.acquire("same-1", wait=False)
    assert "is being deployed by run same-1" in caught.value.message
    assert "another process with the same run id" in caught.value.message
    # nor can it release what it does not hold
    second.release("same-1")
    holder = first.holder()
    assert holder is not None and holder.owner == first.owner


def test_the_second_owner_waits_for_the_lock(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    waiting_record(store, "same-1")
    first = DeploymentLock(store, "Locked", "production")
    second = DeploymentLock(store, "Locked", "production")
    first.acquire("same-1", wait=False)
    said: list[str] = []

    def sleep(seconds: float) -> None:
        first.release("same-1")  # the first deployment ends while the second waits

    second.acquire("same-1", wait=True, sleep=sleep, say=said.append)
    holder = second.holder()
    assert holder is not None and holder.owner == second.owner
    assert said and said[0].startswith("waiting for the lock: Locked -> production")


def test_a_resumed_run_takes_over_the_lock_it_kept_while_detached(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    waiting_record(store, "r1")
    first = DeploymentLock(store, "Locked", "production")
    first.acquire("r1", wait=False)
    first.mark_detached("r1", keep=True)  # waiting at a block-deployments step
    other = DeploymentLock(store, "Locked", "production")
    with pytest.raises(RefusedError):
        other.acquire("r2", wait=False)
    resumed = DeploymentLock(store, "Locked", "production")
    said: list[str] = []
    resumed.acquire("r1", wait=False, say=said.append)
    assert said == ["took over the lock of Locked -> production that run r1 kept while waiting"]


def test_two_starts_of_one_run_id_at_once_make_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.prepare import prepare

    path = tmp_path / "w.yml"
    path.write_text(WORKFLOW)
    prepared = prepare(str(path), "production", [], [], {})
    both_checked = threading.Barrier(2, timeout=10)
    build = session.build_run

    def slow_build(*args: Any, **kwargs: Any) -> Any:
        both_checked.wait()  # both have found no run of that id: the race
        return build(*args, **kwargs)

    monkeypatch.setattr(session, "build_run", slow_build)
    outcomes: list[str] = []

    def start() -> None:
        request = session.RunRequest(
            prepared, "same-1", tmp_path / "S", log=_Log(), environ={}, options=RunOptions()
        )
        try:
            session.start_run(request)
            outcomes.append("started")
        except RefusedError as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(outcomes) == ["run same-1 already exists in " + str(tmp_path / "S"), "started"]


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_a_lock_kept_by_a_detached_run_says_so_and_does_not_suggest_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RecordStore(tmp_path)
    waiting_record(store, "waiting-1")
    first = DeploymentLock(store, "Locked", "production")
    first.acquire("waiting-1", wait=False)
    first.mark_detached("waiting-1", keep=True)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RefusedError) as caught:
        DeploymentLock(store, "Locked", "production").acquire("other-2", wait=False)
    assert caught.value.message.startswith(
        "Locked -> production is held by run waiting-1, waiting for approval"
    )
    assert "pid" not in caught.value.message
    assert "--wait-for-lock" not in str(caught.value.hint)
    assert "runner resume waiting-1" in str(caught.value.hint)


@pytest.mark.parametrize(
    "content", ['{"run_id": "x", "owner": "o", "lease": 60}', "\x00garbage", '{"run_id": ']
)
def test_a_lock_file_that_cannot_be_read_is_not_taken_as_free(tmp_path: Path, content: str) -> None:
    """A newer runner's lock file (an extra key) or a damaged one: someone may hold it."""
    store = RecordStore(tmp_path)
    lock = DeploymentLock(store, "Locked", "production")
    lock.folder.mkdir(parents=True)
    lock.path.write_text(content)
    with pytest.raises(RefusedError) as caught:
        lock.acquire("r1", wait=False)
    assert "Locked -> production may be being deployed: its lock file" in caught.value.message
    assert str(lock.path) in caught.value.message
    assert lock.path.read_text() == content  # left as it was
