"""A secret in an expression's error message: GitHub's `format()` quotes the format string it
refuses, and a secret input holding ``{`` makes its own value that string. The message reached the
plan's error, the step's reason in the record, its journal line and the JSON log in clear."""

from __future__ import annotations

import pytest
from helpers.run_helpers import Workspace

from runner.cli.main import main

SECRET = "hunter2{x"
INPUTS = f"""\
inputs:
  token:
    secret: true
    default: "{SECRET}"
"""


def test_a_failing_condition_quoting_a_secret_input_leaves_it_nowhere(
    workspace: Workspace,
) -> None:
    result = workspace.run(
        "name: leak\n" + INPUTS + "steps:\n"
        "  - id: a\n"
        "    name: A\n"
        "    if: format(inputs.token) == 'x'\n"
        "    run: echo a\n",
        "--format",
        "json",
    )
    assert result.code != 0
    assert "The following format string is invalid: ***" in (result.step("a").error or "")
    assert SECRET not in result.out + result.err
    for path in workspace.state_dir.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_a_manual_text_quoting_a_secret_input_is_masked_in_the_plans_error(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workspace.write(
        "name: leak\n" + INPUTS + "steps:\n"
        "  - id: g\n"
        "    name: G\n"
        "    manual:\n"
        '      title: "T ${{ format(inputs.token) }}"\n'
    )
    assert main(["plan", str(path), "--env", "dev"]) == 2
    err = capsys.readouterr().err
    assert "The following format string is invalid: ***" in err
    assert SECRET not in err
