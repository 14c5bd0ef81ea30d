"""The record's JSON stays exactly the record, whatever its kept lines (``_StepLines``).

Saving reuses the line of each step that has not changed and the joined text of the finished
steps at the front; these tests change a record as the engine does (a step goes from pending to
running or waiting to a final status; groups run side by side) and compare every save with the
record's plain data.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from runner.approvals.state import ApprovalState, Decision, GateState
from runner.engine.record import RunRecord, StepRecord


def record(steps: int) -> RunRecord:
    return RunRecord(
        run_id="r1",
        workflow_path="w.yml",
        workflow_name="w",
        digest="d",
        environment="production",
        steps=[StepRecord(f"s{i}", f"Step {i}") for i in range(steps)],
    )


def assert_exact(rec: RunRecord) -> None:
    plain = dataclasses.asdict(rec)
    for step, data in zip(rec.steps, plain["steps"], strict=True):
        data["approval"] = step.approval.to_json() if step.approval else None
        # a step that never asked under guided failure has no `guided` key (records from before
        # it existed load and save back unchanged)
        if data["guided"] is None:
            del data["guided"]
    assert json.loads(rec.to_json()) == json.loads(json.dumps(plain))


def finish(step: StepRecord, status: str, index: int) -> None:
    step.status = step.outcome = step.conclusion = status
    step.finished_at = f"2026-01-01T00:00:{index % 60:02d}Z"
    step.outputs[f"out{index}"] = f"value {index}"
    step.octopus["Manual.Notes"] = f"notes {index}"
    if index % 5 == 4:
        decision = Decision(username="alice", submitted_at=str(index), evidence={"n": 1.0})
        step.approval = ApprovalState(GateState.APPROVED, decisions=(decision,))


@pytest.mark.parametrize("seed", range(20))
def test_every_save_is_the_record(seed: int) -> None:
    chance = random.Random(seed)
    rec = record(chance.randint(1, 30))
    assert_exact(rec)
    position = 0
    while position < len(rec.steps):
        group = rec.steps[position : position + chance.randint(1, 3)]
        for step in group:
            step.status = chance.choice(["running", "waiting"])
            step.started_at = "2026-01-01T00:00:00Z"
        assert_exact(rec)
        for step in group:
            index = rec.steps.index(step)
            finish(step, chance.choice(["success", "failure", "skipped", "cancelled"]), index)
            assert_exact(rec)
        position += len(group)
        if chance.random() < 0.2:
            rec.status = "waiting"
            assert_exact(rec)
    rec.status, rec.exit_code = "success", 0
    assert_exact(rec)


def test_a_step_replaced_or_rerun_is_written_again() -> None:
    rec = record(4)
    for i, step in enumerate(rec.steps[:3]):
        finish(step, "success", i)
    assert_exact(rec)
    # a resumed run re-runs an interrupted step: its status leaves the finished ones
    rec.steps[1].status = "pending"
    rec.steps[1].reason = "re-run"
    assert_exact(rec)
    rec.steps[0] = StepRecord("s0", "Step 0 again")
    assert_exact(rec)
    del rec.steps[2:]
    assert_exact(rec)


def test_a_pending_step_with_an_approval_is_encoded_at_every_save() -> None:
    rec = record(3)
    evidence: dict[str, object] = {}
    decision = Decision(username="alice", evidence=evidence)
    # nested values of any type: never kept
    rec.steps[2].approval = ApprovalState(GateState.WAITING, decisions=(decision,))
    assert_exact(rec)
    evidence["fields"] = {"n": 1}
    assert rec.steps[2].status == "pending"
    assert_exact(rec)
