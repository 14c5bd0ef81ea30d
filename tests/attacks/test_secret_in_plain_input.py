"""An input that is not secret holding a secret (attack pass on secrets).

``--input registry-token=T`` (secret) and ``--input registry-url=https://ci:T@registry``: only
inputs declared secret were masked, so the URL was in clear in the manual step's ``Inputs:``
line, ``runner plan``, the record, the request file and what the approval server was sent. Every
input now passes through the masker; the request file, what is signed from it and what the
resume verifies all hold the same masked inputs, so an approval signed from the request file
still counts.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers.approval_world import World
from helpers.run_helpers import RUNNER
from test_record_tampering import ONE_GATE, resume, run

from runner.cli.main import main

TOKEN = "rEgistryT0ken-91c4"
URL = f"https://ci:{TOKEN}@registry.example/v2"

WORKFLOW = ONE_GATE.replace(
    "steps:\n",
    "inputs:\n  registry-token:\n    secret: true\n  registry-url: {}\nsteps:\n",
    1,
).replace('run: echo "DEPLOYED"', 'run: echo "DEPLOYED to ${{ inputs.registry-url }}"')
GIVEN = ("--input", f"registry-token={TOKEN}", "--input", f"registry-url={URL}")


def test_plan_masks_a_secret_in_an_input_that_is_not_secret(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "deploy.yml").write_text(
        "name: plan\ninputs:\n  registry-token:\n    secret: true\n  registry-url: {}\n"
        "steps:\n  - id: push\n    name: Push\n"
        '    run: echo "pushing to ${{ inputs.registry-url }}"\n'
    )
    for form in ("text", "json"):
        done = subprocess.run(
            [str(RUNNER), "plan", "deploy.yml", "--env", "production", "--format", form, *GIVEN],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert TOKEN not in done.stdout + done.stderr, form
        assert "https://ci:***@registry.example/v2" in done.stdout


def test_a_signed_approval_of_a_run_whose_plain_input_holds_a_secret_still_counts(
    world: World, capsys: object
) -> None:
    world.commit_workflow(WORKFLOW)
    waiting = run(world, "in1", *GIVEN)
    state = world.repo / "S" / "runs" / "in1"
    request_file = state / "steps" / "gate" / "request.json"
    request = json.loads(request_file.read_text())
    assert request["inputs"] == {
        "registry-token": "***",
        "registry-url": "https://ci:***@registry.example/v2",
    }
    assert "Inputs: " in waiting.stdout + waiting.stderr
    texts = [p.read_text(errors="replace") for p in state.rglob("*") if p.is_file()]
    assert [text for text in [waiting.stdout, waiting.stderr, *texts] if TOKEN in text] == []
    # signed from the request file, as an approver does
    out = world.root / "signed"
    code = main(
        [
            *("approval", "new", "--request", str(request_file), "--decision", "proceed"),
            *("--key", str(world.keys.alice.path), "--principal", "alice@example.com"),
            *("--out", str(out)),
        ]
    )
    assert code == 0
    world.push(
        {f"approvals/in1/{p.name}": p.read_bytes() for p in (out / "in1").iterdir() if p.is_file()}
    )
    done = resume(world, "in1", *GIVEN)
    assert done.returncode == 0, done.stdout + done.stderr
    # the step after the gate gets the input whole (the log shows it masked)
    assert "DEPLOYED to https://ci:***@registry.example/v2" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
