"""Environment policies end to end: real git repositories, the CLI in-process.

Each test builds the world of :mod:`helpers.policy_world` in ``tmp_path`` (a bare ``origin``,
the deploy workspace cloned from it, the protected trust branch ``approvals-trust`` with the
policy, and ``main`` holding only ``deploy.yml``), with CI variables removed, so that the ref
comes from git and the actor from ``RUNNER_ACTOR``.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers.policy_world import (
    PEOPLE,
    TRUST,
    Result,
    World,
    clean_environment,
    deploy_yml,
    git,
    make_world,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")
__all__ = ["clean_environment"]  # autouse: found by pytest here

#: main may deploy to production once staging has succeeded; SRE may break the glass
STRICT = """\
environments:
  staging: {}
  production:
    allowed-refs: [refs/heads/main]
    promotion:
      after: [staging]
    break-glass:
      teams: [sre]
"""

PERMISSIVE = "environments:\n  production: {}\n"


def freeze_around_now(reason: str = "Quarter close") -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(hours=1)).isoformat()
    end = (now + timedelta(hours=1)).isoformat()
    return f"    freeze:\n      - reason: {reason}\n        from: '{start}'\n        to: '{end}'\n"


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    return make_world(tmp_path, capsys, monkeypatch, STRICT)


HINT = "hint: `runner policy check deploy.yml --env production` explains the decision\n"
NOT_PROMOTED = (
    "policy rule `promotion`: the same workflow digest and commit have not succeeded in staging yet"
)


def refused(message: str) -> str:
    return f"error: {message}\n{HINT}"


# -- 1. the policy's approval comes first, whatever the workflow says --------------------------


def test_a_workflow_without_its_manual_step_still_stops_for_the_policy_approval(
    world: World,
) -> None:
    world.protect(
        "environments:\n"
        "  production:\n"
        "    approval:\n"
        "      teams: [release-managers]\n"
        "      timeout-minutes: 0.02\n"
    )
    world.commit({"deploy.yml": deploy_yml(manual=True)}, "with the gate")
    # the pull request that deletes the manual step
    commit = world.commit({"deploy.yml": deploy_yml(manual=False)}, "no more gate")

    result = world.run("production", run_id="r1")

    assert result.code == 4
    assert result.err == ""
    assert result.lines[:2] == ["Shop -> production  (run r1)", "▶ Policy approval for production"]
    assert "Who may decide: release-managers" in result.lines
    failed = [line for line in result.lines if line.startswith("✗ ")]
    assert len(failed) == 1
    assert failed[0].startswith("✗ Policy approval for production  ")
    assert failed[0].endswith(
        "(Manual intervention 'Policy approval for production' timed out after 1.2s without a "
        "decision)"
    )
    assert result.lines[-1].startswith("Run r1 timed out waiting for approval in ")
    assert world.deployed == []
    record = world.record("r1")
    assert (record["status"], record["exit_code"], record["commit"]) == ("timed-out", 4, commit)
    steps = [(s["id"], s["status"], s["attempts"]) for s in record["steps"]]
    assert steps == [
        ("policy-approval", "failure", 1),
        ("smoke", "skipped", 0),
        ("deploy", "skipped", 0),
    ]
    assert record["steps"][0]["approval"]["state"] == "timed-out"
    assert record["steps"][0]["approval"]["interruption"]["teams"] == ["release-managers"]
    assert record["policy"] == [
        {
            "rule": "approval",
            "ok": True,
            "message": "a manual intervention by release-managers comes first",
            "overridable": False,
            "overridden": False,
        }
    ]
    assert record["break_glass"] is None


def test_the_policy_approval_cannot_be_skipped(world: World) -> None:
    world.protect("environments:\n  production:\n    approval:\n      teams: [release-managers]\n")
    result = world.run("production", "--skip", "policy-approval", run_id="r1")
    # --skip is checked against the workflow, before the policy adds its step
    assert result.code == 2
    assert result.err == "error: --skip policy-approval: no step has this id or name\n"
    assert world.runs() == []


def test_a_workflow_step_named_like_the_policy_gate_does_not_collide(world: World) -> None:
    world.protect(
        "environments:\n  production:\n    approval:\n      teams: [release-managers]\n"
        "      timeout-minutes: 0.02\n"
    )
    text = deploy_yml().replace("  - id: smoke\n", "  - id: policy-approval\n")
    world.commit({"deploy.yml": text})
    result = world.run("production", run_id="r1")
    if result.code in (2, 5):  # refusing the clash is fine
        assert "policy-approval" in result.err
        return
    statuses = [(s["id"], s["status"]) for s in world.record("r1")["steps"]]
    assert statuses == [
        ("policy-approval", "failure"),
        ("policy-approval", "skipped"),
        ("deploy", "skipped"),
    ]


def test_staging_without_an_approval_rule_runs_without_one(world: World) -> None:
    world.protect("environments:\n  production:\n    approval:\n      teams: [release-managers]\n")
    result = world.run("staging", run_id="s1")
    assert result.code == 0, result.err
    assert [s["id"] for s in world.record("s1")["steps"]] == ["smoke", "deploy"]
    assert world.record("s1")["policy"] == []


# -- 2. allowed refs, freezes, promotion --------------------------------------------------------


def test_a_run_from_a_disallowed_branch_is_refused(world: World) -> None:
    git(world.repo, "checkout", "-q", "-b", "feature-x")
    assert world.run("staging", run_id="s1").code == 0  # staging takes any branch
    result = world.run("production", run_id="p1")
    assert result.code == 5
    assert result.out == ""
    assert result.err == refused(
        "policy rule `allowed-refs`: refs/heads/feature-x is not one of refs/heads/main"
    )
    assert world.runs() == ["s1"]
    assert world.deployed == ["deployed"]


def test_the_ref_from_the_ci_wins_over_git(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    assert world.run("staging", run_id="s1").code == 0
    monkeypatch.setenv("GITHUB_REF", "refs/pull/7/merge")
    result = world.run("production", run_id="p1")
    assert result.code == 5
    assert result.err == refused(
        "policy rule `allowed-refs`: refs/pull/7/merge is not one of refs/heads/main"
    )
    monkeypatch.delenv("GITHUB_REF")
    monkeypatch.setenv("CI_COMMIT_BRANCH", "main")
    assert world.run("production", run_id="p2").code == 0


def test_tags_deploy_by_pattern_and_a_detached_head_is_an_unknown_ref(world: World) -> None:
    world.protect(
        "environments:\n  production:\n    allowed-refs: [refs/heads/main, refs/tags/v*]\n"
    )
    git(world.repo, "tag", "v1.4.2")
    world.commit({"notes.txt": "after the tag\n"})
    git(world.repo, "checkout", "-q", "--detach", "v1.4.2")
    assert world.run("production", run_id="p1").code == 0
    git(world.repo, "checkout", "-q", "--detach", "main")
    result = world.run("production", run_id="p2")
    assert result.code == 5
    assert result.err == refused(
        "policy rule `allowed-refs`: the ref being deployed is unknown (no CI variables and no "
        "git branch or tag)"
    )


def test_a_run_inside_a_freeze_is_refused(world: World) -> None:
    world.protect("environments:\n  production:\n" + freeze_around_now())
    result = world.run("production", run_id="p1")
    assert result.code == 5
    assert result.err == refused("policy rule `freeze`: production is frozen now: Quarter close")
    assert world.runs() == []
    assert world.run("staging", run_id="s1").code == 0  # staging is not frozen


def test_a_freeze_that_is_over_does_not_refuse(world: World) -> None:
    world.protect(
        "environments:\n  production:\n    freeze:\n      - reason: Last year\n"
        "        from: '2020-12-20T00:00:00Z'\n        to: '2021-01-02T00:00:00Z'\n"
    )
    assert world.run("production", run_id="p1").code == 0


def test_promotion_needs_a_successful_staging_run_of_the_same_digest_and_commit(
    world: World,
) -> None:
    result = world.run("production", run_id="p1")
    assert result.code == 5
    assert result.err == refused(NOT_PROMOTED)

    # a failed staging run does not count
    (world.repo / "fail-here").write_text("")
    assert world.run("staging", run_id="s1").code == 1
    assert world.run("production", run_id="p2").err == refused(NOT_PROMOTED)
    (world.repo / "fail-here").unlink()

    # a staging run of an older commit and digest does not count
    assert world.run("staging", run_id="s2").code == 0
    world.commit({"deploy.yml": deploy_yml().replace("deployed >>", "deployed-again >>")})
    assert world.run("production", run_id="p3").err == refused(NOT_PROMOTED)

    # nor one of the same digest at another commit
    world.commit({"deploy.yml": deploy_yml()})
    world.commit({"README.md": "the same workflow, another commit\n"})
    assert world.run("production", run_id="p4").err == refused(NOT_PROMOTED)

    assert world.run("staging", run_id="s3").code == 0
    result = world.run("production", run_id="p5")
    assert result.code == 0, result.err
    assert result.lines[-1].startswith("Run p5 succeeded in ")
    record = world.record("p5")
    assert [(c["rule"], c["ok"]) for c in record["policy"]] == [
        ("allowed-refs", True),
        ("promotion", True),
    ]
    assert record["policy"][1]["message"] == "this digest and commit succeeded in staging"
    assert world.runs() == ["p5", "s1", "s2", "s3"]  # the refused runs left no record


def test_promotion_reads_the_state_dir_of_the_run(world: World, tmp_path: Path) -> None:
    assert world.run("staging", run_id="s1").code == 0
    elsewhere = tmp_path / "other-state"
    result = world.runner(
        "run", "deploy.yml", "--env", "production", "--state-dir", str(elsewhere), "--run-id", "p1"
    )
    assert result.code == 5
    assert result.err == refused(NOT_PROMOTED)


# -- 3. break-glass -----------------------------------------------------------------------------


class Webhook:
    """A chat webhook on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def frozen(world: World, webhook: Webhook) -> World:
    """Production frozen, SRE may break the glass, the workflow announces on the webhook."""
    world.protect(
        "environments:\n  production:\n" + freeze_around_now() + "    break-glass:\n"
        "      teams: [sre]\n"
    )
    world.commit({"deploy.yml": deploy_yml(notify=webhook.url)})
    return world


