"""`runner validate` checks the composite actions a workflow uses, as `runner run` would load
them: a broken `action.yml`, or one that uses itself, validated clean and failed only at run time
(a newcomer's review found it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli.validate import validate_files

WORKFLOW = """\
name: Uses actions
steps:
  - id: first
    name: First
    uses: ./actions/{name}
"""


def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uses: str) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "w.yml").write_text(WORKFLOW.format(name=uses), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")


def _action(tmp_path: Path, name: str, body: str) -> None:
    folder = tmp_path / "actions" / name
    folder.mkdir(parents=True)
    (folder / "action.yml").write_text(body, encoding="utf-8")


def test_a_broken_action_is_reported_with_its_file_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _workspace(tmp_path, monkeypatch, "broken")
    _action(
        tmp_path,
        "broken",
        "name: Broken\nruns:\n  using: composite\n  steps:\n    - run: echo hi\n      shel: bash\n",
    )
    code, report = validate_files(["workflows/w.yml"], "text")
    path = tmp_path / "actions" / "broken" / "action.yml"
    assert code == 1
    assert report == (
        f"{path}:5:7: a composite step needs `run` with `shell`, or `uses` [schema]\n"
        "  |\n"
        "5 |     - run: echo hi\n"
        "  |       ^\n"
        f"{path}:6:7: unexpected key `shel` in an item of `steps`; did you mean `shell`? [schema]\n"
        "  |\n"
        "6 |       shel: bash\n"
        "  |       ^~~~\n"
    )


def test_actions_that_use_each_other_are_refused_where_the_loop_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _workspace(tmp_path, monkeypatch, "ping")
    for name, other in (("ping", "pong"), ("pong", "ping")):
        _action(
            tmp_path,
            name,
            f"name: {name}\nruns:\n  using: composite\n  steps:\n    - uses: ./actions/{other}\n",
        )
    code, report = validate_files(["workflows/w.yml"], "json")
    assert code == 1
    expected = "action `./actions/pong` uses `./actions/ping` again (./actions/ping -> "
    assert f'"message": "{expected}' in report
    assert str(tmp_path / "actions" / "pong" / "action.yml") in report


def test_an_action_using_a_missing_action_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _workspace(tmp_path, monkeypatch, "outer")
    _action(
        tmp_path,
        "outer",
        "name: Outer\nruns:\n  using: composite\n  steps:\n    - uses: ./actions/gone\n",
    )
    code, report = validate_files(["workflows/w.yml"], "text")
    assert code == 1
    assert report.startswith(
        f"{tmp_path / 'actions' / 'outer' / 'action.yml'}:5:7: action `./actions/gone` not "
        "found: the repository has no actions/gone/action.yml [action]\n"
    )


def test_the_projects_own_actions_validate_clean() -> None:
    root = Path(__file__).resolve().parents[2]
    code, report = validate_files([str(root / "workflows" / "deploy-webapp.yml")], "text")
    assert (code, report) == (0, "")
