"""Values computed from a secret by Octostache stay masked.

A masker that knows a secret and its encodings still missed what a ``#{}`` filter makes of it:
``#{DbPassword | ToUpper}`` printed ``HUNTER2-...`` in clear, ``Substring`` printed a part of it,
a field of a secret JSON value (``#{Creds.password}``) or an item of one in ``#{each}`` came out
unescaped, and a non-secret variable defined as ``#{DbPassword | ToLower}`` showed it in the log
and in ``runner plan``'s variables. Octopus masks only the value itself; an attacker who can
edit a workflow (or a reviewer who copies a filter from the docs) gets the secret printed.

Every one runs here through real bash, ``runner run --format json`` and ``runner plan`` (text
and JSON), and is sought in the log, the JSON events, the run record, the journal and the
step's outputs. The secrets come from the environment, so the workflow never spells them.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers.run_helpers import RUNNER, Outcome, Workspace

PASSWORD = "hunter2-Secret-e5f1"
CREDS = json.dumps(
    {"user": "deploy-bot-7", "password": 'pa"ss\\word-93c', "hosts": ["h-41a", "h-52b"]}
)
PIN = "48213"

WORKFLOW = """
name: derived secret leaks
variables:
  DbPassword:
    from-env: TEST_PASSWORD
    secret: true
  Creds:
    from-env: TEST_CREDS
    secret: true
  Pin:
    from-env: TEST_PIN
    secret: true
  Shouted:
    value: "#{DbPassword | ToLower}"
  Plain:
    value: "nothing-secret"
steps:
  - id: filters
    name: filters
    env:
      UPPER: "#{DbPassword | ToUpper}"
      LOWER: "#{DbPassword | ToLower}"
      PART: "#{DbPassword | Substring 11}"
      FIELD: "#{Creds.password}"
      USER: "#{Creds.user}"
      HOSTS: "#{each host in Creds.hosts}#{host};#{/each}"
      VALUES: "#{each entry in Creds}#{entry.Key}=#{entry.Value};#{/each}"
      SHOUTED: "#{Shouted | ToUpper}"
      NEXT: "#{calc Pin + 1}"
      PLAIN: "#{Plain | ToUpper}"
    run: |
      echo "upper $UPPER"
      echo "lower $LOWER"
      echo "part $PART"
      echo "field $FIELD"
      echo "user $USER"
      echo "hosts $HOSTS"
      echo "values $VALUES"
      echo "shouted $SHOUTED"
      echo "next $NEXT"
      echo "plain $PLAIN"
      echo "upper=$UPPER" >> "$RUNNER_OUTPUT"
  - id: action
    name: in a composite action
    uses: ./actions/shout
  - id: gate
    name: gate
    if: false
    manual:
      instructions: "Check #{DbPassword | ToUpper} and #{Shouted}"
"""

ACTION = """
name: shout
outputs:
  said:
    value: "#{DbPassword | ToUpper}"
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      run: |
        echo "action #{DbPassword | Substring 11}"
"""

ENV = {"TEST_PASSWORD": PASSWORD, "TEST_CREDS": CREDS, "TEST_PIN": PIN}

#: what the filters above make of the secrets, each of which the old runner printed in clear
DERIVED = {
    "ToUpper": PASSWORD.upper(),
    "ToLower": PASSWORD.lower(),
    "Substring": PASSWORD[:11],
    "JSON field": 'pa"ss\\word-93c',
    "JSON field of a user": "deploy-bot-7",
    "each item": "h-41a",
    "each value": "h-52b",
    "calc": str(int(PIN) + 1),
}


def leaks(text: str) -> list[str]:
    return sorted(name for name, value in DERIVED.items() if value in text)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("derived"))


@pytest.fixture(scope="module")
def outcome(workspace: Workspace) -> Outcome:
    workspace.action("shout", ACTION)
    return workspace.cli(WORKFLOW, "--format", "json", env=ENV)


def plan(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUNNER), "plan", "deploy.yml", "--env", "staging", *args],
        cwd=workspace.root,
        env=workspace.environ(ENV),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_log_shows_no_value_computed_from_a_secret(outcome: Outcome) -> None:
    assert outcome.code == 0, outcome.out + outcome.err
    assert leaks(outcome.out + outcome.err) == []
    lines = [e["text"] for e in outcome.events() if e.get("step") == "filters" and "text" in e]
    assert lines == [
        "upper ***",
        "lower ***",
        "part ***",
        "field ***",
        "user ***",
        "hosts ***;***;",
        # an object's keys are names, not its secret content
        "values user=***;password=***;hosts=***;",
        "shouted ***",
        "next ***",
        # a filter of a value that holds no secret is not masked
        "plain NOTHING-SECRET",
    ]
    said = [e["text"] for e in outcome.events() if e.get("step") == "action" and "text" in e]
    assert said == ["action ***"]


def test_the_record_journal_and_outputs_hold_none_either(outcome: Outcome) -> None:
    folder = outcome.record_path.parent
    texts = {p.name: p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}
    assert {"record.json", "events.jsonl"} <= set(texts)
    assert {name: leaks(text) for name, text in texts.items() if leaks(text)} == {}
    assert outcome.step("filters").outputs == {"upper": "***"}
    assert outcome.step("action").outputs == {"said": "***"}


def test_the_plan_masks_them_in_variables_and_instructions(workspace: Workspace) -> None:
    text = plan(workspace)
    assert text.returncode == 0, text.stdout + text.stderr
    assert leaks(text.stdout + text.stderr) == []
    assert "Shouted    = ***" in text.stdout
    as_json = plan(workspace, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert leaks(as_json.stdout) == []
    [gate] = [s for s in json.loads(as_json.stdout)["steps"] if s["id"] == "gate"]
    assert gate["approval"]["instructions"] == "Check *** and ***"
