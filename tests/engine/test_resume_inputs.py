"""A resumed run has its record's inputs: one started with a required input (no default) could
not be resumed at all (`input 'version' is required`, and `--input` is refused on resume for
all but secret inputs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers.environ import host_env
from helpers.run_helpers import RUNNER

WORKFLOW = """\
name: required input
inputs:
  version:
    required: true
  count:
    type: number
    required: true
steps:
  - id: first
    name: First
    run: echo "first ${{ inputs.version }}"
  - id: second
    name: Second
    run: |
      # the first attempt kills the runner, as a lost CI machine would
      if [ ! -f "$HOME/killed" ]; then touch "$HOME/killed"; kill -9 "$PPID"; exit 1; fi
      echo "second ${{ inputs.version }} x${{ inputs.count }}"
"""


def test_a_run_with_required_inputs_resumes_with_them(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(WORKFLOW)
    env = host_env(HOME=str(tmp_path))

    def runner(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RUNNER), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    started = runner(
        "run",
        "w.yml",
        "--env",
        "e",
        "--run-id",
        "q2",
        "--input",
        "version=2.8",
        "--input",
        "count=3",
    )
    assert started.returncode == -9, started.stdout + started.stderr
    resumed = runner("resume", "q2", "--rerun-interrupted")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "second 2.8 x3" in resumed.stdout
