"""The deployer chooses the trust (issue #17): ``approvals.trust`` is written in the deployed
workflow, so a pull request can (a) point ``trust.ref`` at a branch it pushed, with a policy (or
people, keys) of its own, (b) drop ``trust.policy`` or the whole ``trust`` block, and with it the
policy's mandatory approval, or (c) delete its manual step and its approvals altogether.

Each of these deploys unless the environment anchors trust outside the deployed commit
(``RUNNER_TRUST_REF``, ``RUNNER_TRUST_POLICY``; ``runner/anchor.py``). The world is
``helpers.policy_world``'s, as in ``tests/policy/test_policy_e2e.py``: a bare origin, the
protected ``approvals-trust`` branch (people, policy), and ``main`` holding ``deploy.yml``; the
CLI runs in this process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from helpers.policy_world import World, clean_environment, deploy_yml, git, make_world

__all__ = ["clean_environment"]  # autouse: found by pytest here

TRUST_REF = "refs/remotes/origin/approvals-trust"
EVIL_REF = "refs/remotes/origin/evil-trust"

#: production needs release-managers' approval first (it times out at once in these tests)
GATED = (
    "environments:\n"
    "  staging: {}\n"
    "  production:\n"
    "    approval:\n"
    "      teams: [release-managers]\n"
    "      timeout-minutes: 0.02\n"
)

#: the honest trust, and what each attack writes instead
HONEST = (
    "{ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, "
    "allowed-signers: trust/allowed_signers, policy: trust/policy.yml}"
)
OWN_REF = HONEST.replace(TRUST_REF, EVIL_REF)
NO_POLICY = "{ref: refs/remotes/origin/approvals-trust, people: trust/people.yml}"

BARE = (
    "name: Shop\n"
    "environments: [staging, production]\n"
    "steps:\n"
    "  - id: deploy\n"
    "    name: Deploy\n"
    "    run: echo deployed >> deployed.log\n"
)


@pytest.fixture
def world(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    return make_world(tmp_path, capsys, monkeypatch, GATED)


def anchor(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the CI's administrator sets, outside the repository."""
    monkeypatch.setenv("RUNNER_TRUST_REF", TRUST_REF)
    monkeypatch.setenv("RUNNER_TRUST_POLICY", "trust/policy.yml")
    monkeypatch.setenv("RUNNER_TRUST_PEOPLE", "trust/people.yml")


def push_own_trust(world: World) -> None:
    """(a) The deployer pushes a branch with a policy that demands nothing."""
    git(world.repo, "checkout", "-q", "-b", "evil-trust", TRUST_REF)
    world.commit({"trust/policy.yml": "environments:\n  production: {}\n"}, "my trust")
    git(world.repo, "checkout", "-q", "main")


def attack(world: World, which: str) -> None:
    if which == "a-own-trust-ref":
        push_own_trust(world)
        world.commit({"deploy.yml": deploy_yml(OWN_REF)}, "use my trust")
    elif which == "b-drop-policy":
        world.commit({"deploy.yml": deploy_yml(NO_POLICY)}, "no policy")
    elif which == "b-drop-trust":
        text = deploy_yml().replace(f"  trust: {HONEST}\n", "")
        assert "trust:" not in text
        world.commit({"deploy.yml": text}, "no trust")
    else:  # c: no manual step, no approvals block at all
        world.commit({"deploy.yml": BARE}, "no gate")


ATTACKS = ["a-own-trust-ref", "b-drop-policy", "b-drop-trust", "c-no-manual-step"]


@pytest.mark.parametrize("which", ATTACKS)
def test_without_an_anchor_each_attack_deploys(world: World, which: str) -> None:
    """The gap itself: what the anchor closes (passes before and after the fix)."""
    attack(world, which)
    result = world.run("production", run_id="r1")
    assert result.code == 0, result.out + result.err
    assert world.deployed == ["deployed"]


def test_a_trust_ref_of_the_deployers_choosing_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    attack(world, "a-own-trust-ref")
    anchor(monkeypatch)
    result = world.run("production", run_id="r1")
    assert result.code == 5, result.out + result.err
    assert result.err.startswith(
        "error: deploy.yml:4:16: approvals.trust.ref names refs/remotes/origin/evil-trust, but "
        "this environment's trust anchor is refs/remotes/origin/approvals-trust: the deployed "
        "workflow cannot choose whose approvals count\n"
        "hint: trust is set by RUNNER_TRUST_REF"
    ), result.err
    assert world.deployed == []
    assert world.runs() == []
    # plan and policy check refuse it the same way, before anything runs
    planned = world.runner("plan", "deploy.yml", "--env", "production")
    checked = world.runner("policy", "check", "deploy.yml", "--env", "production")
    for done in (planned, checked):
        assert done.code == 5
        assert "cannot choose whose approvals count" in done.err


