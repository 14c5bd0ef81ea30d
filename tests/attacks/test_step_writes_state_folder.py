"""A step runs as the runner's user and knows where the run's state folder is (`$RUNNER_TEMP`
is in it): what the runner writes there for people must not go where the step says.

The manual step writes its request (`steps/<id>/request.json`, what `runner approval new
--request` signs from) before it asks anyone. It was written through whatever the name held: a
FIFO a step made there blocked the runner at the gate for ever (SIGTERM too: the open was
retried), nobody was asked and the CI job hung until its own timeout; a link wrote the request
over the file it named. Real git, ssh-keygen and bash; the runner as a subprocess."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers.approval_world import World

WORKFLOW = """\
name: Seed
environments: [production]
approvals:
  trust: {{ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers}}
  file: {{remote: origin, branch: approvals, path: approvals, poll-seconds: 1}}
steps:
  - id: setup
    name: Setup
    run: |
      folder="$RUNNER_TEMP/../steps/gate"
      mkdir -p "$folder"
      {make}
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
"""

MAKE = {
    "a FIFO": 'mkfifo "$folder/request.json"',
    "a link": 'echo keep > "$PWD/victim"; ln -s "$PWD/victim" "$folder/request.json"',
}


@pytest.mark.parametrize("case", MAKE, ids=list(MAKE))
def test_a_step_cannot_block_or_redirect_the_gates_request_file(world: World, case: str) -> None:
    world.commit_workflow(WORKFLOW.format(make=MAKE[case]))
    try:
        done = world.run("--run-id", "req", "--detach-on-wait", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the runner was still writing the gate's request after 30 s")
    assert done.returncode == 75, done.stdout + done.stderr
    request = world.repo / "S" / "runs" / "req" / "steps" / "gate" / "request.json"
    assert not request.is_symlink()
    assert json.loads(request.read_text(encoding="utf-8"))["step_id"] == "gate"
    if case == "a link":
        assert (world.repo / "victim").read_text(encoding="utf-8") == "keep\n"


def test_a_folder_at_the_request_files_name_fails_the_gate(world: World) -> None:
    # it was an internal error (exit 70, IsADirectoryError) with the run left `running`
    world.commit_workflow(WORKFLOW.format(make='mkdir "$folder/request.json"'))
    done = world.run("--run-id", "req", "--detach-on-wait", timeout=30)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "could not write the request file" in done.stdout
    assert "nobody was asked" in done.stdout
    assert world.record("req")["status"] == "failure"
