"""Exit codes tell the outcome, whatever raised it (issue 20).

A CI job branches on the code: 4 must mean "nobody approved in time", never "the approval server
could not be reached" (it did, through ``ApprovalError.exit_code``), or a job that retries
unreachable servers would instead page the approvers, and one that waits out timeouts would
retry a server that is down. Each outcome here through the ``runner`` command, with real git,
ssh-keygen signatures and a closed loopback port:

  invalid workflow 2, aborted 3, timed out 4, approval source failed or unreachable 6.

Most start the real command; the two that wait (a step's timeout, an unreachable server's
retries) run it in this process on a fake clock, where the waiting takes no real time.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.approval_world import RUNNER, World, clean_env

GATED = """\
name: Seed
environments: [production]
approvals:
  trust: {{ref: {ref}, people: trust/people.yml, allowed-signers: trust/allowed_signers, \
revoked-keys: trust/revoked_keys{policy}}}
  file: {{remote: origin, branch: approvals, path: approvals, poll-seconds: 1}}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
      timeout-minutes: 0.02
  - id: after
    name: After
    run: echo "deployed"
"""

SERVER = """\
name: Seed
environments: [production]
approvals:
  trust: {{people: trust/people.yml}}
  server: {{url: "http://127.0.0.1:{port}", token-env: RUNNER_SERVER_TOKEN}}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
      timeout-minutes: 0.02
  - id: after
    name: After
    run: echo "deployed"
"""


def gated(world: World, policy: str = "") -> str:
    """Commit the gated workflow; return its digest."""
    path = world.commit_workflow(GATED.format(ref=world.TRUST_REF, policy=policy))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def output(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def test_an_invalid_workflow_exits_2(world: World) -> None:
    world.commit_workflow("name: Broken\nsteps:\n  - id: a\n    nope: 1\n")
    done = world.run("--run-id", "i1")
    assert done.returncode == 2, output(done)
    assert "deployed" not in output(done)


def test_an_abort_exits_3(world: World) -> None:
    digest = gated(world)
    request = world.request(run_id="a1", digest=digest, commit=world.head)
    bob = world.keys.bob
    world.push_signed(
        world.body(request, bob, decision="abort", notes="not today").encode(), bob, run_id="a1"
    )
    done = world.run("--run-id", "a1")
    assert done.returncode == 3, output(done)
    assert "deployed" not in done.stdout
    assert world.record("a1")["exit_code"] == 3


def test_nobody_deciding_in_time_exits_4(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    gated(world)
    done = world.run_here(monkeypatch, "--run-id", "t1")
    assert done.returncode == 4, output(done)
    assert "deployed" not in done.stdout
    assert world.record("t1")["exit_code"] == 4


def test_an_unreachable_approval_server_exits_6_not_4(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run takes the deployment lock on the server before its first step: the server
    cannot be reached, nothing runs, and nothing timed out."""
    (world.repo / "trust").mkdir()
    (world.repo / "trust" / "people.yml").write_text(world.PEOPLE_YML, encoding="utf-8")
    world.commit_workflow(SERVER.format(port=closed_port()))
    done = world.run_here(
        monkeypatch, "--run-id", "u1", env={"RUNNER_SERVER_TOKEN": "rnr_tok_unused"}
    )
    assert done.returncode == 6, output(done)
    assert "error: the approval server did not answer properly (ConnectionError)" in done.stderr
    assert "deployed" not in done.stdout
    assert "rnr_tok_unused" not in output(done)
    # and the run is not left "running" forever: it failed before its first step
    record = world.record("u1")
    assert (record["status"], record["exit_code"]) == ("failure", 6)
    assert "did not answer" in record["error"]["message"]


def test_a_trust_file_the_trust_ref_lacks_exits_6_not_4(world: World) -> None:
    """The policy is read from the trust ref before anything runs; a ref without it is an
    approval source that failed, not an approval that timed out."""
    gated(world, policy=", policy: trust/policy.yml")
    done = world.run("--run-id", "p1")
    assert done.returncode == 6, output(done)
    assert "cannot read trust file trust/policy.yml" in done.stderr
    assert "deployed" not in done.stdout


def test_an_approver_command_against_an_unreachable_server_exits_6(tmp_path: Path) -> None:
    """The same outcome through another command: the same code."""
    env: dict[str, Any] = clean_env(RUNNER_APPROVER_TOKEN="rnr_tok_approver")
    port = closed_port()
    done = subprocess.run(
        [RUNNER, "approval", "list", "--server", f"http://ops:hunter2pw@127.0.0.1:{port}/"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 6, output(done)
    assert done.stderr.startswith("error: the approval server did not answer properly")
    assert "rnr_tok_approver" not in output(done)
    # where it was asked, so that a newcomer can tell a typo from a server that is down; a
    # password written into the URL is not shown
    assert f"hint: check that the approval server runs at http://127.0.0.1:{port} " in done.stderr
    assert "hunter2pw" not in output(done)
