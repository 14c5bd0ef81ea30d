"""Run conditions against each state the deployment can be in when a step comes up.

One workflow per prior state: a step ``prior`` that succeeds, fails, fails with
``continue-on-error`` or is cancelled (it sends SIGINT to the runner), followed by one step per
condition below; each condition step runs ``true``, so it never changes the deployment's status.
"""

from __future__ import annotations

import pytest
from helpers.run_helpers import Outcome, Workspace

PRIORS = {
    "succeeded": "run: 'true'",
    "failed": "run: exit 1",
    "tolerated": "continue-on-error: true\n    run: exit 1",
    # the runner is the shell's parent: this is Ctrl-C during the step
    "cancelled": "run: |\n      kill -INT $PPID\n      sleep 30",
}
ALL = frozenset(PRIORS)
NONE: frozenset[str] = frozenset()

#: condition key, the step's extra YAML, the prior states in which the step runs
CONDITIONS: list[tuple[str, str, frozenset[str]]] = [
    ("default", "", frozenset({"succeeded", "tolerated"})),
    ("success", "if: success()", frozenset({"succeeded", "tolerated"})),
    ("failure", "if: failure()", frozenset({"failed"})),
    ("always", "if: always()", ALL),
    ("cancelled", "if: cancelled()", frozenset({"cancelled"})),
    ("failure-or-cancelled", "if: failure() || cancelled()", frozenset({"failed", "cancelled"})),
    ("success-and-true", "if: success() && env.X == 'yes'", frozenset({"succeeded", "tolerated"})),
    ("success-and-false", "if: success() && env.X == 'no'", NONE),
    ("implicit", "if: env.X == 'yes'", frozenset({"succeeded", "tolerated"})),
    ("implicit-wrapped", "if: ${{ env.X == 'yes' }}", frozenset({"succeeded", "tolerated"})),
    ("implicit-false", "if: env.X == 'no'", NONE),
    ("always-and-false", "if: always() && env.X == 'no'", NONE),
    ("if-false", "if: false", NONE),
    ("if-true", "if: true", frozenset({"succeeded", "tolerated"})),
    # GitHub's outcome/conclusion split, seen by a later step's condition
    (
        "tolerated-outcome",
        "if: steps.prior.outcome == 'failure' && steps.prior.conclusion == 'success'",
        frozenset({"tolerated"}),
    ),
    (
        "cancelled-outcome",
        "if: always() && steps.prior.outcome == 'cancelled'",
        frozenset({"cancelled"}),
    ),
    # Octopus "Variable" run conditions: substituted, judged by Octopus truthiness, whatever
    # the state of the deployment (a cancellation sets Octopus.Deployment.Error too: a cancelled
    # deployment did not succeed, issue #19)
    (
        "octopus-error",
        'if: "#{if Octopus.Deployment.Error}true#{/if}"',
        frozenset({"failed", "cancelled"}),
    ),
    (
        "octopus-no-error",
        'if: "#{unless Octopus.Deployment.Error}true#{/unless}"',
        frozenset({"succeeded", "tolerated"}),
    ),
    ("octopus-flag", 'if: "#{Flag}"', ALL),
    ("octopus-flag-false", 'if: "#{NoFlag}"', NONE),
    ("octopus-flag-zero", 'if: "#{Zero}"', NONE),
    # as in Octostache, an unknown variable is left as written, and "#{NotDefined}" is truthy
    ("octopus-undefined", 'if: "#{NotDefined}"', ALL),
    (
        "octopus-status",
        """if: '#{if Octopus.Step[prior].Status.Code == "Failed"}yes#{/if}'""",
        frozenset({"failed"}),
    ),
    # environment scope and --skip come before the condition
    ("in-scope", "environments: [staging]", frozenset({"succeeded", "tolerated"})),
    ("in-scope-always", "environments: [staging]\n    if: always()", ALL),
    ("out-of-scope", "environments: [production]\n    if: always()", NONE),
    ("excluded", "exclude-environments: [staging]\n    if: always()", NONE),
    ("not-excluded", "exclude-environments: [production]\n    if: always()", ALL),
    ("skipped", "if: always()", NONE),
]
SKIPPED = ("c-skipped",)

