"""`runner run` and `runner plan` without `--env`: a deployment always names its environment (its
lock, scoped variables and record are per environment), so nothing is guessed; the message says
which environments the workflow deploys to, or that any name will do. Before, click's bare
"Missing option '--env'" said neither, even for a workflow that declares none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import cli_in

UNDECLARED = """\
name: Hello
steps:
  - id: hi
    name: Hi
    run: echo hello
"""

DECLARED = """\
name: Hello
environments: [staging, production]
steps:
  - id: hi
    name: Hi
    run: echo hello
"""


@pytest.mark.parametrize("command", [["run"], ["plan"], ["run", "--dry-run"]])
def test_a_workflow_without_environments_says_any_name_will_do(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "w.yml").write_text(UNDECLARED, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = cli_in(monkeypatch, tmp_path, environ, *command, "w.yml")
    assert result.returncode == 2, result
    assert result.stderr == (
        "error: --env is missing: name the environment to deploy to\n"
        "hint: w.yml declares no `environments:`, so any name is accepted, e.g. `--env dev`; "
        "the deployment lock, scoped variables and the run's record are per environment\n"
    )
    assert not (tmp_path / ".runner").exists()  # nothing ran, nothing recorded


def test_a_workflow_with_environments_lists_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "w.yml").write_text(DECLARED, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml")
    assert result.returncode == 2, result
    assert result.stderr == (
        "error: --env is missing: w.yml deploys to `staging`, `production`\n"
        "hint: name one, e.g. `--env staging`\n"
    )


def test_a_broken_workflow_reports_its_own_problems_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "w.yml").write_text(UNDECLARED.replace("    run:", "    rn:"), encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    result = cli_in(monkeypatch, tmp_path, environ, "plan", "w.yml")
    assert result.returncode == 2, result
    assert "w.yml:5:5: unexpected key `rn` in a step; did you mean `run`? [schema]" in result.stderr
    assert "--env" not in result.stderr
