"""``runner runs show``'s text for a run still going and for one that ended."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import cli_in

from runner.cli.runs import show_text
from runner.engine.record import RunRecord, RunStatus, StepRecord


def record(status: RunStatus, exit_code: int | None) -> RunRecord:
    return RunRecord(
        run_id="r1",
        workflow_path="deploy.yml",
        workflow_name="Deploy",
        digest="0" * 64,
        environment="staging",
        started_at="2026-01-01T00:00:00.000Z",
        status=status,
        exit_code=exit_code,
        steps=[StepRecord(id="a", name="A")],
    )


def test_a_run_still_going_shows_no_exit_code() -> None:
    first = show_text(record(RunStatus.RUNNING, None), {}).splitlines()[0]
    assert first == "run r1: Deploy -> staging: running"


def test_a_finished_run_shows_its_exit_code() -> None:
    first = show_text(record(RunStatus.FAILURE, 1), {}).splitlines()[0]
    assert first == "run r1: Deploy -> staging: failure (exit 1)"


def test_an_empty_history_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "no runs recorded" alone did not say which folder was read, from a folder outside the clone
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = cli_in(monkeypatch, tmp_path, environ, "runs", "list")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"no runs recorded in {tmp_path / '.runner'}\n"
        "(the state folder is .runner in the workspace root: run this inside the checkout, "
        "or pass --state-dir)\n"
    )