def test_break_glass_proceeds_past_a_freeze_and_is_recorded_announced_and_listed(
    frozen: World, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = frozen
    assert world.runner("policy", "review", "--state-dir", str(world.state)).out == (
        "no break-glass runs\n"
    )
    monkeypatch.setenv("RUNNER_ACTOR", "alice")
    result = world.run("production", "--break-glass", "prod is down", run_id="bg1")

    assert result.code == 0, result.err
    announcement = (
        "BREAK-GLASS: alice overrides freeze for Shop -> production (run bg1): prod is down"
    )
    assert announcement in result.lines
    assert result.lines.index(announcement) < result.lines.index("▶ Deploy")
    assert webhook.received == [{"text": announcement}]
    assert world.deployed == ["deployed"]
    record = world.record("bg1")
    glass = record["break_glass"]
    assert {k: glass[k] for k in ("by", "reason", "overrode")} == {
        "by": "alice",
        "reason": "prod is down",
        "overrode": ["freeze"],
    }
    assert datetime.fromisoformat(glass["at"]) <= datetime.now(UTC)
    assert record["policy"] == [
        {
            "rule": "freeze",
            "ok": False,
            "message": "production is frozen now: Quarter close",
            "overridable": True,
            "overridden": True,
        }
    ]
    assert record["started_by"]["username"] == "alice"

    review = world.runner("policy", "review", "--state-dir", str(world.state))
    assert review.code == 0
    assert review.out == (
        f"{record['started_at']}  run bg1  Shop -> production  success\n"
        "    by alice, overriding freeze: prod is down\n"
    )


def test_break_glass_by_a_ci_login_of_a_team_member(
    frozen: World, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_ACTOR", "alice-gh")
    result = frozen.run("production", "--break-glass", "prod is down", run_id="bg1")
    assert result.code == 0, result.err
    assert frozen.record("bg1")["break_glass"]["by"] == "alice-gh"
    assert len(webhook.received) == 1


@pytest.mark.parametrize("actor", ["bob", "mallory"])
def test_break_glass_by_someone_outside_the_team_is_refused(
    frozen: World, webhook: Webhook, monkeypatch: pytest.MonkeyPatch, actor: str
) -> None:
    monkeypatch.setenv("RUNNER_ACTOR", actor)
    result = frozen.run("production", "--break-glass", "prod is down", run_id="bg1")
    assert result.code == 5
    assert result.err == refused(
        "policy rule `freeze`: production is frozen now: Quarter close; policy rule "
        f"`break-glass`: {actor} is not in a break-glass team of this environment"
    )
    assert frozen.runs() == []
    assert webhook.received == []
    assert frozen.deployed == []
    review = frozen.runner("policy", "review", "--state-dir", str(frozen.state))
    assert review.out == "no break-glass runs\n"


def test_break_glass_with_a_blank_reason_is_no_break_glass(
    frozen: World, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_ACTOR", "alice")
    result = frozen.run("production", "--break-glass", "  ", run_id="bg1")
    assert result.code == 5
    assert result.err == refused("policy rule `freeze`: production is frozen now: Quarter close")
    assert webhook.received == []


def test_break_glass_does_not_override_allowed_refs(
    frozen: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen.protect(
        "environments:\n  production:\n    allowed-refs: [refs/heads/main]\n"
        + freeze_around_now()
        + "    break-glass:\n      teams: [sre]\n"
    )
    git(frozen.repo, "checkout", "-q", "-b", "hotfix")
    monkeypatch.setenv("RUNNER_ACTOR", "alice")
    result = frozen.run("production", "--break-glass", "prod is down", run_id="bg1")
    assert result.code == 5
    assert result.err == refused(
        "policy rule `allowed-refs`: refs/heads/hotfix is not one of refs/heads/main"
    )


# -- 4. the policy comes from the protected ref, never from the deployed commit -----------------


def test_a_permissive_policy_in_the_deployed_commit_has_no_effect(world: World) -> None:
    world.commit({"trust/policy.yml": PERMISSIVE, "trust/people.yml": PEOPLE}, "loosen the policy")
    result = world.run("production", run_id="p1")
    assert result.code == 5
    assert result.err == refused(NOT_PROMOTED)
    check = world.runner(
        "policy", "check", "deploy.yml", "--env", "production", "--state-dir", str(world.state)
    )
    assert check.code == 5


def deploy_from(world: World, ref: str) -> None:
    """Point ``approvals.trust.ref`` at ``ref`` and commit a permissive policy beside it."""
    trust = TRUST.replace("ref: refs/remotes/origin/approvals-trust", f"ref: '{ref}'")
    world.commit(
        {
            "deploy.yml": deploy_yml(trust),
            "trust/policy.yml": PERMISSIVE,
            "trust/people.yml": PEOPLE,
            "trust/allowed_signers": "",
        }
    )


TRUSTS_DEPLOYED = (
    "error: trust ref refs/heads/main is the commit being deployed; trust must come from a "
    "protected ref that the deployment cannot change\n"
)


def test_a_trust_ref_that_is_the_deployed_commit_is_refused(world: World) -> None:
    deploy_from(world, "refs/heads/main")
    result = world.run("production", run_id="p1")
    assert result.code != 0
    assert result.err == TRUSTS_DEPLOYED
    assert world.runs() == []
    assert world.deployed == []
    plan = world.runner("plan", "deploy.yml", "--env", "production")
    assert (plan.code, plan.err) == (result.code, TRUSTS_DEPLOYED)
    check = world.runner("policy", "check", "deploy.yml", "--env", "production")
    assert (check.code, check.err) == (result.code, TRUSTS_DEPLOYED)


def test_a_trust_ref_that_is_the_deployed_commit_exits_5(world: World) -> None:
    deploy_from(world, "refs/heads/main")
    assert world.run("production", run_id="p1").code == 5


@pytest.mark.parametrize("ref", ["HEAD", "HEAD^{tree}", "refs/heads/main^{tree}"])
def test_a_trust_ref_not_named_in_full_is_refused_at_load(world: World, ref: str) -> None:
    deploy_from(world, ref)
    result = world.run("production", run_id="p1")
    assert result.code == 2, result.err
    assert "`ref` must be a full ref name, `refs/remotes/<remote>/<branch>`" in result.err
    assert world.deployed == []


def test_trust_from_the_working_tree_needs_insecure_local_trust(world: World) -> None:
    trust = TRUST.replace("ref: refs/remotes/origin/approvals-trust, ", "")
    world.commit(
        {
            "deploy.yml": deploy_yml(trust),
            "trust/policy.yml": PERMISSIVE,
            "trust/people.yml": PEOPLE,
        }
    )
    result = world.run("production", run_id="p1")
    assert result.code == 5
    assert result.err == (
        "error: the policy file would be read from the working tree, which the deployment "
        "controls: set `approvals.trust.ref` to a protected branch or tag\n"
        "hint: for a local try only, pass --insecure-local-trust\n"
    )
    assert world.runs() == []
    plan = world.runner("plan", "deploy.yml", "--env", "production")
    assert (plan.code, plan.err) == (5, result.err)
    # a local try, with the working tree's (permissive) policy
    assert world.run("production", "--insecure-local-trust", run_id="p2").code == 0


def test_a_dry_run_keeps_insecure_local_trust(world: World) -> None:
    """``runner run --dry-run`` is ``runner plan``, flags included: it once dropped
    ``--insecure-local-trust``, so a local try's dry run was refused where its run was not."""
    trust = TRUST.replace("ref: refs/remotes/origin/approvals-trust, ", "")
    world.commit(
        {
            "deploy.yml": deploy_yml(trust),
            "trust/policy.yml": PERMISSIVE,
            "trust/people.yml": PEOPLE,
        }
    )
    args = ("deploy.yml", "--env", "production")
    refused = world.runner("run", *args, "--dry-run")
    assert refused.code == 5, refused.err
    assert refused == world.runner("plan", *args)
    dry = world.runner("run", *args, "--dry-run", "--insecure-local-trust")
    assert (dry.code, dry.err) == (0, ""), dry.err
    assert dry == world.runner("plan", *args, "--insecure-local-trust")
    assert "deploy" in dry.out
    assert world.runs() == [] and world.deployed == []


def test_an_invalid_policy_on_the_trust_ref_is_shown_with_its_position(world: World) -> None:
    world.protect(
        "environments:\n  production:\n    freeze:\n      - reason: no window\n"
        "        days: [fri]\n"
    )
    result = world.runner("policy", "check", "deploy.yml", "--env", "production")
    assert result.code == 2
    assert result.err == (
        "refs/remotes/origin/approvals-trust:trust/policy.yml:4:9: a freeze window needs `from` "
        "and `to`, or weekly `days`, `start` and `end` [schema]\n"
    )
    assert world.run("production", run_id="p1").code == 2
    assert world.runs() == []


# -- 5. policy check and plan explain the decision ----------------------------------------------


def test_policy_check_explains_rule_by_rule(world: World) -> None:
    def check(*more: str) -> Result:
        return world.runner(
            "policy", "check", "deploy.yml", "--env", "production",
            "--state-dir", str(world.state), *more,
        )  # fmt: skip

    result = check()
    assert (result.code, result.err) == (5, "")
    assert result.out == (
        "policy for production:\n"
        "  ok         allowed-refs: refs/heads/main is one of refs/heads/main\n"
        "  FAIL       promotion: the same workflow digest and commit have not succeeded in "
        "staging yet\n"
        "refused\n"
    )
    assert world.run("staging", run_id="s1").code == 0
    result = check()
    assert (result.code, result.err) == (0, "")
    assert result.out == (
        "policy for production:\n"
        "  ok         allowed-refs: refs/heads/main is one of refs/heads/main\n"
        "  ok         promotion: this digest and commit succeeded in staging\n"
        "allowed\n"
    )
    assert world.runs() == ["s1"]  # checking runs nothing


def test_policy_check_with_break_glass(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.protect(
        "environments:\n  production:\n" + freeze_around_now() + "    break-glass:\n"
        "      teams: [sre]\n"
    )
    argv = ("policy", "check", "deploy.yml", "--env", "production", "--break-glass", "outage")
    monkeypatch.setenv("RUNNER_ACTOR", "alice")
    result = world.runner(*argv)
    assert result.code == 0
    assert result.out == (
        "policy for production:\n"
        "  OVERRIDDEN freeze: production is frozen now: Quarter close\n"
        "  break-glass by alice: outage (overrides freeze)\n"
        "allowed\n"
    )
    monkeypatch.setenv("RUNNER_ACTOR", "bob")
    result = world.runner(*argv)
    assert result.code == 5
    assert result.out == (
        "policy for production:\n"
        "  FAIL       freeze: production is frozen now: Quarter close\n"
        "  FAIL       break-glass: bob is not in a break-glass team of this environment\n"
        "refused\n"
    )
    assert world.runs() == []  # a check is not a run: nothing recorded, nothing to review


def test_policy_check_of_an_environment_without_rules(world: World) -> None:
    result = world.runner("policy", "check", "deploy.yml", "--env", "staging")
    assert (result.code, result.out, result.err) == (0, "no policy applies to staging\n", "")


def test_plan_shows_the_policy(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_STATE_DIR", str(world.state))
    result = world.runner("plan", "deploy.yml", "--env", "production")
    # a policy that refuses: the plan says so and exits 5, as the run would
    assert result.code == 5
    assert result.lines[-1] == "Outcome: refused by the environment policy (a run would exit 5)"
    assert "Outcome if so: success" not in result.out
    assert result.lines[:4] == [
        "Plan: Shop -> production  (deploy.yml)",
        "Policy for production: REFUSED",
        "  ok         allowed-refs: refs/heads/main is one of refs/heads/main",
        "  FAIL       promotion: the same workflow digest and commit have not succeeded in "
        "staging yet",
    ]
    result = world.runner("plan", "deploy.yml", "--env", "production", "--format", "json")
    assert result.code == 5
    assert json.loads(result.out)["outcome"] == "refused by the environment policy"
    assert json.loads(result.out)["policy"] == {
        "allowed": False,
        "checks": [
            {
                "rule": "allowed-refs",
                "ok": True,
                "message": "refs/heads/main is one of refs/heads/main",
                "overridden": False,
            },
            {
                "rule": "promotion",
                "ok": False,
                "message": "the same workflow digest and commit have not succeeded in staging yet",
                "overridden": False,
            },
        ],
    }
    assert world.run("staging", run_id="s1").code == 0
    result = world.runner("plan", "deploy.yml", "--env", "production", "--format", "json")
    plan = json.loads(result.out)
    assert plan["policy"]["allowed"] is True
    assert [c["ok"] for c in plan["policy"]["checks"]] == [True, True]


def test_plan_shows_the_policy_approval_as_the_first_step(world: World) -> None:
    world.protect("environments:\n  production:\n    approval:\n      teams: [release-managers]\n")
    result = world.runner("plan", "deploy.yml", "--env", "production", "--format", "json")
    assert result.code == 0, result.out + result.err
    plan = json.loads(result.out)
    assert [s["id"] for s in plan["steps"]] == ["policy-approval", "smoke", "deploy"]
    assert plan["policy"] == {
        "allowed": True,
        "checks": [
            {
                "rule": "approval",
                "ok": True,
                "message": "a manual intervention by release-managers comes first",
                "overridden": False,
            }
        ],
    }
    text = world.runner("plan", "deploy.yml", "--env", "production")
    assert "Policy for production: allowed" in text.lines
    assert "  ok         approval: a manual intervention by release-managers comes first" in (
        text.lines
    )


def test_plan_for_an_environment_without_rules_shows_no_policy(world: World) -> None:
    result = world.runner("plan", "deploy.yml", "--env", "staging", "--format", "json")
    assert result.code == 0
    assert json.loads(result.out)["policy"] == {"allowed": True, "checks": []}
    text = world.runner("plan", "deploy.yml", "--env", "staging")
    assert not any(line.startswith("Policy for") for line in text.lines)
