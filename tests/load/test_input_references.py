"""``inputs.<name>`` must name a declared input: an undeclared one is always empty, so a typo
(``inputs.versoin``) deployed release "" and validated clean (a newcomer's review found it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.load import check_file

WORKFLOW = """\
name: Typo
inputs:
  version: {{type: string, default: "1"}}
  Dry-Run: {{type: boolean}}
steps:
  - id: deploy
    name: Deploy
    if: {condition}
    env:
      RELEASE: {value}
    run: echo "$RELEASE"
"""


def _problems(tmp_path: Path, *, value: str, condition: str = "always()") -> list[str]:
    path = tmp_path / "w.yml"
    path.write_text(WORKFLOW.format(value=value, condition=condition), encoding="utf-8")
    loaded = check_file(path)
    return [f"{d.location.line}:{d.location.column}: {d.message}" for d in loaded.diagnostics]


@pytest.mark.parametrize(
    "value", ["${{ inputs.versoin }}", "${{ inputs['versoin'] }}", "v${{ inputs.versoin }}"]
)
def test_an_undeclared_input_is_an_error(tmp_path: Path, value: str) -> None:
    problems = _problems(tmp_path, value=value)
    assert len(problems) == 1, problems
    assert problems[0].startswith("10:")
    assert problems[0].endswith(
        "input `versoin` is not declared (inputs: version, Dry-Run); fix the name or add it "
        "under `inputs:`"
    )


def test_an_undeclared_input_in_a_condition_is_an_error(tmp_path: Path) -> None:
    problems = _problems(tmp_path, value="x", condition="inputs.dryrun")
    assert problems == [
        "8:9: input `dryrun` is not declared (inputs: version, Dry-Run); fix the name or add it "
        "under `inputs:`"
    ]


@pytest.mark.parametrize(
    "value", ["${{ inputs.version }}", "${{ inputs.VERSION }}", "${{ inputs.dry-run }}", "x"]
)
def test_declared_inputs_in_any_case_are_fine(tmp_path: Path, value: str) -> None:
    assert _problems(tmp_path, value=value) == []
