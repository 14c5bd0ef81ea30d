"""The policy's approval is a gate too: a rewritten record does not remove or pass it (#17).

The policy on the protected trust ref puts ``policy-approval`` before the first step. A resume
must put it back from the pinned policy, whatever the record holds, and re-verify it like any
gate. Real git, the CLI in-process (the world of ``helpers.policy_world``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.policy_world import World, clean_environment, make_world

__all__ = ["clean_environment"]  # autouse: found by pytest here

APPROVAL = "environments:\n  production:\n    approval:\n      teams: [release-managers]\n"


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    # a real clock: the runs here detach at the gate instead of waiting for its timeout
    return make_world(tmp_path, capsys, monkeypatch, APPROVAL, fake_clock=False)


def detached_at_the_policy_gate(world: Any) -> None:
    result = world.run("production", "--detach-on-wait", run_id="r1")
    assert result.code == 75, result.out + result.err
    assert world.record("r1")["steps"][0]["status"] == "waiting"


def tamper(world: Any, change: Callable[[dict[str, Any]], None]) -> None:
    path = world.state / "runs" / "r1" / "record.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    change(record)
    path.write_text(json.dumps(record), encoding="utf-8")


def resume(world: Any) -> Any:
    return world.runner("resume", "r1", "--state-dir", str(world.state), "--detach-on-wait")


def test_a_record_without_the_policy_gate_is_refused(world: Any) -> None:
    detached_at_the_policy_gate(world)
    tamper(world, lambda r: r.update(steps=[s for s in r["steps"] if s["id"] != "policy-approval"]))
    result = resume(world)
    assert world.deployed == []
    assert result.code == 5, result.out + result.err
    assert "the workflow (with its policy) has policy-approval, smoke, deploy" in result.err


def test_a_policy_gate_marked_passed_is_refused(world: Any) -> None:
    detached_at_the_policy_gate(world)

    def passed(record: dict[str, Any]) -> None:
        gate = record["steps"][0]
        gate.update(status="success", outcome="success", conclusion="success")
        gate["approval"]["state"] = "approved"
        gate["approval"]["decisions"] = []

    tamper(world, passed)
    result = resume(world)
    assert world.deployed == []
    assert result.code == 5, result.out + result.err
    assert "gate `policy-approval` passed, but holds no decision to verify" in result.err
