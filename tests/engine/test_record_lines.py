"""The record's JSON stays exactly the record, whatever the lines its steps keep.

Each ``StepRecord`` keeps its encoded line (``json_line``); records are frozen, so a change is a
new step put in place by ``RunRecord.update_step``. These tests change a record as the engine does
(a step goes from pending to running or waiting to a final status; groups run side by side) and
compare every save with the record's plain data.
"""

from __future__ import annotations

import json
import random

import msgspec
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
    plain = msgspec.to_builtins(rec)
    for step, data in zip(rec.steps, plain["steps"], strict=True):
        data["approval"] = step.approval.to_json() if step.approval else None
        # a step that never asked under guided failure has no `guided` key (records from before
        # it existed load and save back unchanged)
        if data["guided"] is None:
            del data["guided"]
    if plain["journal"] is None:
        del plain["journal"]  # written only by the store, for a record with journal lines
    if not plain["secret_path"]:
        del plain["secret_path"]  # written only when a PATH entry held a secret
    assert json.loads(rec.to_json()) == json.loads(json.dumps(plain))


def finish(rec: RunRecord, step: StepRecord, status: str, index: int) -> None:
    approval = step.approval
    if index % 5 == 4:
        decision = Decision(username="alice", submitted_at=str(index), evidence={"n": 1.0})
        approval = ApprovalState(GateState.APPROVED, decisions=(decision,))
    rec.update_step(
        step.id,
        status=status,
        outcome=status,
        conclusion=status,
        finished_at=f"2026-01-01T00:00:{index % 60:02d}Z",
        outputs={**step.outputs, f"out{index}": f"value {index}"},
        octopus={**step.octopus, "Manual.Notes": f"notes {index}"},
        approval=approval,
    )


@pytest.mark.parametrize("seed", range(20))
def test_every_save_is_the_record(seed: int) -> None:
    chance = random.Random(seed)
    rec = record(chance.randint(1, 30))
    assert_exact(rec)
    position = 0
    while position < len(rec.steps):
        group = [step.id for step in rec.steps[position : position + chance.randint(1, 3)]]
        for step_id in group:
            rec.update_step(
                step_id,
                status=chance.choice(["running", "waiting"]),
                started_at="2026-01-01T00:00:00Z",
            )
        assert_exact(rec)
        for step_id in group:
            index = int(step_id[1:])
            status = chance.choice(["success", "failure", "skipped", "cancelled"])
            finish(rec, rec.step(step_id), status, index)
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
        finish(rec, step, "success", i)
    assert_exact(rec)
    # a resumed run re-runs an interrupted step: its status leaves the finished ones
    rec.update_step("s1", status="pending", reason="re-run")
    assert_exact(rec)
    rec.steps[0] = StepRecord("s0", "Step 0 again")
    assert_exact(rec)
    del rec.steps[2:]
    assert_exact(rec)


def test_a_step_record_cannot_be_changed_in_place() -> None:
    """The kept line is safe only because nothing can change a step behind it."""
    rec = record(2)
    line = rec.steps[0].json_line()
    with pytest.raises(AttributeError):
        rec.steps[0].status = "success"  # type: ignore[misc]
    waiting = ApprovalState(GateState.WAITING, decisions=(Decision(username="alice"),))
    changed = rec.update_step("s0", status="waiting", approval=waiting)
    assert rec.steps[0] is changed
    assert changed.json_line() != line
    assert json.loads(changed.json_line())["approval"] == waiting.to_json()
    assert_exact(rec)


def test_update_step_refuses_an_unknown_step() -> None:
    with pytest.raises(KeyError):
        record(2).update_step("nope", status="success")
