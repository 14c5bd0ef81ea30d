"""End to end, as in the seed deployment: a run waits at a manual step in one process; an
approver, in a clone of their own, signs with ``runner approval new --request``, commits and
pushes to a local bare remote; the run proceeds, and its outputs and record name the approver.

Everything is real: ``git``, ``ssh-keygen``, the installed ``runner`` command. Waits are bounded
polls, never sleeps standing in for assertions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.git_world import clean_env
from helpers.people import ALICE_DESK_SIGNING
from helpers.waiting import wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("ssh-keygen") is None,
    reason="git and ssh-keygen (OpenSSH) are needed",
)

ROOT = Path(__file__).resolve().parents[2]
RUNNER = str(Path(sys.executable).with_name("runner"))
WAIT_SECONDS = 30.0


DEPLOY = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
steps:
  - id: before
    name: Before
    run: echo "before the gate"
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
  - id: after
    name: After
    run: echo "approved by $WHO, $NOTES"
    env:
      WHO: "#{Octopus.Action[Approve release].Output.Manual.ResponsibleUser.DisplayName}"
      NOTES: ${{ steps.gate.outputs.notes }}
"""


#: the runner's and git's environment: no CI variables, output unbuffered
ENV = clean_env(PYTHONUNBUFFERED="1")


def sh(cwd: Path, *argv: str) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stdout}{done.stderr}"
    return done.stdout


def wait_until(condition: Callable[[], bool], what: str, process: subprocess.Popen[Any]) -> None:
    """Poll ``condition`` until true; fail if the run exits first or after WAIT_SECONDS."""
    wait_for(condition, WAIT_SECONDS, what, process=process)


