"""A step's output variables and an approver's notes are text, never ``#{}`` templates.

The deployed commit's scripts write a step's outputs: a build script the workflow never gives a
secret could set an Octopus output variable to ``#{DbPassword}`` (or ``#{DbPassword | Substring
0 3}``) and have a later step compute it. Outputs are escaped (``##{``) so that reading one
gives its text; but read through ``#{each}`` or a JSON path, the escape was undone by a first
evaluation and the item or field evaluated again: the later step was given the secret it was
never given, and pieces of it shorter than the masker's 4 characters were printed in clear.
Real bash, the CLI in this process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.cli import cli_in

from runner.variables.octostache import substitute

SECRET = "hunter2-supersecret"

# each written at run time (`H='#'`), so that the step's own `run` is not substituted
OUTPUTS = {
    "an #{each} item": (
        'set_octopusvariable L "a,${H}{DbPassword | Substring 0 3},${H}{DbPassword}"',
        "#{each v in Octopus.Action[A].Output.L}#{v}|#{/each}",
        "a|#{DbPassword | Substring 0 3}|#{DbPassword}|",
    ),
    "a JSON field": (
        'set_octopusvariable J "{\\"f\\": \\"${H}{DbPassword}\\"}"',
        "#{Octopus.Action[A].Output.J.f}",
        "#{DbPassword}",
    ),
    "a JSON field escaped as \\u0023": (
        'set_octopusvariable J \'{"f": "\\u0023{DbPassword | Substring 0 3}"}\'',
        "#{Octopus.Action[A].Output.J.f}",
        "#{DbPassword | Substring 0 3}",
    ),
    "a #{ after a # of its own": (
        'set_octopusvariable V "${H}${H}{DbPassword | Substring 0 3}-${H}${H}{DbPassword}"',
        "#{Octopus.Action[A].Output.V}",
        "###{DbPassword | Substring 0 3}-###{DbPassword}",
    ),
    "a field of a JSON #{each} item": (
        'set_octopusvariable J "[{\\"f\\": \\"${H}{DbPassword}\\"}]"',
        "#{each o in Octopus.Action[A].Output.J}#{o.f}#{/each}",
        "#{DbPassword}",
    ),
}

WORKFLOW = """\
name: outputs
variables:
  DbPassword:
    value: {secret}
    secret: true
steps:
  - id: a
    name: A
    run: |
      H='#'
      {script}
  - id: b
    name: B
    env:
      X: {template}
    run: |
      printf 'X=[%s]\\n' "$X"
      printf '%s' "$X" | rev; echo
"""


@pytest.mark.parametrize("case", OUTPUTS, ids=list(OUTPUTS))
def test_a_step_output_read_through_each_or_json_is_not_evaluated(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, template, expected = OUTPUTS[case]
    text = WORKFLOW.format(secret=SECRET, script=script, template=json.dumps(template))
    (tmp_path / "w.yml").write_text(text, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev", "--run-id", "o")
    assert result.returncode == 0, result
    assert f"  X=[{expected}]\n" in result.stdout
    assert SECRET[::-1] not in result.stdout  # the step was never given the secret
    assert "hun|" not in result.stdout and "X=[hun]" not in result.stdout


def test_an_approvers_notes_read_through_each_are_text() -> None:
    # a manual step's notes are escaped as a step's outputs are (contexts.step_variables)
    variables = {
        "Octopus.Action[Gate].Output.Manual.Notes": "ok, ##{Secret | Substring 0 3}",
        "Secret": SECRET,
    }
    template = "#{each line in Octopus.Action[Gate].Output.Manual.Notes}[#{line}]#{/each}"
    assert substitute(template, variables) == "[ok][ #{Secret | Substring 0 3}]"


# A failed step's error is `Octopus.Deployment.ErrorDetail`, and it quotes what the step wrote
# (a `$RUNNER_OUTPUT` line that does not parse); who started the run is the deployer's word.
# Both were expanded as templates where a later step read them (the documented `always()`
# notification: `failed: #{Octopus.Deployment.ErrorDetail}`).
SYSTEM = """\
name: system
variables:
  DbPassword:
    value: {secret}
    secret: true
steps:
  - id: a
    name: A
    run: |
      H='#'
      echo "${{H}}{{DbPassword | Substring 0 3}}-${{H}}{{DbPassword}}" >> "$RUNNER_OUTPUT"
  - id: tell
    name: Tell
    if: always()
    env:
      D: "#{{if Octopus.Deployment.Error}}failed: #{{Octopus.Deployment.ErrorDetail}}#{{/if}}"
      BY: "#{{Octopus.Deployment.CreatedBy.Username}}"
    run: |
      printf 'D=[%s] BY=[%s]\\n' "$D" "$BY"
      printf '%s %s' "$D" "$BY" | rev; echo
"""


def test_an_error_and_the_starter_read_through_system_variables_are_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "w.yml").write_text(SYSTEM.format(secret=SECRET), encoding="utf-8")
    environ = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "NO_COLOR": "1",
        "RUNNER_ACTOR": "#{DbPassword | Substring 3 3}",
    }
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev", "--run-id", "e")
    assert result.returncode == 1, result
    shown = (
        "  D=[failed: Invalid format '#{DbPassword | Substring 0 3}-#{DbPassword}'] "
        "BY=[#{DbPassword | Substring 3 3}]\n"
    )
    assert shown in result.stdout
    assert SECRET[::-1] not in result.stdout
    assert "hun" not in result.stdout.replace("hunter", "")


def test_an_escaped_value_is_never_a_template() -> None:
    """``#{`` doubled into ``##{`` was the escape of outputs, inputs, notes and errors, but
    Octostache reads ``###{`` as ``#`` and a template: a value of ``##{DbPassword | Substring 0
    3}`` gave a step three letters of the secret. Every text of these characters up to 5 long
    reads as text once escaped, and as itself unless it holds an even run of ``#`` before
    ``{`` (which no Octostache text reads as)."""
    import itertools
    import re

    from runner.variables.octostache import escape

    for size in range(1, 6):
        for parts in itertools.product(["#", "{", "V", "}", "x"], repeat=size):
            value = "".join(parts)
            shown = substitute(escape(value), {"V": "SECRET"})
            assert "SECRET" not in shown, value
            if not any(len(run) % 2 == 0 for run in re.findall(r"#+(?=\{)", value)):
                assert shown == value, value
