"""Locks are held by owners, not by run ids (#17).

A run id is whatever ``--run-id`` says, so two processes may give the same one. The deployment
lock records a random token of the process that took it, and another process is refused (exit
5) or waits with ``--wait-for-lock``, whatever run id it gives; only the process resuming a run
that detached and kept its lock takes it over. Two processes starting the same run id at the same
moment: exactly one creates the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runner.engine import start
from runner.engine.deployment_lock import acquire
from runner.engine.lock import LocalLock
from runner.engine.record import RecordStore
from runner.engine.run import new_record, utc_now
from runner.errors import RefusedError
from runner.model import Identity, Workflow
from runner.options import RunOptions

WORKFLOW = """\
name: Locked
environments: [production]
steps:
  - id: deploy
    name: Deploy
    run: echo deployed
"""


def take(lock: LocalLock, say: Callable[[str], None] = lambda text: None) -> None:
    """Take the lock or be refused, without waiting."""
    acquire(lock, wait=False, say=say, sleep=lambda seconds: None)


def waiting_record(store: RecordStore, run_id: str) -> None:
    """A run that is going on (its lock is not stale)."""
    workflow = Workflow(name="Locked", path="w.yml", digest="d", steps=())
    record = new_record(workflow, run_id, "production", {}, set(), Identity(), {}, utc_now())
    record.status = "running"
    store.save(record)


def test_a_second_process_with_the_same_run_id_is_refused(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    waiting_record(store, "same-1")
    first = LocalLock(store, "Locked", "production", "same-1")
    second = LocalLock(store, "Locked", "production", "same-1")
    take(first)
    with pytest.raises(RefusedError) as caught:
        take(second)
    assert "is being deployed by run same-1" in caught.value.message
    assert "another process with the same run id" in caught.value.message
    # nor can it release what it does not hold
    second.release()
    holder = first.holder()
    assert holder is not None and holder.owner == first.owner


def test_the_second_owner_waits_for_the_lock(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    waiting_record(store, "same-1")
    first = LocalLock(store, "Locked", "production", "same-1")
    second = LocalLock(store, "Locked", "production", "same-1")
    take(first)
    said: list[str] = []

    def sleep(seconds: float) -> None:
        first.release()  # the first deployment ends while the second waits

    acquire(second, wait=True, sleep=sleep, say=said.append)
    holder = second.holder()
    assert holder is not None and holder.owner == second.owner
    assert said and said[0].startswith("waiting for the lock: Locked -> production")


def test_a_resumed_run_takes_over_the_lock_it_kept_while_detached(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    waiting_record(store, "r1")
    first = LocalLock(store, "Locked", "production", "r1")
    take(first)
    first.keep(3600)  # waiting at a block-deployments step
    other = LocalLock(store, "Locked", "production", "r2")
    with pytest.raises(RefusedError):
        take(other)
    resumed = LocalLock(store, "Locked", "production", "r1")
    said: list[str] = []
    take(resumed, say=said.append)
    assert said == ["took over the lock of Locked -> production that run r1 kept while waiting"]


def test_two_starts_of_one_run_id_at_once_make_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.prepare import prepare

    path = tmp_path / "w.yml"
    path.write_text(WORKFLOW)
    prepared = prepare(str(path), "production", [], [], {})
    both_checked = threading.Barrier(2, timeout=10)
    build = start.build_run

    def slow_build(*args: Any, **kwargs: Any) -> Any:
        both_checked.wait()  # both have found no run of that id: the race
        return build(*args, **kwargs)

    monkeypatch.setattr(start, "build_run", slow_build)
    outcomes: list[str] = []

    def begin() -> None:
        request = start.RunRequest(
            prepared, "same-1", tmp_path / "S", log=_Log(), environ={}, options=RunOptions()
        )
        try:
            start.start_run(request)
            outcomes.append("started")
        except RefusedError as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=begin) for _ in range(2)]
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
    first = LocalLock(store, "Locked", "production", "waiting-1")
    take(first)
    first.keep(3600)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RefusedError) as caught:
        take(LocalLock(store, "Locked", "production", "other-2"))
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
    lock = LocalLock(store, "Locked", "production", "r1")
    lock.folder.mkdir(parents=True)
    lock.path.write_text(content)
    with pytest.raises(RefusedError) as caught:
        take(lock)
    assert "Locked -> production may be being deployed: its lock file" in caught.value.message
    assert str(lock.path) in caught.value.message
    assert lock.path.read_text() == content  # left as it was
