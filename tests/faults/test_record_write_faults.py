"""Writing the run record fails (a full disk, a read-only state folder): the run fails closed.

``runner.engine.record.write_new`` (the first record), ``journal.append`` (a line of the journal,
every save) and ``write_replacing`` (the snapshot, at the end) are replaced by writers that raise
``OSError`` on the Nth write of the record, for every N a whole run makes. Each time the run must
stop with a non-zero exit code and a message naming the failure, no step may start after the
failed write, the record left on disk must be the previous one (the snapshot last written and
the journal lines written before, whole and readable), and no temporary file may be taken for a
record.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.run_helpers import Workspace

from runner.engine import journal as journal_module
from runner.engine import record as record_module
from runner.engine.record import RecordStore

WORKFLOW = """
name: faults
steps:
  - id: first
    name: First
    run: |
      touch first.ran
      echo "value=1" >> "$GITHUB_OUTPUT"
  - id: second
    name: Second
    run: touch second.ran
  - id: third
    name: Third
    if: always()
    run: touch third.ran
"""
MARKERS = ("first.ran", "second.ran", "third.ran")


def counting_writer(fail_at: int | None, seen: list[bytes]) -> Callable[..., None]:
    real = record_module.write_replacing

    def write(path: Path, data: bytes, *, durable: bool) -> None:
        if path.name != "record.json":  # a lock file (lock.py may import the patched name)
            real(path, data, durable=durable)
            return
        seen.append(data)
        if len(seen) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data, durable=durable)

    return write


def counting_creator(fail_at: int | None, seen: list[bytes]) -> Callable[..., bool]:
    real = record_module.write_new

    def create(path: Path, data: bytes) -> bool:
        seen.append(data)
        if len(seen) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    return create


def counting_appender(fail_at: int | None, seen: list[bytes]) -> Callable[..., None]:
    real = journal_module.append

    def append(path: Path, data: bytes, size: int, *, durable: bool) -> None:
        seen.append(data)
        if len(seen) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data, size, durable=durable)

    return append


def run_with(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, fail_at: int | None
) -> tuple[Any, list[bytes]]:
    seen: list[bytes] = []
    monkeypatch.setattr(record_module, "write_new", counting_creator(fail_at, seen))
    monkeypatch.setattr(record_module, "write_replacing", counting_writer(fail_at, seen))
    monkeypatch.setattr(journal_module, "append", counting_appender(fail_at, seen))
    return workspace.run(WORKFLOW), seen


def test_the_control_run_writes_the_record_several_times(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, seen = run_with(workspace, monkeypatch, None)
    assert outcome.code == 0, outcome.err
    assert len(seen) == WRITES
    assert outcome.record.status == "success"


WRITES = 10  # the control run: the first record, 8 journal lines, the snapshot at the end


@pytest.mark.parametrize("fail_at", range(1, WRITES + 1))
def test_a_failed_record_write_fails_the_run_closed(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    outcome, seen = run_with(workspace, monkeypatch, fail_at)
    assert len(seen) == fail_at, "the run went on writing after a failed write"
    assert outcome.code != 0
    message = outcome.out + outcome.err
    assert "No space left on device" in message, message
    # the record on disk is the last one written before the failure, whole
    store = RecordStore(workspace.state_dir)
    if fail_at == 1:
        assert not store.exists("run-1")
    else:
        written = seen[: fail_at - 1]
        snapshots = [data for data in written if data.startswith(b"{\n")]
        lines = [data for data in written if not data.startswith(b"{\n")]
        assert store.path("run-1").read_bytes() == snapshots[-1]
        journal = store.journal_path("run-1")
        assert (journal.read_bytes() if journal.exists() else b"") == b"".join(lines)
        record = store.load("run-1")
        assert [r.run_id for r in store.list()] == ["run-1"]
        # nothing started after the failed write: a step that ran is one the record knew of
        started = {s.id for s in record.steps if s.status != "pending"}
        for marker in MARKERS:
            step = marker.split(".")[0]
            if (workspace.root / marker).exists():
                assert step in started, f"{step} ran but the record never said it started"
    leftovers = list((workspace.state_dir / "runs").rglob(".record.json.*"))
    assert leftovers == []
    # the locks were released: the next run of the same workflow starts and finishes
    monkeypatch.setattr(record_module, "write_replacing", counting_writer(None, []))
    again = workspace.run(WORKFLOW, run_id="run-2")
    assert again.code == 0, again.out + again.err


def test_a_failed_record_write_is_reported_as_such(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, _ = run_with(workspace, monkeypatch, 3)
    assert outcome.code not in (0, 70)
    assert "internal error" not in outcome.err
    assert "record" in outcome.err
