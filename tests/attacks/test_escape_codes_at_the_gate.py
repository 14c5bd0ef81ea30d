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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers.approval_world import World

from runner.approvals.document import SignedApproval, new_body
from runner.approvals.verify import SignedFileReport
from runner.cli.approval import report_text, signed_summary

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


INPUTS = """\
name: Seed
environments: [production]
inputs:
  version: {type: string, required: true}
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
  - id: deploy
    name: Deploy
    run: echo deployed
"""


def test_the_deployers_inputs_at_the_gate_show_control_characters_as_text(world: World) -> None:
    """The deployer's own inputs are shown at the gate (``Inputs:``) and in ``approval new``'s
    summary of what was signed: ``json.dumps`` escapes C0 controls but left a C1 CSI (``\\x9b``)
    and U+202E as they were, so the version the approvers read could be reversed or hidden."""
    world.commit_workflow(INPUTS)
    version = "1.0\u202e\u009b8m"
    done = world.run("--run-id", "esc", "--detach-on-wait", "--input", f"version={version}")
    assert done.returncode == 75, done.stdout + done.stderr
    waiting = done.stdout[done.stdout.index("Manual intervention required") :]
    for hiding in ("\u202e", "\x9b"):
        assert hiding not in waiting
    assert 'Inputs: {"version": "1.0\\u202e\\x9b8m"}' in waiting


def test_approval_new_summary_shows_control_characters_as_text(tmp_path: Path) -> None:
    body = {
        "decision": "proceed",
        "run_id": "r1",
        "step_id": "gate",
        "environment": "production",
        "commit": "a" * 40,
        "workflow_digest": "b" * 64,
        "inputs_digest": "c" * 64,
        "expires_at": "2026-12-08T00:00:00Z",
    }
    signed = tmp_path / "gate.json"
    signed.write_text(json.dumps(body), encoding="utf-8")
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"inputs": {"version": "1.0\u202e\u009b8m"}}), encoding="utf-8")
    summary = signed_summary(signed, str(request))
    assert "\u202e" not in summary and "\x9b" not in summary
    assert '"1.0\\u202e\\x9b8m"' in summary


def test_approval_verify_shows_a_files_escape_codes_as_text() -> None:
    """``approval verify`` printed a signed file's notes as written, before its verdict: anyone
    with a key (one the people file does not know included) could sign notes ending in
    ``ESC[8m``, which concealed the ``NOT valid`` line after them on the verifier's terminal."""
    body = new_body(
        {"run_id": "r1", "step_id": "gate", "environment": "prod", "digest": "d" * 64},
        "proceed",
        "mallory@example.com",
        "fine\x1b[8m",
        {},
        datetime.now(UTC),
        timedelta(hours=1),
    )
    signed = SignedApproval(body, b"{}", "mallory@example.com", "SHA256:x", "ED25519")
    problems = ("mallory@example.com is not in the people file",)
    text = report_text("a.json", SignedFileReport(signed=signed, problems=problems), None)
    assert "\x1b" not in text
    assert "  decision: proceed: fine\\x1b[8m\n" in text
    assert text.endswith("NOT valid: mallory@example.com is not in the people file\n")
    refused = report_text("a.json", SignedFileReport(refusal="bad \x1b[2J body"), None)
    assert refused == "a.json: NOT valid: bad \\x1b[2J body\n"
