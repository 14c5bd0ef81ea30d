"""The journal replayed over the snapshot is the record, exactly, at every save.

``RecordStore.save`` appends one line per change to ``events.jsonl`` and writes ``record.json``
only when asked for a durable save; ``load`` replays the journal over the snapshot. These tests
change a record as the engine does, at random, and load it back after every save.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from runner.approvals.state import ApprovalState, Decision, GateState
from runner.engine.journal import JournalError
from runner.engine.record import RecordStore, RunRecord, StepRecord
from runner.errors import StateError

KEY = b"k" * 40
APPROVED = ApprovalState(
    GateState.APPROVED, decisions=(Decision(username="alice", evidence={"n": 1.0}),)
)


def new(steps: int) -> RunRecord:
    return RunRecord(
        run_id="r1",
        workflow_path="w.yml",
        workflow_name="w",
        digest="d",
        environment="production",
        steps=[StepRecord(f"s{i}", f"Step {i}") for i in range(steps)],
    )


def same(store: RecordStore, record: RunRecord) -> None:
    loaded = RecordStore(store.state_dir, key=store.key)
    again = loaded.load_sealed(record.run_id) if store.key else loaded.load(record.run_id)
    assert json.loads(again.to_json()) | {"journal": None} == json.loads(record.to_json()) | {
        "journal": None
    }


@pytest.mark.parametrize("key", [None, KEY], ids=["unsealed", "sealed"])
@pytest.mark.parametrize("seed", range(8))
def test_every_save_loads_back_as_the_record(tmp_path: Path, seed: int, key: bytes | None) -> None:
    chance = random.Random(seed)
    store = RecordStore(tmp_path, key=key)
    record = new(chance.randint(1, 12))
    assert store.create(record)
    same(store, record)
    for step in list(record.steps):
        record.update_step(step.id, status="running", started_at="2026-01-01T00:00:00Z")
        store.save(record)
        same(store, record)
        status = chance.choice(["success", "failure", "skipped"])
        record.update_step(
            step.id,
            status=status,
            outcome=status,
            conclusion=status,
            outputs={"n": str(chance.random())},
            approval=APPROVED if chance.random() < 0.3 else None,
        )
        if status == "failure":
            record.job_status = "failure"
            record.error = {"message": f"Step '{step.name}' failed", "detail": "é ∆ \n"}
        record.env = {**record.env, step.id: "x"}
        store.save(record, durable=chance.random() < 0.3)
        same(store, record)
    record.status, record.exit_code = "success", 0
    store.save(record, durable=True)
    same(store, record)
    snapshot = json.loads(store.path("r1").read_text(encoding="utf-8"))
    count = len(store.journal_path("r1").read_text(encoding="utf-8").splitlines())
    assert snapshot["journal"]["lines"] == count


def test_a_save_without_changes_writes_nothing_and_only_durable_ones_the_snapshot(
    tmp_path: Path,
) -> None:
    store = RecordStore(tmp_path)
    record = new(2)
    store.create(record)
    first = store.path("r1").read_bytes()
    store.save(record)
    assert not store.journal_path("r1").exists()
    record.update_step("s0", status="running")
    store.save(record)
    store.save(record)
    assert len(store.journal_path("r1").read_text(encoding="utf-8").splitlines()) == 1
    assert store.path("r1").read_bytes() == first
    store.save(record, durable=True)
    assert json.loads(store.path("r1").read_text(encoding="utf-8"))["journal"]["lines"] == 1


def test_a_torn_last_line_is_dropped_and_cut_before_the_next(tmp_path: Path) -> None:
    store = RecordStore(tmp_path, key=KEY)
    record = new(2)
    store.create(record)
    record.update_step("s0", status="running")
    store.save(record)
    path = store.journal_path("r1")
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"n": 2, "steps": {"0": {"id": "s0", "sta')
    reader = RecordStore(tmp_path, key=KEY)
    loaded = reader.load_sealed("r1")
    assert loaded.step("s0").status == "running"
    loaded.update_step("s0", status="success")
    reader.save(loaded)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(whole.decode()) and text.count("\n") == 2
    assert RecordStore(tmp_path, key=KEY).load_sealed("r1").step("s0").status == "success"


def test_lines_another_store_appended_are_never_cut_off(tmp_path: Path) -> None:
    """Two readers of one run: the first to save appends; the other, whose copy of the journal
    ends before that line, refuses to save rather than cut a whole line off as a torn one."""
    store = RecordStore(tmp_path, key=KEY)
    record = new(2)
    store.create(record)
    first, second = RecordStore(tmp_path, key=KEY), RecordStore(tmp_path, key=KEY)
    ahead, behind = first.load_sealed("r1"), second.load_sealed("r1")
    ahead.update_step("s0", status="success")
    first.save(ahead)
    written = first.journal_path("r1").read_bytes()
    with pytest.raises(StateError, match="another process"):
        second.check_current("r1")
    behind.update_step("s1", status="running")
    with pytest.raises(StateError, match="appended by another process"):
        second.save(behind)
    assert first.journal_path("r1").read_bytes() == written
    assert RecordStore(tmp_path, key=KEY).load_sealed("r1").step("s0").status == "success"


def test_a_journal_read_without_the_key_is_replayed_with_the_key_it_is_checked(
    tmp_path: Path,
) -> None:
    """A report (``runner runs show``) has no key: it replays the lines as they are; a resume
    has it and checks them."""
    store = RecordStore(tmp_path, key=KEY)
    record = new(1)
    store.create(record)
    record.update_step("s0", status="running")
    store.save(record)
    path = store.journal_path("r1")
    path.write_text(path.read_text().replace('"running"', '"success"'), encoding="utf-8")
    assert RecordStore(tmp_path).load("r1").step("s0").status == "success"
    with pytest.raises(JournalError, match=r"events\.jsonl:1: the line does not verify"):
        RecordStore(tmp_path, key=KEY).load_sealed("r1")


def test_an_unsealed_journal_is_a_hash_chain(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    record = new(1)
    store.create(record)
    record.update_step("s0", status="running")
    store.save(record)
    path = store.journal_path("r1")
    assert '"mac": "sha256:' in path.read_text(encoding="utf-8")
    path.write_text(path.read_text().replace('"running"', '"success"'), encoding="utf-8")
    with pytest.raises(JournalError, match=r"events\.jsonl:1"):
        RecordStore(tmp_path).load("r1")
    with pytest.raises(JournalError, match="no MAC by"):
        RecordStore(tmp_path, key=KEY).load("r1")


def test_a_field_changed_in_place_after_saves_without_changes_is_written(tmp_path: Path) -> None:
    """The record's top-level fields are compared by their JSON, all at once: a dict the engine
    changes in place (``env``, ``path``) is seen changed, whatever was saved before."""
    store = RecordStore(tmp_path)
    record = new(2)
    store.create(record)
    record.update_step("s0", status="running")
    store.save(record)
    store.save(record)
    record.env["A"] = "1"
    record.path.append("/opt/bin")
    store.save(record)
    same(store, record)
    lines = store.journal_path("r1").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["set"] == {"env": {"A": "1"}, "path": ["/opt/bin"]}


def test_a_step_put_in_place_by_hand_beside_update_step_is_written(tmp_path: Path) -> None:
    """The store checks the steps ``update_step`` changed first; a step put in place another
    way in the same save (or a save after the hint was taken) is still found and written."""
    store = RecordStore(tmp_path)
    record = new(5)
    store.create(record)
    record.update_step("s1", status="running")
    record.steps[3] = StepRecord("s3", "Step 3", status="skipped")
    store.save(record)
    same(store, record)
    record.steps[4] = StepRecord("s4", "Step 4", status="skipped")
    store.save(record)
    same(store, record)
    # an update whose hint was taken by a save that failed is found on the next save
    record.update_step("s0", status="running")
    record.updated_steps()
    store.save(record)
    same(store, record)
    lines = store.journal_path("r1").read_text(encoding="utf-8").splitlines()
    assert [sorted(json.loads(line)["steps"]) for line in lines] == [["1", "3"], ["4"], ["0"]]


@pytest.mark.parametrize(
    "how",
    ["renamed over", "removed", "cut in place", "appended to", "moved away", "linked, removed"],
)
def test_a_journal_changed_between_two_lines_is_refused(tmp_path: Path, how: str) -> None:
    """Whatever is done to the journal by name between two lines is seen at the next: a line
    is never written into a file that no longer is the journal (a store that kept it open
    went on writing into a moved one, and a finished run's record could not be read after),
    nor does it cut off another's lines."""
    store = RecordStore(tmp_path, key=KEY)
    record = new(3)
    store.create(record)
    record.update_step("s0", status="running")
    store.save(record)
    record.update_step("s0", status="success")
    store.save(record)
    path = store.journal_path("r1")
    lines = path.read_bytes().splitlines(keepends=True)
    if how == "renamed over":
        replacement = path.with_name("forged")
        replacement.write_bytes(lines[0])
        os.replace(replacement, path)
    elif how == "removed":
        path.unlink()
    elif how == "cut in place":
        with open(path, "r+b") as handle:
            handle.truncate(len(lines[0]))
    elif how == "appended to":
        with open(path, "ab") as handle:
            handle.write(lines[1])
    elif how == "moved away":
        store.folder("r1").rename(tmp_path / "moved")
    else:
        os.link(path, tmp_path / "kept")
        path.unlink()
    moved = [tmp_path / "moved" / path.name, tmp_path / "kept"]
    elsewhere = {str(p): p.read_bytes() for p in moved if p.exists()}
    before = path.read_bytes() if path.exists() else None
    record.update_step("s1", status="running")
    with pytest.raises(StateError, match=r"shorter than|appended by another|No such file"):
        store.save(record)
    # nothing written: a journal removed is made again empty, as opening it by name did
    if store.folder("r1").exists():
        assert path.read_bytes() == (before if before is not None else b"")
    assert {str(p): p.read_bytes() for p in moved if p.exists()} == elsewhere


@pytest.mark.parametrize(
    ("first", "then"),
    [(None, float("nan")), (1, 1.0), (1, True), (0, False), ("1", 1), (2**70, 2**70 + 1)],
    ids=["null-nan", "int-float", "int-bool", "zero-false", "text-number", "huge"],
)
def test_a_field_changed_to_a_value_json_or_msgpack_confuse_is_written(
    tmp_path: Path, first: object, then: object
) -> None:
    """Fields are compared as one encoded value before any is written: a change the comparison
    missed would be lost from the journal, and from a resumed run."""
    store = RecordStore(tmp_path)
    record = new(1)
    record.inputs = {"x": first}
    store.create(record)
    record.inputs = {"x": then}
    record.update_step("s0", status="running")
    store.save(record)
    lines = store.journal_path("r1").read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1]).get("set", {}).get("inputs") is not None, lines[-1]


