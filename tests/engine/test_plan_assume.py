"""``runner plan --assume proceed|abort --field k=v``: both branches of a manual step, with
simulated outputs that later conditions read; and the seed workflow's plans per environment."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import ROOT

from runner.cli.main import main

SEED = ROOT / "workflows" / "deploy-webapp.yml"

WORKFLOW = """\
name: Plan test
environments: [staging, production]
approvals:
  trust:
    people: approvals/people.yml
variables:
  Target:
    - value: stage-host
      environments: [staging]
    - value: prod-host
      environments: [production]
steps:
  - id: build
    name: Build
    run: echo build
  - id: gate
    name: Gate
    environments: [production]
    manual:
      teams: [ops]
      timeout-minutes: 30
      prevent-self-approval: true
      instructions: "Deploy to #{Target}"
      fields:
        - name: ticket
          type: string
          required: true
  - id: on-approval
    name: On approval
    if: ${{ steps.gate.outputs.approved == 'true' }}
    run: echo yes
  - id: on-ticket
    name: On ticket
    if: ${{ steps.gate.outputs.ticket == 'CHG-9' }}
    run: echo ticket
  - id: octopus-approved
    name: Octopus variable condition
    if: "#{if Octopus.Action[Gate].Output.Manual.Approved == \\"True\\"}true#{/if}"
    run: echo octo
  - id: on-abort
    name: On abort
    if: ${{ failure() && steps.gate.outputs.approved == 'false' }}
    run: echo abort
  - id: on-error
    name: Error variable
    if: "#{if Octopus.Deployment.Error}true#{/if}"
    run: echo err
  - id: always
    name: Always
    if: always()
    run: echo always
