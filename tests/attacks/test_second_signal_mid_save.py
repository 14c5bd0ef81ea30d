"""Kill it mid-way: a second Ctrl-C (or SIGTERM) that lands while the record is being saved.

The second signal stops the runner where it stands, and the run is recorded as cancelled. When
it landed between a journal line's write and the store counting it, the cancellation's own save
found a line it had not counted, took it for another process's ("received SIGINT: stopping (run
x is another process's)") and left the record ``running``: a later ``runner resume`` then ran
the deployment the user had stopped to its end. Seen about once in 30 double Ctrl-C's of a run
of 400 quick steps; here the signals are sent at that very point.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from helpers.run_helpers import Workspace

from runner.cli.main import main
from runner.engine import journal
from runner.engine.record import RecordStore, RunStatus

STEPS = "".join(f"  - {{id: s{i}, name: S{i}, run: 'true'}}\n" for i in range(8))
WORKFLOW = f"name: deploy\nsteps:\n{STEPS}  - {{id: last, name: Last, run: echo DEPLOYED}}\n"


@pytest.mark.parametrize("at_line", [3, 6, 9])
def test_a_second_signal_during_a_save_still_records_the_run_cancelled(
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    at_line: int,
) -> None:
    real = journal.append
    calls = [0]

    def append(path: Path, data: bytes, size: int, **kwargs: Any) -> None:
        real(path, data, size, **kwargs)
        calls[0] += 1
        if calls[0] == at_line:  # the line is written; the store has not counted it yet
            os.kill(os.getpid(), signal.SIGINT)  # the first: the run is being cancelled
            os.kill(os.getpid(), signal.SIGINT)  # the second: the runner stops here

    monkeypatch.setattr(journal, "append", append)
    outcome = workspace.run(WORKFLOW, environment="dev")
    assert outcome.code == 130, outcome.out + outcome.err
    assert "is another process's" not in outcome.out + outcome.err
    record = RecordStore(outcome.state_dir).load(outcome.run_id)
    assert record.status == RunStatus.CANCELLED, record.status
    assert record.step("last").status != "success"

    monkeypatch.setattr(journal, "append", real)
    capsys.readouterr()
    monkeypatch.chdir(workspace.root)
    code = main(["resume", outcome.run_id, "--state-dir", str(workspace.state_dir)])
    shown = capsys.readouterr()
    assert "DEPLOYED" not in shown.out, shown.out
    assert code != 0 and "already finished: cancelled" in shown.out + shown.err