def test_signed_file_approval_end_to_end(tmp_path: Path) -> None:
    origin, repo, approver = tmp_path / "origin.git", tmp_path / "repo", tmp_path / "approver"
    key = tmp_path / "alice"
    sh(tmp_path, "git", "init", "-q", "--bare", "-b", "main", str(origin))
    sh(tmp_path, "git", "clone", "-q", str(origin), str(repo))
    sh(tmp_path, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key), "-C", "alice")
    public = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    fingerprint = sh(tmp_path, "ssh-keygen", "-l", "-f", str(key.with_suffix(".pub"))).split()[1]

    # the protected trust branch
    (repo / "trust").mkdir()
    (repo / "trust" / "people.yml").write_text(ALICE_DESK_SIGNING)
    (repo / "trust" / "allowed_signers").write_text(
        f'alice@example.com namespaces="runner-approval" {public}\n'
    )
    sh(repo, "git", "checkout", "-q", "-b", "approvals-trust")
    sh(repo, "git", "add", "trust")
    sh(repo, "git", "commit", "-qm", "trust")
    sh(repo, "git", "push", "-q", "origin", "approvals-trust")

    # what is deployed
    sh(repo, "git", "checkout", "-q", "--orphan", "main")
    sh(repo, "git", "rm", "-rqf", ".")
    shutil.copytree(ROOT / "actions", repo / "actions")
    (repo / "deploy.yml").write_text(DEPLOY)
    sh(repo, "git", "add", ".")
    sh(repo, "git", "commit", "-qm", "main")
    sh(repo, "git", "push", "-q", "origin", "main")
    sh(repo, "git", "fetch", "-q", "origin")
    head = sh(repo, "git", "rev-parse", "HEAD").strip()

    # the run waits
    request_file = repo / "S" / "runs" / "r1" / "steps" / "gate" / "request.json"
    record_file = repo / "S" / "runs" / "r1" / "record.json"
    log, errors = tmp_path / "run.out", tmp_path / "run.err"
    with log.open("wb") as stdout, errors.open("wb") as stderr:
        run = subprocess.Popen(
            [
                RUNNER,
                "run",
                "deploy.yml",
                "--env",
                "production",
                "--state-dir",
                "S",
                "--run-id",
                "r1",
            ],
            cwd=repo,
            stdout=stdout,
            stderr=stderr,
            env=ENV,
        )
    try:
        wait_until(request_file.is_file, "request file", run)
        wait_until(lambda: "Waiting for trading-desk (0/1)" in log.read_text(), "wait line", run)
        assert run.poll() is None
        request = json.loads(request_file.read_text())
        assert (request["run_id"], request["step_id"], request["environment"]) == (
            "r1",
            "gate",
            "production",
        )
        assert request["commit"] == head
        assert request["digest"] == hashlib.sha256((repo / "deploy.yml").read_bytes()).hexdigest()

        # the approver, in another process and another clone
        sh(tmp_path, "git", "clone", "-q", str(origin), str(approver))
        sh(approver, "git", "checkout", "-q", "--orphan", "approvals")
        sh(approver, "git", "rm", "-rqf", ".")
        said = sh(
            approver,
            RUNNER,
            "approval",
            "new",
            "--request",
            str(request_file),
            "--decision",
            "proceed",
            "--notes",
            "Desk told",
            "--key",
            str(key),
            "--principal",
            "alice@example.com",
            "--out",
            "approvals",
        )
        assert said.startswith("signed: proceed of run r1, step gate, environment production\n")
        assert "\nwrote approvals/r1/gate.alice@example.com.json\n" in said
        sh(approver, "git", "add", "approvals")
        sh(approver, "git", "commit", "-qm", "approve")
        sh(approver, "git", "push", "-q", "origin", "approvals")

        code = run.wait(timeout=WAIT_SECONDS)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    output = log.read_text()
    assert code == 0, output + errors.read_text()

    # the outputs name the approver: #{} (display name) and ${{ }} (notes) in the later step
    assert "  proceed by Alice Martin via file: Desk told\n" in output
    assert "  approved by Alice Martin, Desk told\n" in output
    assert output.rstrip().splitlines()[-1].startswith("Run r1 succeeded in ")

    record = json.loads(record_file.read_text())
    assert record["status"] == "success"
    assert record["exit_code"] == 0
    assert record["commit"] == head
    assert [s["status"] for s in record["steps"]] == ["success", "success", "success"]
    gate = record["steps"][1]
    assert gate["outputs"] == {
        "approved": "true",
        "notes": "Desk told",
        "responsible-user-id": "u-alice",
        "responsible-user-username": "alice",
        "responsible-user-display-name": "Alice Martin",
        "responsible-user-email": "alice@example.com",
    }
    assert gate["octopus"]["Manual.ResponsibleUser.DisplayName"] == "Alice Martin"
    approval = gate["approval"]
    assert approval["state"] == "approved"
    assert approval["refused"] == []
    (decision,) = approval["decisions"]
    assert {k: decision[k] for k in ("result", "source", "username", "display_name", "notes")} == {
        "result": "proceed",
        "source": "file",
        "username": "alice",
        "display_name": "Alice Martin",
        "notes": "Desk told",
    }
    body = (approver / "approvals" / "r1" / "gate.alice@example.com.json").read_bytes()
    signature = (approver / "approvals" / "r1" / "gate.alice@example.com.json.sig").read_text()
    assert decision["evidence"] == {
        "file": "approvals/r1/gate.alice@example.com.json",
        "sha256": hashlib.sha256(body).hexdigest(),
        "remote": "origin",
        "body": body.decode(),
        "signature": signature,
        "principal": "alice@example.com",
        "fingerprint": fingerprint,
        "key_type": "ssh-ed25519",
    }
    signed = json.loads(body)
    assert (signed["run_id"], signed["commit"], signed["approver"]) == (
        "r1",
        head,
        "alice@example.com",
    )

    # the history re-verifies the recorded signature against the trust the run read
    shown = sh(repo, RUNNER, "runs", "show", "r1", "--state-dir", "S")
    verified = (
        f"evidence: approvals/r1/gate.alice@example.com.json ({fingerprint}): "
        "signature re-verified as of the decision"
    )
    assert verified in shown
    pinned = json.loads(record_file.read_text())["trust_commit"]
    assert pinned == sh(repo, "git", "rev-parse", "origin/approvals-trust").strip()

    # later, alice's key leaves the trust branch: the decision still verifies as of its time,
    # against the trust commit the run pinned, not the branch as it is now
    sh(repo, "git", "checkout", "-q", "approvals-trust")
    (repo / "trust" / "allowed_signers").write_text("")
    sh(repo, "git", "commit", "-qam", "alice leaves")
    sh(repo, "git", "push", "-q", "origin", "approvals-trust")
    sh(repo, "git", "checkout", "-q", "main")
    sh(repo, "git", "fetch", "-q", "origin")
    assert sh(repo, "git", "rev-parse", "origin/approvals-trust").strip() != pinned
    assert verified in sh(repo, RUNNER, "runs", "show", "r1", "--state-dir", "S")
