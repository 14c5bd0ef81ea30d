"""A run that detaches at a manual step on GitHub says in the job summary what it waits for."""

from __future__ import annotations

import io
from pathlib import Path

from runner.approvals.request import Interruption
from runner.approvals.state import ApprovalState, GateState
from runner.engine.record import RunRecord, StepRecord
from runner.logs.github import GitHubLog
from runner.model import Workflow

ASKED = Interruption(
    id="r-42--gate",
    run_id="r-42",
    step_id="gate",
    step_name="Gate",
    title="Approve the production deploy",
    instructions="Check the dashboard.\n\nThen decide.",
    teams=("release-managers",),
    quorum=(("release-managers", 2),),
    fields=(),
    created="2029-12-31T12:00:00.000Z",
    deadline="2030-01-01T12:00:00.000Z",
    environment="production",
    workflow="Deploy",
    digest="0" * 64,
    commit=None,
    inputs={},
    following_steps=(),
    started_by="alice",
    prevent_self_approval=False,
    sources=("file", "server"),
)


def waiting_record() -> RunRecord:
    gate = StepRecord(
        "gate", "Gate", status="waiting", approval=ApprovalState(GateState.WAITING, ASKED)
    )
    return RunRecord(
        run_id="r-42",
        workflow_path="deploy.yml",
        workflow_name="Deploy",
        digest="0" * 64,
        environment="production",
        status="waiting",
        steps=[StepRecord("build", "Build", status="success", conclusion="success"), gate],
    )


def test_the_summary_of_a_detached_run_says_what_is_asked(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    log = GitHubLog(io.StringIO(), summary_path=str(summary))
    record = waiting_record()
    log.run_started(Workflow(name="Deploy", path="deploy.yml", digest="d", steps=()), record)
    log.run_detached(record)
    text = summary.read_text()
    assert text.startswith("### Deploy → production: waiting\n")
    assert "#### ⏸️ Waiting for approval: Approve the production deploy\n" in text
    assert "> Check the dashboard.\n>\n> Then decide.\n" in text
    assert "- who: release-managers (2 from release-managers)\n" in text
    assert "- deadline: 2030-01-01T12:00:00.000Z\n" in text
    assert "- sources: file, server\n" in text
    assert "- then: `runner resume r-42`\n" in text


def test_without_a_summary_file_nothing_is_written(tmp_path: Path) -> None:
    log = GitHubLog(io.StringIO(), summary_path=None)
    record = waiting_record()
    log.run_started(Workflow(name="Deploy", path="deploy.yml", digest="d", steps=()), record)
    log.run_detached(record)
    assert list(tmp_path.iterdir()) == []
