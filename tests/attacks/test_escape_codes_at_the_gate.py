"""What the people who decide read cannot be rewritten by a script's escape codes.

A manual step's title, instructions and field labels are often made of earlier steps' outputs
(`Release ${{ steps.build.outputs.version }}`), and a guided failure's question shows the
failed step's last lines: both are the deployed commit's scripts' text. They reached the
terminal, the job log, the approval server and the request file as written, so an output
ending in `ESC[8m` hid everything printed after it on a terminal (the `Approving:` line, the
inputs, the prompt's question), `ESC[2J` cleared the screen for a fake request, and a carriage
return or U+202E wrote over or reversed the text. They are shown as escapes now (`\\x1b`).
Real git, ssh-keygen and bash; the runner as a subprocess."""

from __future__ import annotations

import json

from helpers.approval_world import World

WORKFLOW = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
steps:
  - id: build
    name: Build
    run: |
      printf 'v=1.2.3\\033[8m hidden\\rover \\342\\200\\256txet\\n' >> "$RUNNER_OUTPUT"
  - id: gate
    name: Approve release
    manual:
      title: "Release ${{ steps.build.outputs.v }}"
      instructions: "Check ${{ steps.build.outputs.v }}"
      fields:
        - {name: ticket, type: string, label: "Ticket for ${{ steps.build.outputs.v }}"}
      teams: [trading-desk]
"""

SHOWN = "1.2.3\\x1b[8m hidden\\x0dover \\u202etxet"


def test_a_gates_texts_from_step_outputs_show_escape_codes_as_text(world: World) -> None:
    world.commit_workflow(WORKFLOW)
    done = world.run("--run-id", "esc", "--detach-on-wait", timeout=30)
    assert done.returncode == 75, done.stdout + done.stderr
    waiting = done.stdout[done.stdout.index("Manual intervention required") :]
    for hiding in ("\x1b", "\r", "\u202e"):
        assert hiding not in waiting
    assert f"Manual intervention required: Release {SHOWN}\n" in waiting
    assert f"Check {SHOWN}\n" in waiting
    folder = world.repo / "S" / "runs" / "esc" / "steps" / "gate"
    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    assert request["title"] == f"Release {SHOWN}"
    assert request["fields"][0]["label"] == f"Ticket for {SHOWN}"


GUIDED = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
guided-failure:
  teams: [trading-desk]
steps:
  - id: migrate
    name: Migrate
    run: |
      printf 'all good\\033[2J\\033[Hfake question\\n'
      exit 3
"""


def test_a_guided_failures_log_tail_shows_escape_codes_as_text(world: World) -> None:
    world.commit_workflow(GUIDED)
    done = world.run("--run-id", "esc", "--detach-on-wait", timeout=30)
    assert done.returncode == 75, done.stdout + done.stderr
    waiting = done.stdout[done.stdout.index("Guided failure") :]
    assert "\x1b" not in waiting
    assert "  | all good\\x1b[2J\\x1b[Hfake question\n" in waiting