"""


#: the OS account at this terminal: in the people file, it may approve
HERE = pwd.getpwuid(os.geteuid()).pw_name
#: a run whose gate can be decided: started by bob, at the terminal of someone who may
#: approve. Without it a plan reports, as a run would, that no approval could count.
DECIDABLE = {"RUNNER_ACTOR": "bob"}


@pytest.fixture(autouse=True)
def decidable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DECIDABLE.items():
        monkeypatch.setenv(name, value)
    for name in ("CI", "GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "approvals").mkdir()
    (tmp_path / "approvals" / "people.yml").write_text(
        f"people:\n  - username: {HERE}\n  - username: bob\nteams:\n  ops: [{HERE}]\n"
    )
    path = tmp_path / "plan.yml"
    path.write_text(WORKFLOW)
    return path


def plan_json(
    capsys: pytest.CaptureFixture[str], path: Path, env: str, *extra: str
) -> dict[str, Any]:
    code = main(["plan", str(path), "--env", env, "--format", "json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def runs(plan: dict[str, Any]) -> dict[str, bool | None]:
    return {s["id"]: s["runs"] for s in plan["steps"]}


@pytest.mark.parametrize(
    ("assume", "outcome", "expected"),
    [
        (
            "proceed",
            "success",
            {
                "build": True,
                "gate": True,
                "on-approval": True,
                "on-ticket": True,
                "octopus-approved": True,
                "on-abort": False,
                "on-error": False,
                "always": True,
            },
        ),
        (
            "abort",
            "aborted",
            {
                "build": True,
                "gate": True,
                "on-approval": False,
                "on-ticket": False,
                "octopus-approved": False,
                "on-abort": True,
                "on-error": True,
                "always": True,
            },
        ),
    ],
)
def test_both_branches(
    capsys: pytest.CaptureFixture[str],
    workflow: Path,
    assume: str,
    outcome: str,
    expected: dict[str, bool],
) -> None:
    plan = plan_json(capsys, workflow, "production", "--assume", assume, "--field", "ticket=CHG-9")
    assert plan["outcome"] == outcome
    assert runs(plan) == expected
    gate = plan["steps"][1]
    assert gate["approval"] == {
        "teams": ["ops"],
        "quorum": [],
        "sources": ["prompt"],
        "prevent-self-approval": True,
        "timeout-minutes": 30,
        "on-timeout": "abort",
        "assumed": assume,
        "title": "Gate",
        "instructions": "Deploy to prod-host",
        "rendered-at-run-time": None,
        "fields": [
            {
                "name": "ticket",
                "type": "string",
                "label": "",
                "required": True,
                "pattern": None,
                "options": [],
            }
        ],
    }
    assert (plan["errors"], plan["exit-code"]) == ([], 0)


@pytest.mark.parametrize(
    ("assume", "reasons"),
    [
        (
            "proceed",
            {
                "on-approval": "`${{ steps.gate.outputs.approved == 'true' }}` is true",
                "on-ticket": "`${{ steps.gate.outputs.ticket == 'CHG-9' }}` is true",
                "octopus-approved": "variable condition is true",
                "on-abort": "`${{ failure() && steps.gate.outputs.approved == 'false' }}` is false",
            },
        ),
        (
            "abort",
            {
                "on-approval": "the deployment has failed",
                "on-ticket": "the deployment has failed",
                "octopus-approved": "variable condition is false",
                "on-abort": "`${{ failure() && steps.gate.outputs.approved == 'false' }}` is true",
            },
        ),
    ],
)
def test_reasons_name_the_simulated_outputs(
    capsys: pytest.CaptureFixture[str], workflow: Path, assume: str, reasons: dict[str, str]
) -> None:
    plan = plan_json(capsys, workflow, "production", "--assume", assume, "--field", "ticket=CHG-9")
    got = {s["id"]: s["reason"] for s in plan["steps"] if s["id"] in reasons}
    assert got == reasons


@pytest.mark.parametrize(("field", "runs_on_ticket"), [("CHG-9", True), ("CHG-10", False)])
def test_field_value_reaches_later_conditions(
    capsys: pytest.CaptureFixture[str], workflow: Path, field: str, runs_on_ticket: bool
) -> None:
    plan = plan_json(capsys, workflow, "production", "--field", f"ticket={field}")
    assert runs(plan)["on-ticket"] is runs_on_ticket


def test_without_field_the_output_is_empty(
    capsys: pytest.CaptureFixture[str], workflow: Path
) -> None:
    plan = plan_json(capsys, workflow, "production")
    assert runs(plan)["on-ticket"] is False
    assert runs(plan)["on-approval"] is True


def test_abort_branch_has_no_field_outputs(
    capsys: pytest.CaptureFixture[str], workflow: Path
) -> None:
    text = workflow.read_text().replace(
        "  - id: always\n",
        "  - id: abort-without-ticket\n"
        "    name: Abort without ticket\n"
        "    if: ${{ always() && steps.gate.outputs.ticket != 'CHG-9' }}\n"
        "    run: echo none\n"
        "  - id: always\n",
    )
    workflow.write_text(text)
    plan = plan_json(capsys, workflow, "production", "--assume", "abort", "--field", "ticket=CHG-9")
    assert runs(plan)["abort-without-ticket"] is True


@pytest.mark.parametrize("assume", ["proceed", "abort"])
def test_manual_step_scoped_out_is_not_assumed(
    capsys: pytest.CaptureFixture[str], workflow: Path, assume: str
) -> None:
    plan = plan_json(capsys, workflow, "staging", "--assume", assume, "--field", "ticket=CHG-9")
    assert plan["outcome"] == "success"
    gate = plan["steps"][1]
    assert (gate["runs"], gate["reason"]) == (False, "only in production")
    assert runs(plan) == {
        "build": True,
        "gate": False,
        "on-approval": False,
        "on-ticket": False,
        "octopus-approved": False,
        "on-abort": False,
        "on-error": False,
        "always": True,
    }


def test_text_plan_shows_the_approval_and_the_assumption(
    capsys: pytest.CaptureFixture[str], workflow: Path
) -> None:
    assert main(["plan", str(workflow), "--env", "production", "--assume", "abort"]) == 0
    out = capsys.readouterr().out
    assert (
        "   2    run   gate: Gate\n"
        "            the steps before succeeded\n"
        "            waits for: ops (1 person) via prompt\n"
        "            the person who started the run may not approve\n"
        "            times out after 30 min, then aborts\n"
        "            instructions:\n"
        "              | Deploy to prod-host\n"
        "            field ticket: string, required\n"
        "            dry run assumes: abort\n"
    ) in out
    assert out.endswith("Outcome if so: aborted\n")


def test_text_reading_an_earlier_steps_output_is_not_shown_blank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It rendered, with nothing where the output goes: `Deploy  to dev?`."""
    (tmp_path / "flow.yml").write_text(
        "name: flow\n"
        "steps:\n"
        "  - id: build\n"
        "    name: Build\n"
        "    run: echo 'version=1.2' >> \"$RUNNER_OUTPUT\"\n"
        "  - id: gate\n"
        "    name: Gate\n"
        "    manual:\n"
        '      instructions: "Deploy ${{ steps.build.outputs.version }} to '
        '#{Octopus.Environment.Name}?"\n'
    )
    assert main(["plan", str(tmp_path / "flow.yml"), "--env", "dev"]) == 0
    assert (
        "            instructions:\n"
        "              | Deploy ${{ steps.build.outputs.version }} to "
        "#{Octopus.Environment.Name}?\n"
        "            shown as written, rendered when the step runs: it reads what earlier steps "
        "give, which a dry run does not have\n"
    ) in capsys.readouterr().out