@pytest.mark.parametrize("key", [None, KEY], ids=["unsealed", "sealed"])
def test_a_journal_or_record_replaced_by_a_link_is_refused_and_its_target_kept(
    tmp_path: Path, key: bytes | None
) -> None:
    """A state folder that travels as a CI artifact can come back with ``events.jsonl`` as a
    link: the resume cut the link's target as a torn line and wrote its journal there."""
    store = RecordStore(tmp_path / "state", key=key)
    record = new(2)
    store.create(record)
    record.update_step("s0", status="running")
    store.save(record)
    target = tmp_path / "precious"
    target.write_bytes(b"something of the resume machine's, with no newline")
    path = store.journal_path("r1")
    os.replace(path, tmp_path / "journal")
    path.symlink_to(target)
    with pytest.raises((StateError, ValueError), match="symbolic link"):
        RecordStore(tmp_path / "state", key=key).load("r1")
    record.update_step("s0", status="success")
    with pytest.raises(StateError, match="symbolic link"):
        store.save(record)
    assert target.read_bytes() == b"something of the resume machine's, with no newline"
    # the snapshot too: the runner never writes a link in its state folder
    path.unlink()
    os.replace(tmp_path / "journal", path)
    snapshot = store.path("r1")
    os.replace(snapshot, tmp_path / "snapshot")
    snapshot.symlink_to(tmp_path / "snapshot")
    with pytest.raises((StateError, ValueError), match="symbolic link"):
        RecordStore(tmp_path / "state", key=key).load("r1")
