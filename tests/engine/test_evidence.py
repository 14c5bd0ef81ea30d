"""``engine.evidence``: the gates a resume cannot verify offline (in-process, no git).

The terminal prompt leaves no evidence: a gate passed at it is asked again on a terminal, and
refused in CI or without one. A gate that proceeded on timeout counts only where the workflow
says ``on-timeout: proceed``. (Signed files and the server: ``tests/attacks``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.approvals.state import ApprovalState
from runner.engine.evidence import check_record, deployed_here
from runner.engine.record import RunRecord
from runner.engine.run import new_record, utc_now
from runner.errors import RefusedError
from runner.load import load_workflow
from runner.model import Identity, Workflow
from runner.options import RunOptions

WORKFLOW = """\
name: Local
environments: [dev]
steps:
  - id: gate
    name: Approve
    manual:
      timeout-minutes: 1
      on-timeout: {on_timeout}
  - id: after
    name: After
    run: echo deployed
"""


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def setup(tmp_path: Path, on_timeout: str = "abort") -> tuple[Workflow, RunRecord]:
    path = tmp_path / "w.yml"
    path.write_text(WORKFLOW.format(on_timeout=on_timeout))
    workflow = load_workflow(str(path)).workflow
    assert workflow is not None
    record = new_record(workflow, "p1", "dev", {}, set(), Identity(), {}, utc_now())
    record.commit = deployed_here(tmp_path)
    return workflow, record


def passed(record: RunRecord, state: str, decisions: list[dict[str, Any]]) -> None:
    record.update_step(
        "gate",
        status="success",
        outcome="success",
        conclusion="success",
        outputs={"approved": "true"},
        approval=ApprovalState.from_json(
            {"state": state, "decisions": decisions, "decided_at": utc_now()}
        ),
    )


PROMPTED = [{"source": "prompt", "result": "proceed", "username": "alice", "evidence": {}}]


def check(
    workflow: Workflow,
    record: RunRecord,
    tmp_path: Path,
    *,
    terminal: bool,
    environ: dict[str, str] | None = None,
) -> Log:
    log = Log()
    check_record(
        record,
        workflow,
        tmp_path,
        environ=environ or {},
        options=RunOptions(),
        log=log,
        skip=frozenset(),
        terminal=terminal,
    )
    return log


def test_a_prompt_passed_gate_is_asked_again_on_a_terminal(tmp_path: Path) -> None:
    workflow, record = setup(tmp_path)
    passed(record, "approved", PROMPTED)
    log = check(workflow, record, tmp_path, terminal=True)
    gate = record.step("gate")
    assert (gate.status, gate.approval, gate.outputs) == ("pending", None, {})
    assert log.lines == ["gate `gate`: passed at a terminal prompt: asked again on resume"]


@pytest.mark.parametrize(
    ("terminal", "environ", "where"),
    [
        (False, {}, "without a terminal"),
        (True, {"GITHUB_ACTIONS": "true"}, "in CI ($GITHUB_ACTIONS is set)"),
    ],
)
def test_a_prompt_passed_gate_is_refused_where_nobody_can_be_asked(
    tmp_path: Path, terminal: bool, environ: dict[str, str], where: str
) -> None:
    workflow, record = setup(tmp_path)
    passed(record, "approved", PROMPTED)
    with pytest.raises(RefusedError) as caught:
        check(workflow, record, tmp_path, terminal=terminal, environ=environ)
    assert caught.value.message == (
        "run p1 cannot be resumed: gate `gate` was passed at a terminal prompt (by alice), which "
        f"leaves no evidence a resume can verify, and it cannot be asked again {where}"
    )
    assert record.step("gate").status == "success"  # nothing changed: the resume stops


def test_proceeded_on_timeout_counts_only_where_the_workflow_says_so(tmp_path: Path) -> None:
    workflow, record = setup(tmp_path, on_timeout="proceed")
    passed(record, "proceeded-on-timeout", [])
    check(workflow, record, tmp_path, terminal=False)
    assert record.step("gate").status == "success"
    # with the decisions that did not reach a quorum before the timeout
    passed(record, "proceeded-on-timeout", [{"source": "file", "result": "proceed"}])
    check(workflow, record, tmp_path, terminal=False)
    assert record.step("gate").status == "success"

    workflow, record = setup(tmp_path, on_timeout="abort")
    passed(record, "proceeded-on-timeout", [])
    with pytest.raises(RefusedError) as caught:
        check(workflow, record, tmp_path, terminal=False)
    assert "proceeded on timeout, but the workflow aborts it on timeout" in caught.value.message


def test_a_job_status_edited_to_success_follows_the_failed_step(tmp_path: Path) -> None:
    workflow, record = setup(tmp_path)
    # as if continue-on-error, which the workflow does not say
    record.update_step("gate", status="failure", outcome="failure", conclusion="success")
    check(workflow, record, tmp_path, terminal=False)
    assert (record.step("gate").conclusion, record.job_status) == ("failure", "failure")
    assert record.error == {"message": "Step 'Approve' failed", "detail": ""}