WORKFLOW = """
name: conditions
env:
  X: "yes"
variables:
  Flag: "True"
  NoFlag: "False"
  Zero: "0"
steps:
  - id: prior
    name: Prior
    {prior}
{conditions}
  - id: probe
    name: Probe
    if: always()
    env:
      OUTCOME: ${{{{ steps.prior.outcome }}}}
      CONCLUSION: ${{{{ steps.prior.conclusion }}}}
      OCTOPUS: "#{{Octopus.Step[Prior].Status.Code}}"
    run: |
      echo "outcome=$OUTCOME" >> "$GITHUB_OUTPUT"
      echo "conclusion=$CONCLUSION" >> "$GITHUB_OUTPUT"
      echo "octopus=$OCTOPUS" >> "$GITHUB_OUTPUT"
"""


def workflow_text(prior: str) -> str:
    steps = []
    for key, extra, _ in CONDITIONS:
        lines = [f"  - id: c-{key}", f"    name: {key}", '    run: "true"']
        if extra:
            lines.insert(2, f"    {extra}")
        steps.append("\n".join(lines))
    return WORKFLOW.format(prior=PRIORS[prior], conditions="\n".join(steps))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Each prior state's run, once for the module (the runner as a subprocess)."""
    result = {}
    for prior in PRIORS:
        ws = Workspace(tmp_path_factory.mktemp(prior))
        args = [arg for step in SKIPPED for arg in ("--skip", step)]
        result[prior] = ws.cli(workflow_text(prior), *args)
    return result


@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize(
    ("key", "runs_in"), [(k, r) for k, _, r in CONDITIONS], ids=[k for k, _, _ in CONDITIONS]
)
def test_condition_against_prior_state(
    runs: dict[str, Outcome], key: str, runs_in: frozenset[str], prior: str
) -> None:
    step = runs[prior].step(f"c-{key}")
    if prior in runs_in:
        assert (step.status, step.outcome, step.conclusion) == ("success",) * 3
        assert step.attempts == 1
    else:
        assert (step.status, step.outcome, step.conclusion) == ("skipped",) * 3
        assert step.started_at is None
        assert step.attempts == 0


@pytest.mark.parametrize(
    ("prior", "status", "outcome", "conclusion", "run_status", "code"),
    [
        ("succeeded", "success", "success", "success", "success", 0),
        ("failed", "failure", "failure", "failure", "failure", 1),
        ("tolerated", "failure", "failure", "success", "success", 0),
        ("cancelled", "cancelled", "cancelled", "cancelled", "cancelled", 130),
    ],
)
def test_prior_step_and_run_result(
    runs: dict[str, Outcome],
    prior: str,
    status: str,
    outcome: str,
    conclusion: str,
    run_status: str,
    code: int,
) -> None:
    run = runs[prior]
    assert run.code == code, run.err
    step = run.step("prior")
    assert (step.status, step.outcome, step.conclusion) == (status, outcome, conclusion)
    assert (run.record.status, run.record.exit_code) == (run_status, code)
    assert run.record.job_status == ("failure" if prior == "failed" else "success")


@pytest.mark.parametrize(
    ("prior", "outcome", "conclusion", "octopus"),
    [
        ("succeeded", "success", "success", "Succeeded"),
        ("failed", "failure", "failure", "Failed"),
        ("tolerated", "failure", "success", "Succeeded"),
        ("cancelled", "cancelled", "cancelled", "Canceled"),
    ],
)
def test_later_steps_see_outcome_and_conclusion(
    runs: dict[str, Outcome], prior: str, outcome: str, conclusion: str, octopus: str
) -> None:
    probe = runs[prior].step("probe")
    assert probe.outcome == "success"
    assert probe.outputs == {"outcome": outcome, "conclusion": conclusion, "octopus": octopus}


@pytest.mark.parametrize(
    ("key", "prior", "reason"),
    [
        ("default", "succeeded", "the steps before succeeded"),
        ("default", "failed", "the deployment has failed"),
        ("default", "cancelled", "the deployment has been cancelled"),
        ("implicit", "failed", "the deployment has failed"),
        ("implicit", "succeeded", "`env.X == 'yes'` is true"),
        ("implicit-false", "succeeded", "`env.X == 'no'` is false"),
        ("success-and-false", "succeeded", "`success() && env.X == 'no'` is false"),
        ("failure", "succeeded", "`failure()` is false"),
        ("always", "failed", "`always()` is true"),
        ("if-false", "succeeded", "`if: false`"),
        ("octopus-error", "succeeded", "variable condition is false"),
        ("octopus-flag", "failed", "variable condition is true"),
        ("out-of-scope", "succeeded", "only in production"),
        ("excluded", "failed", "excluded from staging"),
        ("skipped", "succeeded", "skipped with --skip"),
    ],
)
def test_reason_recorded(runs: dict[str, Outcome], key: str, prior: str, reason: str) -> None:
    assert runs[prior].step(f"c-{key}").reason == reason


