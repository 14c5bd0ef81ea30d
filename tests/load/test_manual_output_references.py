"""A manual step's outputs are known before the run: its six, and one per field. A misspelt one
(``steps.gate.outputs.aproved``, ``#{Octopus.Action[Gate].Output.Manual.Notse}``) is always empty
or left as written, and a condition reading it decides the same way whatever the approver said;
``runner validate`` refuses it where it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.load import check_file
from runner.model import MANUAL_OCTOPUS_OUTPUTS, MANUAL_OUTPUTS, Identity
from runner.steps.outputs import manual_outputs

WORKFLOW = """\
name: Typo
steps:
  - id: build
    name: Build
    run: echo "v=1" >> "$RUNNER_OUTPUT"
  - id: gate
    name: Gate Check
    manual:
      fields:
        - name: ticket
          type: string
  - id: deploy
    name: Deploy
    if: {condition}
    env:
      VALUE: {value}
    run: echo "$VALUE"
"""


def problems(tmp_path: Path, *, value: str = "x", condition: str = "always()") -> list[str]:
    path = tmp_path / "w.yml"
    path.write_text(WORKFLOW.format(value=value, condition=condition), encoding="utf-8")
    loaded = check_file(path)
    return [f"{d.location.line}:{d.location.column}: {d.message}" for d in loaded.diagnostics]


OUTPUTS = (
    "approved, notes, responsible-user-id, responsible-user-username, "
    "responsible-user-display-name, responsible-user-email, ticket"
)


@pytest.mark.parametrize(
    "condition",
    [
        "steps.gate.outputs.aproved == 'true'",
        "${{ steps.gate.outputs['aproved'] != 'false' }}",
        "always() && steps.gate.outputs.aproved == 'true'",
    ],
)
def test_a_misspelt_output_in_a_condition_is_an_error(tmp_path: Path, condition: str) -> None:
    found = problems(tmp_path, condition=condition)
    assert len(found) == 1, found
    assert found[0].startswith("14:")
    assert found[0].endswith(
        f"manual step `gate` has no output `aproved`, so this is always empty (its outputs: "
        f"{OUTPUTS})"
    )


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ('"#{Octopus.Action[Gate Check].Output.Manual.Notse}"', "Manual.Notse"),
        ('"#{Octopus.Action[gate check].Output.Manual.tikcet | ToUpper}"', "Manual.tikcet"),
        (
            '"#{if Octopus.Action[Gate Check].Output.Manual.Aproved == \\"True\\"}y#{/if}"',
            "Manual.Aproved",
        ),
        ('"#{Octopus.Action[Gate Check].Output.Approved}"', "Approved"),
    ],
)
def test_a_misspelt_output_variable_is_an_error(tmp_path: Path, value: str, name: str) -> None:
    found = problems(tmp_path, value=value)
    assert len(found) == 1, found
    assert found[0].startswith("16:")
    assert f"manual step 'Gate Check' has no output variable `{name}`" in found[0]
    assert "Manual.Notes, Manual.Approved, " in found[0] and found[0].endswith("Manual.ticket)")


def test_the_error_points_at_the_read_not_at_an_escaped_copy(tmp_path: Path) -> None:
    name = "Octopus.Action[Gate Check].Output.Manual.Nope"
    value = f'"##{{{name}}} #{{{name}}}"'
    found = problems(tmp_path, value=value)
    assert len(found) == 1, found
    # the value's quote is at column 14; the read is the second copy, after " #{"
    assert found[0].startswith(f"16:{14 + value.index(' #{') + 3}:"), found


@pytest.mark.parametrize(
    "value",
    [
        *(f"${{{{ steps.gate.outputs.{name} }}}}" for name in MANUAL_OUTPUTS),
        "${{ steps.gate.outputs.TICKET }}",
        "${{ steps.gate.outputs['Approved'] }}",
        "${{ toJSON(steps.gate.outputs) }}",
        *(f'"#{{Octopus.Action[Gate Check].Output.{name}}}"' for name in MANUAL_OCTOPUS_OUTPUTS),
        '"#{Octopus.Action[GATE CHECK].Output.manual.TICKET}"',
        # a script step's outputs are whatever it writes: not checked
        "${{ steps.build.outputs.anything }}",
        '"#{Octopus.Action[Build].Output.anything}"',
        # what `#{}` does not read: a calculation's operators, an escape, text outside it
        '"#{calc Octopus.Action[Gate Check].Output.Manual.ticket*2}"',
        '"#{calc Octopus.Action[Gate Check].Output.Manual.ticket+1}"',
        '"##{Octopus.Action[Gate Check].Output.Manual.Nope}"',
        '"see Octopus.Action[Gate Check].Output.Manual.Notes, #{Octopus.Deployment.Name}"',
    ],
)
def test_the_outputs_a_manual_step_gives_are_fine(tmp_path: Path, value: str) -> None:
    assert problems(tmp_path, value=value) == []


def test_the_checked_names_are_the_ones_a_manual_step_sets() -> None:
    outputs, octopus = manual_outputs(True, "n", Identity("i", "u", "d", "e"), {"ticket": "T"})
    assert list(outputs) == [*MANUAL_OUTPUTS, "ticket"]
    assert list(octopus) == [*MANUAL_OCTOPUS_OUTPUTS, "Manual.ticket"]