def test_text_an_earlier_steps_output_makes_is_shown_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a dry run has no outputs of the build: the plan shows the text as written and why, instead
    # of refusing (which refused the run too, since a run plans its manual steps first)
    (tmp_path / "flow.yml").write_text(
        "name: flow\n"
        "steps:\n"
        "  - id: build\n"
        "    name: Build\n"
        "    run: echo 'meta={}' >> \"$RUNNER_OUTPUT\"\n"
        "  - id: gate\n"
        "    name: Gate\n"
        "    manual:\n"
        '      title: "Ship ${{ fromJSON(steps.build.outputs.meta).version }}"\n'
        '      instructions: "Deploy #{Octopus.Environment.Name}: '
        '${{ fromJSON(steps.build.outputs.meta).version }}"\n'
    )
    flow = str(tmp_path / "flow.yml")
    assert main(["plan", flow, "--env", "dev"]) == 0
    out = capsys.readouterr().out
    assert (
        "            asks: Ship ${{ fromJSON(steps.build.outputs.meta).version }}\n"
        "            instructions:\n"
        "              | Deploy #{Octopus.Environment.Name}: "
        "${{ fromJSON(steps.build.outputs.meta).version }}\n"
        "            shown as written, rendered when the step runs: Error parsing JSON when "
        "evaluating fromJson: empty input\n"
    ) in out
    assert main(["plan", flow, "--env", "dev", "--format", "json"]) == 0
    approval = json.loads(capsys.readouterr().out)["steps"][1]["approval"]
    assert approval["rendered-at-run-time"].startswith("Error parsing JSON")


def secret_token_flow(default: str) -> str:
    """A workflow's head with a secret input ``token`` defaulting to ``default`` (YAML)."""
    return f"name: flow\ninputs:\n  token:\n    secret: true\n    default: {default}\nsteps:\n"


LOOPHOLE = """\
name: flow
inputs:
  ticket:
    default: CHG-1
steps:
  - id: deploy
    name: Deploy
    environments: [{where}]
    run: echo deployed > deployed.txt
  - id: gate
    name: Gate
    manual:
      instructions: |
        Version ${{{{ fromJSON(steps.deploy.outputs.meta).version }}}}
        Ticket ${{{{ fromJSON(inputs.ticket).id }}}}
"""


@pytest.mark.parametrize("where", ["dev", "prod"])
def test_a_text_that_fails_whatever_the_run_gives_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    # the first expression reads the deploy step's output (run time); the second fails with
    # any output, and so does the first when the deploy step is not in this environment: a run
    # that started would deploy, then fail at the gate
    (tmp_path / "flow.yml").write_text(LOOPHOLE.format(where=where))
    assert main(["plan", str(tmp_path / "flow.yml"), "--env", "dev"]) == 2
    err = capsys.readouterr().err
    at = "15:16" if where == "dev" else "14:17"
    assert f"flow.yml:{at}: Error parsing JSON when evaluating fromJson" in err


def test_a_text_reading_a_step_by_brackets_or_an_approvers_field_waits_for_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flow.yml").write_text(
        secret_token_flow("s3cr3t-value") + "  - id: build\n"
        "    name: Build\n"
        "    run: echo 'meta={}' >> \"$RUNNER_OUTPUT\"\n"
        "  - id: g1\n"
        "    name: G1\n"
        "    manual:\n"
        "      fields:\n"
        "        - name: cfg\n"
        "          type: string\n"
        "  - id: g2\n"
        "    name: G2\n"
        "    manual:\n"
        "      title: \"${{ fromJSON(steps['build'].outputs.meta).v }}\"\n"
        '      instructions: "${{ fromJSON(steps.g1.outputs.cfg).x }} ${{ inputs.token }}"\n'
    )
    flow = str(tmp_path / "flow.yml")
    assert main(["plan", flow, "--env", "dev"]) == 0
    out = capsys.readouterr().out
    assert "            asks: ${{ fromJSON(steps['build'].outputs.meta).v }}\n" in out
    assert "              | ${{ fromJSON(steps.g1.outputs.cfg).x }} ${{ inputs.token }}\n" in out
    assert "s3cr3t-value" not in out


