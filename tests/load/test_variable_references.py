"""A ``#{}`` name the workflow does not define is left as written at run time: ``#{DatbaseName}``
reaches the script as text, and ``if: "#{Nope}"`` counts as true, so the step runs. ``runner
validate`` passed both; it now warns where the name is written, with the nearest name it knows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.load import check_file

WORKFLOW = """\
name: Names
inputs:
  version:
    default: "1"
variables:
  DatabaseName: shop
  Creds:
    value: '{{"user": "u", "hosts": ["a"]}}'
  Database.Server: db1
steps:
  - id: a
    name: A
    if: {condition}
    run: |
      echo "{text}"
"""


def warnings(tmp_path: Path, *, text: str = "x", condition: str = "always()") -> list[str]:
    path = tmp_path / "w.yml"
    path.write_text(WORKFLOW.format(text=text, condition=condition), encoding="utf-8")
    loaded = check_file(path)
    assert loaded.workflow is not None
    return [
        f"{d.location.line}:{d.location.column}: {d.message}"
        for d in loaded.diagnostics
        if d.kind == "reference"
    ]


def test_a_misspelt_name_is_a_warning_naming_the_nearest_one(tmp_path: Path) -> None:
    assert warnings(tmp_path, text="#{DatbaseName}") == [
        "15:15: `#{DatbaseName}` names no variable or input of this workflow, nor a system "
        "variable: `#{}` finds no value for it; did you mean `#{DatabaseName}`?"
    ]


def test_an_unknown_name_in_a_condition_says_the_step_would_run(tmp_path: Path) -> None:
    [found] = warnings(tmp_path, condition='"#{Nope}"')
    assert found.startswith("13:12: `#{Nope}` names no variable")
    assert "(it stays as written, which an `if:` counts as true)" in found


@pytest.mark.parametrize(
    "text",
    [
        "#{DatabaseName}",
        "#{databasename | ToUpper}",  # names are case-insensitive
        "#{version}",  # an input
        "#{Creds.user} #{Creds.hosts[0]}",  # a field of a JSON value
        "#{Database.Server}",  # a name with a dot
        "#{Octopus.Environment.Name} #{Octopus.Deployment.Id}",
        "#{each h in Creds.hosts}#{h}#{/each}",  # the loop's own name
        "#{if DatabaseName}yes#{/if} #{calc version + 1}",
        "##{NotASubstitution}",
    ],
)
def test_names_the_workflow_or_the_runner_defines_are_not_warned_of(
    tmp_path: Path, text: str
) -> None:
    assert warnings(tmp_path, text=text) == []