@pytest.mark.parametrize("which", ["b-drop-policy", "b-drop-trust", "c-no-manual-step"])
def test_dropping_the_policy_or_the_gate_does_not_remove_the_policy_approval(
    world: World, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    attack(world, which)
    anchor(monkeypatch)
    result = world.run("production", run_id="r1")
    # the policy's gate is there: it times out (4), or, when the attack also dropped the
    # allowed signers, no source can ask for it and nothing runs (1)
    assert result.code in (1, 4), result.out + result.err
    assert "Policy approval for production" in result.out + result.err
    assert world.deployed == []
    checked = world.runner("policy", "check", "deploy.yml", "--env", "production")
    assert checked.code == 0
    assert "a manual intervention by release-managers comes first" in checked.out


def test_a_policy_path_other_than_the_anchors_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # another file on the protected ref (e.g. a laxer policy kept for another environment)
    other = HONEST.replace("policy: trust/policy.yml", "policy: trust/people.yml")
    world.commit({"deploy.yml": deploy_yml(other)}, "other policy")
    anchor(monkeypatch)
    result = world.run("production", run_id="r1")
    assert result.code == 5
    assert "approvals.trust.policy names trust/people.yml, but this environment's policy is " in (
        result.err
    )
    assert world.runs() == []


def test_the_honest_workflow_runs_with_the_anchor(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchor(monkeypatch)
    monkeypatch.setenv("CI", "true")
    staging = world.run("staging", run_id="r1")
    assert staging.code == 0, staging.out + staging.err
    assert staging.err == ""  # anchored: no warning
    assert world.deployed == ["deployed"]
    # production still stops at the policy's approval
    production = world.run("production", run_id="r2")
    assert production.code == 4
    assert world.deployed == ["deployed"]
    # a workflow that leaves the ref and the policy out inherits them
    world.commit({"deploy.yml": deploy_yml("{people: trust/people.yml}")}, "inherit")
    assert world.run("staging", run_id="r3").code == 0
    assert world.deployed == ["deployed", "deployed"]
    planned = world.runner("plan", "deploy.yml", "--env", "production")
    # 1: the plan says the policy's gate could not be decided here (no allowed signers named)
    assert planned.code in (0, 1), planned.out + planned.err
    assert planned.lines[1] == (
        "Trust anchor: refs/remotes/origin/approvals-trust (from RUNNER_TRUST_REF), "
        "policy trust/policy.yml"
    )
    as_json = world.runner("plan", "deploy.yml", "--env", "production", "--format", "json")
    assert json.loads(as_json.out)["trust_anchor"].startswith(TRUST_REF)


def test_a_malformed_anchor_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_TRUST_REF", "origin/approvals-trust")
    result = world.run("staging", run_id="r1")
    assert result.code == 5
    assert result.err.startswith("error: RUNNER_TRUST_REF: trust ref 'origin/approvals-trust' ")
    assert world.runs() == []


@pytest.mark.parametrize(
    ("variables", "prefix"),
    [
        ({"CI": "true", "GITLAB_CI": "true"}, "warning: trust is chosen by the deployed workflow"),
        (
            {"CI": "true", "GITHUB_ACTIONS": "true"},
            "::warning title=runner: trust not anchored::trust is chosen by the deployed workflow",
        ),
    ],
)
def test_ci_without_an_anchor_warns_once(
    world: World, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], prefix: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    result = world.run("staging", run_id="r1")
    assert result.code == 0
    warnings = result.err.splitlines()
    assert len(warnings) == 1, result.err
    assert warnings[0].startswith(prefix)
    assert "Set RUNNER_TRUST_REF" in warnings[0]


def test_no_warning_outside_ci_or_without_trust_from_git(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert world.run("staging", run_id="r1").err == ""
    world.commit({"deploy.yml": BARE}, "no approvals")
    monkeypatch.setenv("CI", "true")
    assert world.run("staging", run_id="r2").err == ""


def test_resume_reads_trust_only_from_the_anchors_history(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow that inherits the anchored ref: a record pinning another commit is refused."""
    push_own_trust(world)
    evil = git(world.repo, "rev-parse", EVIL_REF)
    inherit = "{people: trust/people.yml, allowed-signers: trust/allowed_signers}"
    world.commit({"deploy.yml": deploy_yml(inherit)}, "inherit the anchor")
    anchor(monkeypatch)
    waiting = world.run("production", "--detach-on-wait", run_id="r1")
    assert waiting.code == 75, waiting.out + waiting.err
    record_path = world.state / "runs" / "r1" / "record.json"
    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record["trust_commit"] == git(world.repo, "rev-parse", TRUST_REF)
    # the record now names the deployer's trust commit (an edited or foreign record)
    record["trust_commit"] = evil
    record_path.write_text(json.dumps(record), encoding="utf-8")
    resumed = world.runner("resume", "r1", "--state-dir", str(world.state))
    assert resumed.code == 5, resumed.out + resumed.err
    assert (
        f"the trust commit its record pins ({evil[:12]}) is not reachable from the trust ref "
        "refs/remotes/origin/approvals-trust"
    ) in resumed.err
    assert world.deployed == []


def test_a_run_started_with_other_trust_is_not_resumed_under_the_anchor(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started before the anchor was set (or on a host without it) with the deployer's trust
    ref, the run is refused when resumed where the anchor is set."""
    push_own_trust(world)
    world.commit({"deploy.yml": deploy_yml(OWN_REF, manual=True)}, "my trust, a gate")
    waiting = world.run("production", "--detach-on-wait", run_id="r1")
    assert waiting.code == 75, waiting.out + waiting.err
    anchor(monkeypatch)
    resumed = world.runner("resume", "r1", "--state-dir", str(world.state))
    assert resumed.code == 5, resumed.out + resumed.err
    assert "cannot choose whose approvals count" in resumed.err
    assert world.deployed == []


def test_an_anchored_ref_without_the_policy_file_has_no_policy(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the anchored ref's maintainers decide whether a policy exists: no file there (here
    the default policy.yml), no policy; a workflow naming another path is refused."""
    monkeypatch.setenv("RUNNER_TRUST_REF", TRUST_REF)
    named = world.run("production", run_id="r1")
    assert named.code == 5
    assert "approvals.trust.policy names trust/policy.yml, but this environment's policy is " in (
        named.err
    )
    world.commit({"deploy.yml": deploy_yml(NO_POLICY)}, "no policy named")
    result = world.run("production", run_id="r2")
    assert result.code == 0, result.out + result.err
    assert world.deployed == ["deployed"]


# -- the approval server, chosen by the deployed workflow ---------------------------------------


class Listening(BaseHTTPRequestHandler):
    """The deployer's own approval server: it keeps what it is sent (the runner token)."""

    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        type(self).seen.append(self.headers.get("Authorization", ""))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def deployers_server() -> Iterator[str]:
    Listening.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Listening)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def with_server(url: str) -> str:
    text = deploy_yml(manual=True)
    line = "  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}\n"
    assert line in text
    return text.replace(line, f"{line}  server: {{url: '{url}'}}\n")


def test_a_workflow_naming_its_own_server_gets_the_runner_token_without_the_anchor(
    world: World, monkeypatch: pytest.MonkeyPatch, deployers_server: str
) -> None:
    """The gap: the deployed workflow chooses the server that decides and gets the token."""
    world.commit({"deploy.yml": with_server(deployers_server)}, "my server")
    monkeypatch.setenv("RUNNER_SERVER_TOKEN", "the-ci-runner-token")
    world.run("production", "--detach-on-wait", run_id="r1")
    assert "Bearer the-ci-runner-token" in Listening.seen


def test_the_anchored_server_refuses_a_workflow_naming_another_before_anything_is_sent(
    world: World, monkeypatch: pytest.MonkeyPatch, deployers_server: str
) -> None:
    world.commit({"deploy.yml": with_server(deployers_server)}, "my server")
    monkeypatch.setenv("RUNNER_SERVER_TOKEN", "the-ci-runner-token")
    monkeypatch.setenv("RUNNER_SERVER_URL", "https://approvals.example.test/")
    anchor(monkeypatch)
    result = world.run("production", "--detach-on-wait", run_id="r1")
    assert result.code == 5, result.err
    assert (
        f"approvals.server.url names {deployers_server}, but this environment's approval "
        "server is https://approvals.example.test/ (set by RUNNER_SERVER_URL)"
    ) in result.err
    assert Listening.seen == []
    assert world.runs() == [] and world.deployed == []


def test_the_anchored_server_accepts_the_same_url_and_ci_warns_without_it(
    world: World, monkeypatch: pytest.MonkeyPatch, deployers_server: str
) -> None:
    world.commit({"deploy.yml": with_server(deployers_server)}, "the server")
    anchor(monkeypatch)
    monkeypatch.setenv("CI", "true")
    unanchored = world.run("staging", run_id="r1")
    assert unanchored.code == 0, unanchored.err
    assert "the approval server is chosen by the deployed workflow" in unanchored.err
    assert "Set RUNNER_SERVER_URL" in unanchored.err
    monkeypatch.setenv("RUNNER_SERVER_URL", deployers_server + "/")
    anchored = world.run("staging", run_id="r2")
    assert anchored.code == 0, anchored.err
    assert anchored.err == ""
