"""``runner runs show``'s text for a run still going and for one that ended."""

from __future__ import annotations

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