def test_skipped_steps_are_logged_with_reason(runs: dict[str, Outcome]) -> None:
    lines = runs["succeeded"].lines()
    assert "- skipped: skipped (skipped with --skip)" in lines
    assert "- out-of-scope: skipped (only in production)" in lines
    assert "- failure: skipped (`failure()` is false)" in lines


# -- --skip -------------------------------------------------------------------------------

SKIP_WORKFLOW = """
name: skipping
approvals:
  trust:
    people: people.yml
steps:
  - id: build
    name: Build it
    required: true
    run: echo build
  - id: approve
    name: Approve
    environments: [production]
    manual:
      teams: [ops]
  - id: approve-anyone
    name: Approve anyone
    manual:
      instructions: anyone may approve
  - id: deploy
    name: Deploy
    run: echo deploy
"""


@pytest.mark.parametrize(
    ("skip", "message"),
    [
        ("build", "error: --skip build: step `build` cannot be skipped: it is required"),
        ("Build it", "error: --skip Build it: step `build` cannot be skipped: it is required"),
        (
            "approve",
            "error: --skip approve: step `approve` cannot be skipped: its manual step names teams",
        ),
        ("nothing", "error: --skip nothing: no step has this id or name"),
    ],
)
def test_skip_refused(workspace: Workspace, skip: str, message: str) -> None:
    result = workspace.run(SKIP_WORKFLOW, "--skip", skip)
    assert result.code == 2
    assert result.err.splitlines()[0] == message
    assert result.out == ""
    assert not result.record_path.exists()


def test_skip_by_id_and_name(workspace: Workspace) -> None:
    result = workspace.run(SKIP_WORKFLOW, "--skip", "approve-anyone", "--skip", "DEPLOY")
    assert result.code == 0, result.err
    assert result.statuses() == {
        "build": "success",
        "approve": "skipped",
        "approve-anyone": "skipped",
        "deploy": "skipped",
    }
    assert [result.step(s).reason for s in ("approve", "approve-anyone", "deploy")] == [
        "only in production",
        "skipped with --skip",
        "skipped with --skip",
    ]


def test_skip_manual_step_without_teams(workspace: Workspace) -> None:
    workspace.write(
        """
        name: skipping
        steps:
          - id: approve
            name: Approve
            manual:
              instructions: anyone may approve
          - id: deploy
            name: Deploy
            run: echo deploying
        """
    )
    result = workspace.run(workspace.root / "deploy.yml", "--skip", "Approve")
    assert result.code == 0, result.err
    assert result.statuses() == {"approve": "skipped", "deploy": "success"}
    assert result.step("approve").reason == "skipped with --skip"
    assert "  deploying" in result.lines()


def test_skipped_step_outputs_are_empty_for_later_steps(workspace: Workspace) -> None:
    result = workspace.run(
        """
        name: skipped outputs
        steps:
          - id: build
            name: Build
            run: echo "version=1.2" >> "$GITHUB_OUTPUT"
          - id: use
            name: Use
            run: |
              echo "seen=[${{ steps.build.outputs.version }}]" >> "$GITHUB_OUTPUT"
              echo "outcome=${{ steps.build.outcome }}" >> "$GITHUB_OUTPUT"
        """,
        "--skip",
        "build",
    )
    assert result.code == 0, result.err
    assert result.step("use").outputs == {"seen": "[]", "outcome": "skipped"}


# -- an expression that fails when it is evaluated names its place in the workflow -------------

#: each step's `${{ }}` parses (the load checks it) and fails only with the run's values
FAILING_AT_RUN_TIME = """
name: late errors
steps:
  - id: in-run
    name: In run
    continue-on-error: true
    run: echo "${{ fromJSON('{not json') }}"
  - id: in-folder
    name: In folder
    continue-on-error: true
    working-directory: ${{ fromJSON('[') }}
    run: "true"
  - id: in-with
    name: In with
    continue-on-error: true
    uses: ./actions/greet
    with:
      who: ${{ fromJSON('{') }}
  - id: in-env
    name: In env
    continue-on-error: true
    env:
      X: ${{ fromJSON('[1,') }}
    run: echo "$X"
"""

GREET = """
name: greet
inputs:
  who:
    required: true
runs:
  using: composite
  steps:
    - run: echo "hello ${{ inputs.who }}"
      shell: bash
"""


