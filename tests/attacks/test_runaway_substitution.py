"""Nest it deep: variables that expand to copies of each other (``V0`` is ``#{V1}#{V1}``, down
60 levels: 2^60 copies) are refused within their work budget, and the refusal says where.

It said neither the file nor the step nor the variable: `runner plan` printed "error:
substitution needs more than 4,000,010 units of work" and a run's step failed with the same
words, in a workflow of hundreds of variables and steps.
"""

from __future__ import annotations

from helpers.run_helpers import Workspace

VARIABLES = "".join(f"  V{k}: {{value: '#{{V{k + 1}}}#{{V{k + 1}}}'}}\n" for k in range(60))
WORKFLOW = f"""\
name: deploy
variables:
{VARIABLES}  V60: {{value: z}}
steps:
  - id: first
    name: First
    run: echo fine
  - id: runaway
    name: Runaway
    run: echo "#{{V0}}"
"""


def test_plan_names_the_variable_that_runs_away(workspace: Workspace) -> None:
    path = workspace.write(WORKFLOW)
    outcome = workspace.run(path, "--dry-run", environment="dev")
    assert outcome.code == 2, outcome.err
    assert f"error: {path}:3:3: substitution needs more than" in outcome.err
    assert "hint: check for variables that expand to many copies of each other" in outcome.err


def test_a_run_names_the_key_that_runs_away(workspace: Workspace) -> None:
    path = workspace.write(WORKFLOW)
    outcome = workspace.run(path, environment="dev")
    assert outcome.code == 1, outcome.err
    assert f"error: {path}:70:10: substitution needs more than" in outcome.out
