"""A workflow file that is not there is a usage error (exit 2) for every command, said without a
position (it has no line) and with the nearest workflow file beside it. ``runner validate``
exited 1 and the others 2, each with a meaningless ``:1:1:`` and no suggestion (newcomer
pass); a folder given to ``validate`` checks the workflow files in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import cli_in

WORKFLOW = """\
name: Hello
steps:
  - id: hi
    name: Hi
    run: echo hello
"""

BROKEN = "name: Broken\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "deploy-webapp.yml").write_text(WORKFLOW, encoding="utf-8")
    (tmp_path / "workflows" / "rollback.yml").write_text(WORKFLOW, encoding="utf-8")
    return tmp_path


def runner(monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str) -> tuple[int, str, str]:
    environ = {"PATH": os.environ["PATH"], "HOME": str(cwd), "NO_COLOR": "1"}
    done = cli_in(monkeypatch, cwd, environ, *args)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("validate",),
        ("run", "--env", "dev"),
        ("plan", "--env", "dev"),
        ("run", "--env", "dev", "--dry-run"),
    ],
    ids=["validate", "run", "plan", "dry-run"],
)
def test_a_mistyped_file_is_a_usage_error_with_the_nearest_name(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    name, *rest = command
    code, out, err = runner(monkeypatch, workspace, name, "workflows/deploy-webap.yml", *rest)
    assert (code, out) == (2, "")
    assert err == (
        "error: workflows/deploy-webap.yml: no such file\n"
        "hint: did you mean workflows/deploy-webapp.yml?\n"
    )
    assert not (workspace / ".runner").exists()


def test_approval_verify_names_the_workflow_it_cannot_find(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = runner(
        monkeypatch,
        workspace,
        "approval",
        "verify",
        "a.json",
        "--workflow",
        "workflows/rolback.yml",
    )
    assert code == 2
    assert err == (
        "error: workflows/rolback.yml: no such file\nhint: did you mean workflows/rollback.yml?\n"
    )


def test_nothing_near_and_no_folder(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = runner(monkeypatch, workspace, "validate", "workflows/zzz.yml")
    assert (code, err) == (2, "error: workflows/zzz.yml: no such file\n")
    code, _, err = runner(monkeypatch, workspace, "validate", "flows/deploy.yml")
    assert (code, err) == (
        2,
        "error: flows/deploy.yml: no such file\nhint: there is no folder flows\n",
    )


def test_one_missing_file_among_several_reports_nothing_else(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "workflows" / "broken.yml").write_text(BROKEN, encoding="utf-8")
    code, out, err = runner(
        monkeypatch, workspace, "validate", "workflows/broken.yml", "workflows/rollbak.yml"
    )
    assert (code, out) == (2, "")
    assert err.startswith("error: workflows/rollbak.yml: no such file\n")


def test_validate_checks_the_workflow_files_of_a_folder(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runner(monkeypatch, workspace, "validate", "workflows") == (0, "", "")
    (workspace / "workflows" / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    code, out, _ = runner(monkeypatch, workspace, "validate", "workflows")
    assert code == 1
    assert out.startswith("workflows/broken.yaml:1:1: the workflow is missing the required key")
    (workspace / "empty").mkdir()
    code, out, err = runner(monkeypatch, workspace, "validate", "empty")
    assert (code, out) == (2, "")
    assert err == (
        "error: empty is a folder holding no *.yml or *.yaml file\n"
        "hint: name the workflow files to check, or a folder that holds them\n"
    )
