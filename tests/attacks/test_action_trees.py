"""Composite actions from the deployed commit: a chain of actions each using the next.

A run refuses to nest actions more than 10 deep (``load.action.MAX_NESTING``), but `runner
validate` (and so `run` and `plan`, which validate first) walked the whole chain recursively:
1,200 actions in a chain ended in a ``RecursionError``, an internal error (exit 70) no one can
act on. The chain is now refused where it passes the limit, at the `uses:` that does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import cli_in

WORKFLOW = "name: chain\nsteps:\n  - id: a\n    name: A\n    uses: ./actions/a1\n"


def chain(root: Path, length: int) -> None:
    for i in range(1, length + 1):
        folder = root / "actions" / f"a{i}"
        folder.mkdir(parents=True)
        step = (
            f"    - uses: ./actions/a{i + 1}\n"
            if i < length
            else "    - run: echo bottom\n      shell: bash\n"
        )
        (folder / "action.yml").write_text(
            f"name: a{i}\nruns:\n  using: composite\n  steps:\n{step}", encoding="utf-8"
        )
    (root / "w.yml").write_text(WORKFLOW, encoding="utf-8")
    (root / ".git").mkdir()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_chain_of_a_thousand_actions_is_refused_not_a_crash(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain(tmp_path, 1200)
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    argv = ["validate", "w.yml"] if command == "validate" else ["run", "w.yml", "--env", "dev"]
    result = cli_in(monkeypatch, tmp_path, environ, *argv)
    assert result.returncode == (1 if command == "validate" else 2), result
    assert "internal error" not in result.stderr
    output = result.stdout + result.stderr
    expected = (
        "actions/a10/action.yml:5:7: actions nest more than 10 deep here (./actions/a1 -> ... "
        "-> ./actions/a10 -> ./actions/a11)"
    )
    assert expected in output


def test_a_chain_of_ten_actions_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain(tmp_path, 10)
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev")
    assert result.returncode == 0, result
    assert "  bottom\n" in result.stdout


def test_an_action_reached_again_deeper_is_checked_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each action was looked at once, where it was first reached: ``b`` uses ``a9`` itself
    (depth 2) and through ``c1 -> ... -> c8`` (depth 10), where ``a9``'s own ``uses: a10`` is
    past the limit. ``validate`` said nothing, and the run failed in the middle of the step,
    after part of it had run."""

    def action(name: str, *uses: str) -> None:
        folder = tmp_path / "actions" / name
        folder.mkdir(parents=True)
        steps = "".join(f"    - uses: ./actions/{u}\n" for u in uses) or (
            "    - run: echo leaf\n      shell: bash\n"
        )
        (folder / "action.yml").write_text(
            f"name: {name}\nruns:\n  using: composite\n  steps:\n{steps}", encoding="utf-8"
        )

    action("b", "a9", "c1")
    for i in range(1, 8):
        action(f"c{i}", f"c{i + 1}")
    action("c8", "a9")
    action("a9", "a10")
    action("a10")
    (tmp_path / "w.yml").write_text(WORKFLOW.replace("a1\n", "b\n"), encoding="utf-8")
    (tmp_path / ".git").mkdir()
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    result = cli_in(monkeypatch, tmp_path, environ, "validate", "w.yml")
    assert result.returncode == 1, result
    assert (
        "actions/a9/action.yml:5:7: actions nest more than 10 deep here (./actions/b -> ... "
        "-> ./actions/a9 -> ./actions/a10)"
    ) in result.stdout + result.stderr
    ran = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev")
    assert ran.returncode == 2, ran
    assert "leaf" not in ran.stdout
