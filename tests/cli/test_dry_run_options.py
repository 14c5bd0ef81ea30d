"""``--assume`` and ``--field`` decide a dry run's manual steps: ``runner run`` refuses them
without ``--dry-run``. They were ignored without a word and a real deployment ran (newcomer
pass: ``--assume abort``, meant to try the abort path, deployed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import cli_in

WORKFLOW = """\
name: Gate
steps:
  - id: deploy
    name: Deploy
    run: touch DEPLOYED
"""


@pytest.mark.parametrize(
    ("options", "given"),
    [
        (("--assume", "abort"), "--assume only applies"),
        (("--assume", "proceed"), "--assume only applies"),
        (("--field", "ticket=CHG-1"), "--field only applies"),
        (("--assume", "abort", "--field", "ticket=CHG-1"), "--assume and --field only apply"),
    ],
    ids=["abort", "proceed", "field", "both"],
)
def test_run_refuses_dry_run_options_without_dry_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: tuple[str, ...], given: str
) -> None:
    (tmp_path / "w.yml").write_text(WORKFLOW, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev", *options)
    assert (result.returncode, result.stdout) == (2, ""), result
    them = "them" if " and " in given else "it"
    assert result.stderr == (
        f"error: {given} with --dry-run (how a dry run decides manual steps); without it a real "
        "deployment runs and people decide them\n"
        f"hint: add --dry-run to see the plan, or leave {them} out to deploy\n"
    )
    assert not (tmp_path / "DEPLOYED").exists()
    assert not (tmp_path / ".runner").exists()


def test_with_dry_run_they_decide_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w.yml").write_text(WORKFLOW, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    argv = ("run", "w.yml", "--env", "dev", "--dry-run", "--assume", "abort", "--field", "a=b")
    result = cli_in(monkeypatch, tmp_path, environ, *argv)
    assert result.returncode == 0, result
    assert not (tmp_path / "DEPLOYED").exists()