@pytest.mark.parametrize(
    ("gate", "instructions", "code"),
    [
        # a gate the dry run skips (its branch is the failure one) reads a step of that branch
        ("if: failure()", "${{ fromJSON(steps.diag.outputs.report).summary }}", 0),
        # what a false #{if} drops is not evaluated, as in a run
        (
            "if: always()",
            "#{if ShowMeta}${{ fromJSON(inputs.meta).x }}#{/if} "
            "v=${{ fromJSON(steps.diag.outputs.report).v }}",
            0,
        ),
        # a #{} inside ${{ }} is its text: this fails whatever the step wrote
        ("if: always()", "${{ fromJSON('#{Octopus.Action[Diag].Output.report}').v }}", 2),
    ],
)
def test_what_the_dry_run_checks_in_a_manual_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gate: str, instructions: str, code: int
) -> None:
    (tmp_path / "flow.yml").write_text(
        "name: flow\n"
        "variables:\n"
        "  ShowMeta: 'False'\n"
        "inputs:\n"
        "  meta:\n"
        "    default: not json\n"
        "steps:\n"
        "  - {id: smoke, name: Smoke, run: 'true'}\n"
        "  - id: diag\n"
        "    name: Diag\n"
        "    if: always()\n"
        "    run: echo 'report={}' >> \"$RUNNER_OUTPUT\"\n"
        "  - id: ok\n"
        "    name: Approve\n"
        f"    {gate}\n"
        f"    manual: {{instructions: {json.dumps(instructions)}}}\n"
    )
    flow = str(tmp_path / "flow.yml")
    assert main(["plan", flow, "--env", "dev", "--format", "json"]) == code
    captured = capsys.readouterr()
    if code:
        assert "flow.yml:16:" in captured.err and "Error parsing JSON" in captured.err
    else:
        approval = json.loads(captured.out)["steps"][2]["approval"]
        assert approval["instructions"] == instructions
        assert approval["rendered-at-run-time"].startswith("Error parsing JSON")


def test_field_labels_are_rendered_and_checked_as_the_text_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "flow.yml"
    workflow = (
        "name: flow\n"
        "steps:\n"
        "  - id: gate\n"
        "    name: Gate\n"
        "    manual:\n"
        "      fields:\n"
        "        - name: ticket\n"
        "          type: string\n"
        '          label: "Ticket for #{Octopus.Environment.Name}"\n'
    )
    flow.write_text(workflow)
    assert main(["plan", str(flow), "--env", "dev"]) == 0
    assert (
        "            field ticket (Ticket for dev): string, optional\n" in capsys.readouterr().out
    )
    # a label that fails whatever the run gives fails the gate: refused before the first step
    flow.write_text(workflow.replace("#{Octopus.Environment.Name}", "${{ fromJSON('x').y }}"))
    assert main(["plan", str(flow), "--env", "dev"]) == 2
    assert "flow.yml:9:30: Error parsing JSON" in capsys.readouterr().err


def test_a_secret_input_in_a_manual_steps_text_is_masked_in_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "flow.yml").write_text(
        secret_token_flow("s3cr3t-value") + "  - id: g\n"
        "    name: G\n"
        "    manual:\n"
        '      title: "t ${{ inputs.token }}"\n'
        '      instructions: "i #{token} ${{ inputs.token }}"\n'
    )
    flow = str(tmp_path / "flow.yml")
    assert main(["plan", flow, "--env", "dev"]) == 0
    out = capsys.readouterr().out
    assert "            asks: t ***\n" in out and "              | i *** ***\n" in out
    assert main(["plan", flow, "--env", "dev", "--format", "json"]) == 0
    assert "s3cr3t" not in capsys.readouterr().out


def test_a_secret_input_encoded_in_a_manual_steps_text_is_masked_in_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # toJSON escapes the quote and the backslash: the run's masker knows that form, and so must
    # the plan's
    (tmp_path / "flow.yml").write_text(
        secret_token_flow("'pa\"ss\\word/42'") + "  - id: g\n"
        "    name: G\n"
        "    manual:\n"
        '      title: "T ${{ toJSON(inputs.token) }}"\n'
    )
    assert main(["plan", str(tmp_path / "flow.yml"), "--env", "dev"]) == 0
    out = capsys.readouterr().out
    assert '            asks: T "***"\n' in out
    assert "ss" not in out.split("asks:")[1].splitlines()[0]


# -- the seed workflow ---------------------------------------------------------------------------


