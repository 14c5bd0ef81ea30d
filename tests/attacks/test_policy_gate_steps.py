"""The anchored policy's approval comes "before any step runs" (docs/policy.md): the deployed
workflow cannot delete it (tests/attacks/test_trust_anchor.py), but its steps' own keys got
past it. A deploy step with `if: always()`, `failure()` or an Octopus variable condition ran
once the policy's gate timed out or was aborted, nobody having approved; and a first step with
`start: with-previous` started beside the gate and deployed while it waited. Now no step starts
beside the policy's gate and none runs after it unless it passed, and `runner plan` says so.
The world is ``helpers.policy_world``'s (a bare origin, the protected trust branch, ``main``
holding ``deploy.yml``); the gate times out at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.policy_world import World, clean_environment, deploy_yml, make_world

__all__ = ["clean_environment"]  # autouse: found by pytest here

TRUST_REF = "refs/remotes/origin/approvals-trust"

#: production needs release-managers' approval first (it times out at once in these tests)
GATED = (
    "environments:\n"
    "  staging: {}\n"
    "  production:\n"
    "    approval:\n"
    "      teams: [release-managers]\n"
    "      timeout-minutes: 0.02\n"
)

DEPLOY = "    run: echo deployed >> deployed.log\n"


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    monkeypatch.setenv("RUNNER_TRUST_REF", TRUST_REF)
    monkeypatch.setenv("RUNNER_TRUST_POLICY", "trust/policy.yml")
    monkeypatch.setenv("RUNNER_TRUST_PEOPLE", "trust/people.yml")
    return make_world(tmp_path, capsys, monkeypatch, GATED)


CONDITIONS = {
    "always()": "always()",
    "failure()": "failure()",
    "a status test": "cancelled() || !cancelled()",
    "an Octopus variable condition": "'#{if Octopus.Environment.Name}true#{/if}'",
}


@pytest.mark.parametrize("condition", CONDITIONS.values(), ids=list(CONDITIONS))
def test_a_step_that_runs_whatever_happened_does_not_run_past_the_policys_gate(
    world: World, condition: str
) -> None:
    text = deploy_yml().replace(DEPLOY, f"    if: {condition}\n{DEPLOY}")
    world.commit({"deploy.yml": text}, "deploy whatever happens")
    result = world.run("production", run_id="r1")
    assert result.code == 4, result.out + result.err  # the policy's gate timed out
    assert world.deployed == []
    assert (
        "- Deploy: skipped (`Policy approval for production` did not pass, and no step runs "
        "without it)" in result.out
    )
    assert world.record("r1")["steps"][-1]["status"] == "skipped"
    planned = world.runner("plan", "deploy.yml", "--env", "production", "--assume", "abort")
    assert "did not pass, and no step runs without it" in planned.out, planned.out


def test_a_first_step_does_not_start_beside_the_policys_gate(world: World) -> None:
    text = deploy_yml().replace(
        "  - id: smoke\n    name: Smoke test\n    run: test ! -e fail-here\n",
        f"  - id: smoke\n    name: Smoke test\n    start: with-previous\n{DEPLOY}",
    )
    world.commit({"deploy.yml": text}, "deploy beside the gate")
    result = world.run("production", run_id="r1")
    assert result.code == 4, result.out + result.err
    assert world.deployed == []
    assert [s["status"] for s in world.record("r1")["steps"]] == ["failure", "skipped", "skipped"]
