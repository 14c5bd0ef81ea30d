"""Guided failure across jobs (issue 21): a CI job detaches at a failed step (exit 75); someone
signs a decision for that attempt and pushes it; a later job's ``runner resume`` finds it and
goes on, without running the failed step again to ask. Real git, ssh-keygen and ``runner``."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from runner.approvals.document import new_body
from runner.approvals.request import GUIDED

if TYPE_CHECKING:
    from helpers.approval_world import World

WORKFLOW = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers, revoked-keys: trust/revoked_keys}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
guided-failure:
  teams: [trading-desk]
steps:
  - id: migrate
    name: Migrate
    run: |
      echo x >> ../attempts
      if [ "$(grep -c x ../attempts)" -ge 2 ]; then echo passed; exit 0; fi
      exit 7
  - id: after
    name: After
    env:
      CODE: "#{Octopus.Step[Migrate].Status.Code}"
      DEC: "#{Octopus.Action[Migrate].Output.Guided.Decision}"
      BY: "#{Octopus.Action[Migrate].Output.Guided.DecidedBy}"
    run: echo "after=$CODE|$DEC|$BY"
"""


def resume(
    world: World, monkeypatch: pytest.MonkeyPatch, run_id: str
) -> subprocess.CompletedProcess[str]:
    return world.here(monkeypatch, "resume", run_id, "--state-dir", "S", "--detach-on-wait")


@pytest.mark.parametrize(("choice", "code"), [("retry", 0), ("skip", 0), ("fail", 1)])
def test_a_ci_job_detaches_and_a_later_one_resumes_with_the_signed_decision(
    world: World, monkeypatch: pytest.MonkeyPatch, choice: str, code: int
) -> None:
    world.commit_workflow(WORKFLOW)
    done = world.run("--run-id", "c1", "--detach-on-wait")
    assert done.returncode == 75, done.stdout + done.stderr
    assert "Guided failure: Step 'Migrate' failed with exit code 7 (attempt 1)" in done.stdout
    assert "--attempt 1 --decision retry|skip|fail" in done.stdout
    record = world.record("c1")
    assert record["status"] == "waiting"
    # nobody decided yet: the next job detaches again, without running the step
    again = resume(world, monkeypatch, "c1")
    assert again.returncode == 75, again.stdout + again.stderr
    request = {
        "run_id": "c1",
        "step_id": "migrate",
        "environment": "production",
        "digest": hashlib.sha256(WORKFLOW.encode()).hexdigest(),
        "commit": world.head,
        "kind": GUIDED,
        "attempt": 1,
    }
    body = new_body(
        request,
        choice,
        world.keys.bob.principal,
        "seen the migration log",
        {},
        datetime.now(UTC),
        timedelta(hours=1),
    )
    world.push_signed(body.encode(), world.keys.bob, run_id="c1", name="migrate.attempt-1.bob.json")
    finished = resume(world, monkeypatch, "c1")
    output = finished.stdout + finished.stderr
    assert finished.returncode == code, output
    # a retry runs the step again in this job (and it passes); skip and fail do not
    runs = 2 if choice == "retry" else 1
    assert (world.repo.parent / "attempts").read_text().count("x") == runs
    record = world.record("c1")
    migrate = next(s for s in record["steps"] if s["id"] == "migrate")
    (decision,) = migrate["guided"]["decisions"]
    assert (decision["choice"], decision["username"], decision["source"]) == (
        choice,
        "bob",
        "file",
    )
    if choice == "retry":
        assert migrate["status"] == "success"
        assert "after=Succeeded|Retry|bob" in output
    elif choice == "skip":
        assert "after=Failed|Skip|bob" in output
    else:
        assert record["status"] == "failure"
        assert "after=" not in output
    shown = world.here(
        monkeypatch, "runs", "show", "c1", "--state-dir", "S", "--workflow", "deploy.yml"
    )
    assert (
        f"guided failure: attempt 1 failed (exit code 7): {choice} by Bob Stone (bob) via file"
        in shown.stdout
    ), shown.stdout + shown.stderr