def differences(a: Any, b: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Every leaf where ``a`` and ``b`` differ, by path."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        found: dict[str, tuple[Any, Any]] = {}
        for key in a:
            found.update(differences(a[key], b[key], f"{path}.{key}"))
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        found = {}
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found.update(differences(x, y, f"{path}[{i}]"))
        return found
    return {} if a == b else {path: (a, b)}


@pytest.fixture
def seed_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOP_DB_PASSWORD", "SHOP_CHAT_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    # alice (a trader of the seed's people file) at the terminal: her OS account, which no
    # environment variable can claim
    monkeypatch.setattr("runner.engine.preflight.local_user", lambda: "alice")


@pytest.mark.usefixtures("seed_environ")
def test_seed_plans_differ_exactly_where_scopes_say(capsys: pytest.CaptureFixture[str]) -> None:
    staging = plan_json(capsys, SEED, "staging")
    production = plan_json(capsys, SEED, "production")
    instructions = (
        "Release **1.4.2** is about to go to {}.\n"
        "Tell the trading desk, then proceed. Abort if a trading window is open.\n"
    )
    assert differences(staging, production) == {
        ".environment": ("staging", "production"),
        ".variables[0].value": ("shop_staging", "shop"),
        ".variables[0].origin": ("scoped to staging", "scoped to production"),
        ".variables[1].value": ("http://127.0.0.1:8765/", "http://127.0.0.1:8766/"),
        ".variables[1].origin": ("scoped to staging", "scoped to production"),
        ".variables[2].value": ("8765", "8766"),
        ".variables[2].origin": ("scoped to staging", "scoped to production"),
        ".steps[1].runs": (False, True),
        ".steps[1].reason": ("only in production", "the steps before succeeded"),
        ".steps[1].approval.instructions": (
            instructions.format("staging"),
            instructions.format("production"),
        ),
    }
    assert [v["name"] for v in production["variables"]] == [
        "DatabaseName",
        "HomepageUrl",
        "SitePort",
        "DatabasePassword",
        "ChatWebhook",
    ]
    assert production["steps"][1]["id"] == "notify-traders"
    assert runs(production) == {
        "upgrade-database": True,
        "notify-traders": True,
        "deploy-app": True,
        "check-homepage": True,
        "notify": True,
    }


@pytest.mark.usefixtures("seed_environ")
@pytest.mark.parametrize(
    ("env", "outcome", "expected"),
    [
        (
            "production",
            "aborted",
            {
                "upgrade-database": True,
                "notify-traders": True,
                "deploy-app": False,
                "check-homepage": False,
                "notify": True,
            },
        ),
        (
            "staging",
            "success",
            {
                "upgrade-database": True,
                "notify-traders": False,
                "deploy-app": True,
                "check-homepage": True,
                "notify": True,
            },
        ),
    ],
)
def test_seed_abort_branch(
    capsys: pytest.CaptureFixture[str], env: str, outcome: str, expected: dict[str, bool]
) -> None:
    plan = plan_json(capsys, SEED, env, "--assume", "abort", "--field", "ticket=CHG-1")
    assert plan["outcome"] == outcome
    assert runs(plan) == expected


@pytest.mark.usefixtures("seed_environ")
def test_seed_text_plans_ask_only_in_production(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(SEED), "--env", "production"]) == 0
    production = capsys.readouterr().out
    assert main(["plan", str(SEED), "--env", "staging"]) == 0
    staging = capsys.readouterr().out
    asks = "            waits for: trading-desk (1 person) via prompt\n"
    assert asks in production
    assert asks not in staging
    assert (
        "   2    skip  notify-traders: Ensure traders are aware of the deployment\n"
        "            only in production\n" in staging
    )
    assert "  DatabaseName     = shop  (scoped to production)\n" in production
    assert "  DatabaseName     = shop_staging  (scoped to staging)\n" in staging


def test_plan_command_line(workflow: Path) -> None:
    """The installed command, once, as a person types it."""
    runner = Path(sys.executable).with_name("runner")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS", "GITLAB_CI")}
    env.update(DECIDABLE)
    completed = subprocess.run(
        [
            str(runner),
            "plan",
            workflow.name,
            "--env",
            "production",
            "--assume",
            "abort",
            "--field",
            "ticket=CHG-9",
            "--format",
            "json",
        ],
        cwd=workflow.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    plan = json.loads(completed.stdout)
    assert plan["path"] == "plan.yml"
    assert plan["outcome"] == "aborted"
    assert plan["steps"][1]["approval"]["assumed"] == "abort"
