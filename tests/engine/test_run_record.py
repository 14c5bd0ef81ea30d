"""The run record survives ``kill -9`` at any moment: ``record.json`` is always whole, valid JSON
of the expected shape (it is replaced atomically), and temporary files are never taken for
records."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from helpers.run_helpers import Workspace, kill_quietly, wait_for

from runner.engine.record import RecordStore, RunRecord, RunStatus, StepStatus
from runner.engine.run import new_record, utc_now
from runner.model import Identity, Workflow

STEPS = 12
MANY_STEPS = "\n".join(
    f"""
  - id: s{i}
    name: Step {i}
    {"start: with-previous" if i % 4 == 3 else ""}
    run: |
      echo "value=$(seq 1 {i * 20} | tr '\\n' ' ')" >> "$GITHUB_OUTPUT"
      echo "step {i}"
"""
    for i in range(STEPS)
)
WORKFLOW = f"""
name: durable
inputs:
  version:
    default: "1.0"
steps:
{MANY_STEPS}
  - id: last
    name: Last
    if: always()
    run: echo done
"""
IDS = [f"s{i}" for i in range(STEPS)] + ["last"]


def check_record(store: RecordStore, *, finished: bool | None = None) -> RunRecord | None:
    """The record as a reader sees it after a kill: absent, or whole and consistent, both the
    snapshot alone and the snapshot with the journal's lines replayed (what `runner runs show`
    and a resume read); the replayed one is returned."""
    path = store.path("run-1")
    if not path.exists():
        assert list(store.list()) == []
        return None
    snapshot = RunRecord.from_json(path.read_text(encoding="utf-8"))
    # a kill mid-line leaves a torn last line, which a reader drops; anything else is refused
    replayed = store.load("run-1")
    assert [r.run_id for r in store.list()] == ["run-1"]
    for record in (snapshot, replayed):
        check_shape(record, finished)
    # the journal only adds to the snapshot: a step it shows finished stays finished
    for before, after in zip(snapshot.steps, replayed.steps, strict=True):
        if before.status in ("success", "failure", "skipped", "cancelled"):
            assert after == before
    # a temporary file the kill left beside the record (written or not, never renamed) is never
    # read: whatever it holds, a reader gets the same record (a temporary file whole enough to
    # parse was taken for a failure of this test, once in a few hundred runs)
    for extra in path.parent.iterdir():
        if extra.name.startswith(".record.json."):
            extra.write_text('{"version": 1, "run_id": "run-1", "steps": "not a record"}')
            assert RecordStore(store.state_dir).load("run-1") == replayed
    return replayed


def check_shape(record: RunRecord, finished: bool | None) -> None:
    assert record.run_id == "run-1"
    assert record.workflow_name == "durable"
    assert record.environment == "staging"
    assert record.inputs == {"version": "1.0"}
    assert isinstance(record.status, RunStatus)
    assert [s.id for s in record.steps] == IDS
    for step in record.steps:
        assert isinstance(step.status, StepStatus)
        if step.status in ("success", "failure", "skipped", "cancelled"):
            assert step.conclusion == step.status or step.status == "skipped"
        if step.status == "success":
            assert step.finished_at is not None
            if step.id != "last":
                index = IDS.index(step.id)
                assert step.outputs["value"].split() == [str(n) for n in range(1, 20 * index + 1)]
        if step.status == "pending":
            assert (step.outcome, step.started_at, step.attempts) == ("", None, 0)
    # steps run in order: nothing pending before something finished, outside parallel groups
    statuses = [s.status for s in record.steps]
    if "pending" in statuses:
        first_pending = statuses.index("pending")
        assert all(s == "pending" for s in statuses[first_pending + 1 :]), statuses
    if finished is not None:
        assert record.finished == finished


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3])
def test_kill_at_any_moment_leaves_a_valid_record(workspace: Workspace, delay: float) -> None:
    """SIGKILL the runner at several moments; timing only picks the moment, never an assertion."""
    proc = workspace.spawn(WORKFLOW)
    time.sleep(delay)
    proc.kill()
    proc.communicate(timeout=30)
    check_record(RecordStore(workspace.state_dir))


def test_kill_right_after_the_record_appears(workspace: Workspace) -> None:
    proc = workspace.spawn(WORKFLOW)
    store = RecordStore(workspace.state_dir)
    try:
        wait_for(
            lambda: store.path("run-1").exists() or proc.poll() is not None, what="the first record"
        )
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        kill_quietly(proc.pid)
    record = check_record(store)
    assert record is not None


def test_kill_during_a_step(workspace: Workspace) -> None:
    proc = workspace.spawn(
        """
        name: durable
        inputs:
          version:
            default: "1.0"
        steps:
          - id: first
            name: First
            run: echo "value=1" >> "$GITHUB_OUTPUT"
          - id: second
            name: Second
            run: |
              echo $$ > second.pid
              sleep 300
          - id: third
            name: Third
            run: echo third
        """
    )
    pid_file = workspace.root / "second.pid"
    try:
        wait_for(
            lambda: pid_file.exists() and pid_file.read_text().endswith("\n"),
            what="the second step",
        )
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if pid_file.exists():
            kill_quietly(int(pid_file.read_text()), group=True)  # orphaned by the kill
    assert proc.returncode == -signal.SIGKILL
    record = RecordStore(workspace.state_dir).load("run-1")
    assert (record.status, record.finished_at, record.exit_code) == ("running", None, None)
    assert record.pid == proc.pid
    assert [(s.id, s.status) for s in record.steps] == [
        ("first", "success"),
        ("second", "running"),
        ("third", "pending"),
    ]
    assert record.step("first").outputs == {"value": "1"}
    assert record.step("second").started_at is not None
    assert record.step("second").reason == "the steps before succeeded"


def test_finished_run_record(workspace: Workspace) -> None:
    result = workspace.cli(WORKFLOW)
    assert result.code == 0, result.err
    record = check_record(RecordStore(workspace.state_dir), finished=True)
    assert record is not None
    assert (record.status, record.exit_code, record.job_status) == ("success", 0, "success")
    assert all(s.status == "success" and s.attempts == 1 for s in record.steps)
    assert record.finished_at is not None
    folder = workspace.state_dir / "runs" / "run-1"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".record.json.")]


def test_store_list_ignores_temporary_and_broken_files(workspace: Workspace) -> None:
    result = workspace.cli(WORKFLOW)
    assert result.code == 0, result.err
    store = RecordStore(workspace.state_dir)
    folder = store.folder("run-1")
    (folder / ".record.json.abc123").write_text('{"version": 1, "run_id": "run-1", "ste')
    broken = store.folder("broken")
    broken.mkdir()
    (broken / "record.json").write_text('{"version": 1, "run_id": "bro')
    other = store.folder("other-version")
    other.mkdir()
    (other / "record.json").write_text('{"version": 99}')
    assert [r.run_id for r in store.list()] == ["run-1"]
    assert store.load("run-1").status == "success"


def test_a_new_record_appears_whole_or_not_at_all_and_only_once(tmp_path: Path) -> None:
    """Creating a run's first record: a reader polling the file never sees it empty or partial
    (the id used to be claimed with an empty file, then written: a kill in between left an empty
    record.json), and of several creators of one run id exactly one succeeds."""
    store = RecordStore(tmp_path)
    workflow = Workflow(name="durable", path="w.yml", digest="d", steps=())
    seen: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        path = store.path("run-1")
        while not stop.is_set():
            with contextlib.suppress(OSError):
                seen.append(path.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def create(n: int) -> None:
        record = new_record(workflow, "run-1", "staging", {}, set(), Identity(), {}, utc_now())
        record.error = {"message": f"creator {n}"}
        barrier.wait()
        results.append(store.create(record))

    creators = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    for thread in creators:
        thread.start()
    for thread in creators:
        thread.join()
    stop.set()
    reader.join()
    assert sorted(results) == [False, False, False, True]
    whole = store.path("run-1").read_bytes()
    assert all(content == whole for content in seen)
    assert RunRecord.from_json(whole.decode()).run_id == "run-1"
    # no temporary file is left beside it
    assert os.listdir(store.folder("run-1")) == ["record.json"]


def test_a_whole_temporary_record_left_by_a_kill_is_never_read(tmp_path: Path) -> None:
    """A kill between writing the next snapshot and renaming it over ``record.json`` leaves a
    whole record under a temporary name: readers, the list of runs and a resume's load read
    ``record.json`` and its journal only."""
    store = RecordStore(tmp_path)
    workflow = Workflow(name="durable", path="w.yml", digest="d", steps=())
    record = new_record(workflow, "run-1", "staging", {}, set(), Identity(), {}, utc_now())
    assert store.create(record)
    newer = RunRecord.from_json(record.to_json())
    newer.status = RunStatus.SUCCESS
    newer.error = {"message": "never renamed into place"}
    (store.folder("run-1") / ".record.json.abc123").write_text(newer.to_json())
    (store.folder("run-2")).mkdir()
    (store.folder("run-2") / ".record.json.def456").write_text(newer.to_json())
    fresh = RecordStore(tmp_path)
    assert fresh.load("run-1") == record
    assert [(r.run_id, r.status, r.error) for r in fresh.list()] == [
        ("run-1", RunStatus.RUNNING, None)
    ]