def test_an_expression_failing_at_run_time_names_its_file_line_and_column(
    workspace: Workspace,
) -> None:
    workspace.action("greet", GREET)
    result = workspace.run(FAILING_AT_RUN_TIME, env={"CI": ""})
    # where the failing `${{` is, in the record and the log
    expected = {"in-run": "6:16", "in-folder": "10:24", "in-with": "17:12", "in-env": "22:10"}
    for step_id, at in expected.items():
        error = result.step(step_id).error or ""
        assert f"deploy.yml:{at}: Error parsing JSON" in error, (step_id, error)
        # an `error:` line of the step, or (an error found deciding it) the step's failed line
        assert any(error in line for line in result.out.splitlines()), (step_id, result.out)
    assert "-0.0s" not in result.out


def test_an_expression_deep_in_a_long_script_is_named_at_its_own_line(
    workspace: Workspace,
) -> None:
    # a forty-line script: the line of the `${{`, not the `run: |` above it
    lines = [f"      echo line {n}" for n in range(40)]
    lines[30] = '      echo "deploying ${{ fromJSON(steps.meta.outputs.json).version }}"'
    script = "\n".join(lines)
    workflow = (
        "name: long script\n"
        "steps:\n"
        "  - id: meta\n"
        "    name: Meta\n"
        "    run: echo 'json=not json' >> \"$RUNNER_OUTPUT\"\n"
        "  - id: deploy\n"
        "    name: Deploy\n"
        f"    run: |\n{script}\n"
        "  - id: escaped\n"
        "    name: Escaped\n"
        "    if: always()\n"
        # escapes move the value's text against the file's: the start of the value, never a
        # wrong place
        '    run: "echo \\"\\t\\" ${{ fromJSON(steps.meta.outputs.json) }}"\n'
    )
    result = workspace.run(workflow)
    assert result.code != 0
    deploy_error = result.step("deploy").error or ""
    assert "deploy.yml:39:23: Error parsing JSON" in deploy_error, deploy_error
    assert f"{deploy_error}" in result.out
    assert "deploy.yml:52:10: Error parsing JSON" in (result.step("escaped").error or "")


def test_an_expression_in_the_workflows_env_is_named_at_its_own_value(
    workspace: Workspace,
) -> None:
    # the workflow's env is substituted for each step: its failing value, not the file's top
    result = workspace.run(
        """
        name: late errors
        env:
          FINE: fine
          BROKEN: "v${{ fromJSON('[') }}"
        steps:
          - id: one
            name: One
            env:
              A: a
              B: ${{ fromJSON('{') }}
            run: echo
        """
    )
    assert result.code != 0
    assert "deploy.yml:4:13: Error parsing JSON" in (result.step("one").error or "")


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        (
            "env:\n                V: ${{ fromJSON(inputs.meta).v }}",
            "action.yml:11:12: Error parsing JSON",
        ),
        # its working-directory's expression and missing folder were named at the calling
        # step, in the workflow
        (
            "working-directory: ${{ fromJSON(inputs.meta).dir }}",
            "action.yml:10:26: Error parsing JSON",
        ),
        (
            "working-directory: missing-${{ inputs.meta }}",
            "action.yml:10:26: working-directory `missing-not json` "
            "(from `missing-${{ inputs.meta }}`) does not exist",
        ),
    ],
    ids=["env", "working-directory", "missing-folder"],
)
def test_an_expression_in_a_composite_actions_step_is_named_in_the_actions_file(
    workspace: Workspace, keys: str, error: str
) -> None:
    workspace.action(
        "inside",
        f"""
        name: inside
        inputs:
          meta:
            required: true
        runs:
          using: composite
          steps:
            - name: Show
              shell: bash
              {keys}
              run: pwd
        """,
    )
    result = workspace.run(
        """
        name: composite errors
        steps:
          - id: inside
            name: Inside
            uses: ./actions/inside
            with:
              meta: not json
        """
    )
    assert result.code != 0
    said = result.step("inside").error or ""
    assert f"actions/inside/{error}" in said, said


def test_a_manual_steps_text_failing_at_the_start_names_its_place(workspace: Workspace) -> None:
    """A manual step's instructions that read no step's output are rendered when the run is
    planned, before any step: one that cannot be fails the run there."""
    result = workspace.run(
        """
        name: late errors
        steps:
          - id: gate
            name: Gate
            manual:
              instructions: Check ${{ fromJSON('x') }}
        """
    )
    assert result.code != 0
    assert "deploy.yml:6:27: Error parsing JSON" in result.out + result.err
