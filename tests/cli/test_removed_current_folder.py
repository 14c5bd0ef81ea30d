"""A command run from a folder that no longer exists (removed by a checkout or a clean-up while
the shell stayed in it) is a usage error that says so: it was an internal error (exit 70, a
crash log) for every command that finds the workspace."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers.environ import host_env
from helpers.run_helpers import RUNNER

WORKFLOW = "name: Hello\nsteps:\n  - id: hi\n    name: Hi\n    run: echo hello\n"


@pytest.mark.parametrize(
    "command",
    [("validate", "{w}"), ("run", "{w}", "--env", "dev"), ("plan", "{w}", "--env", "dev"),
     ("runs", "list")],
    ids=["validate", "run", "plan", "runs list"],
)  # fmt: skip
def test_a_removed_current_folder_is_a_usage_error(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    workflow = tmp_path / "w.yml"
    workflow.write_text(WORKFLOW)
    gone = tmp_path / "gone"
    gone.mkdir()
    argv = " ".join(f"'{part.format(w=workflow)}'" for part in command)
    done = subprocess.run(
        ["bash", "-c", f"cd '{gone}' && rmdir '{gone}' && exec '{RUNNER}' {argv}"],
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: the current folder cannot be used: No such file")
    assert "hint: cd to the workspace" in done.stderr
    assert "internal error" not in done.stderr
