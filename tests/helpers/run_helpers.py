"""Shared fixtures for the run tests: a workspace in ``tmp_path``, runs in-process (through
``runner.cli.main.main``) and as a ``runner`` subprocess, and the record a run leaves.

Every folder imports it as ``helpers.run_helpers``; a folder's ``conftest.py`` re-exports the
``workspace`` fixture where its tests use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import waiting
from helpers.environ import HOST_VARIABLES
from runner.cli.main import main
from runner.engine.record import RunRecord, StepRecord
from runner.process import group_running

ROOT = Path(__file__).resolve().parents[2]
#: the installed console script beside the venv's interpreter
RUNNER = Path(sys.executable).with_name("runner")

#: the outer CI's variables (they choose the log format, the run id and where outputs go), and
#: the host's NO_COLOR: a workspace's runs print as the runner does by default
CI_VARIABLES = (*HOST_VARIABLES, "NO_COLOR")

RUN_ID = "run-1"


@dataclass
class Outcome:
    """What a finished run left: its exit code, its output and its record."""

    code: int
    out: str
    err: str
    state_dir: Path
    run_id: str

    @property
    def record_path(self) -> Path:
        return self.state_dir / "runs" / self.run_id / "record.json"

    @property
    def record_text(self) -> str:
        return self.record_path.read_text(encoding="utf-8")

    @property
    def record(self) -> RunRecord:
        return RunRecord.from_json(self.record_text)

    def step(self, step_id: str) -> StepRecord:
        return self.record.step(step_id)

    def statuses(self) -> dict[str, str]:
        return {s.id: s.status for s in self.record.steps}

    def events(self) -> list[dict[str, Any]]:
        """The ``--format json`` events (every line must parse)."""
        return [json.loads(line) for line in self.out.splitlines()]

    def lines(self) -> list[str]:
        return self.out.splitlines()


class Workspace:
    """A repository-like folder (it has ``.git``) holding workflows and local actions."""

    def __init__(
        self,
        root: Path,
        monkeypatch: pytest.MonkeyPatch | None = None,
        capsys: pytest.CaptureFixture[str] | None = None,
    ) -> None:
        self.root = root
        self.state_dir = root / ".state"
        self._monkeypatch = monkeypatch
        self._capsys = capsys
        (root / ".git").mkdir(parents=True, exist_ok=True)

    # -- files -----------------------------------------------------------------------------

    def write(self, text: str, name: str = "deploy.yml") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def action(self, name: str, text: str) -> Path:
        """Write ``actions/NAME/action.yml``."""
        return self.write(text, f"actions/{name}/action.yml")

    def copy_action(self, name: str) -> Path:
        """Copy one of the project's own actions (``ROOT/actions/NAME``) into the workspace."""
        target = self.root / "actions" / name
        shutil.copytree(ROOT / "actions" / name, target)
        return target

    def argv(
        self, workflow: Path, args: Sequence[str], environment: str, run_id: str | None
    ) -> list[str]:
        argv = ["run", str(workflow), "--env", environment, "--state-dir", str(self.state_dir)]
        if run_id is not None:
            argv += ["--run-id", run_id]
        return [*argv, *args]

    # -- running -------------------------------------------------------------------------

    def run(
        self,
        workflow: str | Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        environment: str = "staging",
        run_id: str = RUN_ID,
    ) -> Outcome:
        """Run in this process through ``runner.cli.main.main``; output captured by capsys."""
        assert self._monkeypatch is not None and self._capsys is not None, "use cli() here"
        path = workflow if isinstance(workflow, Path) else self.write(workflow)
        self._capsys.readouterr()
        with self._monkeypatch.context() as patch:
            patch.chdir(self.root)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            code = main(self.argv(path, args, environment, run_id))
        captured = self._capsys.readouterr()
        return Outcome(code, captured.out, captured.err, self.state_dir, run_id)

    def environ(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
        environ.update(env or {})
        return environ

    def spawn(
        self,
        workflow: str | Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        environment: str = "staging",
        run_id: str = RUN_ID,
        stdout: Any = subprocess.PIPE,
    ) -> subprocess.Popen[str]:
        """Start the ``runner`` CLI as a subprocess (for signals, kills and big output)."""
        path = workflow if isinstance(workflow, Path) else self.write(workflow)
        return subprocess.Popen(
            [str(RUNNER), *self.argv(path, args, environment, run_id)],
            cwd=self.root,
            env=self.environ(env),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cli(
        self,
        workflow: str | Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        environment: str = "staging",
        run_id: str = RUN_ID,
        timeout: float = 60,
    ) -> Outcome:
        """Run the ``runner`` CLI as a subprocess to its end."""
        proc = self.spawn(workflow, *args, env=env, environment=environment, run_id=run_id)
        out, err = proc.communicate(timeout=timeout)
        return Outcome(proc.returncode, out, err, self.state_dir, run_id)


@pytest.fixture
def workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Workspace]:
    """An empty workspace, with the outer CI's variables removed from the environment."""
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield Workspace(tmp_path / "ws", monkeypatch, capsys)


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true (a synchronisation aid, never a timing assertion)."""
    waiting.wait_for(predicate, timeout, what)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until_killed(pid_file: Path, what: str) -> None:
    """Wait until the process whose pid a step wrote to ``pid_file`` is gone (the runner
    stopped the step's whole group); killed here if it is not, so no test leaves it behind."""
    pid = int(pid_file.read_text())
    try:
        wait_for(lambda: not pid_alive(pid), what=f"{what} to be killed")
    finally:
        kill_quietly(pid)


def kill_quietly(pid: int, *, group: bool = False) -> None:
    """SIGKILL a process (or its whole process group) that a test left behind, if still there.
    A group is waited for until none of it runs: SIGKILL takes effect as each member is next
    scheduled, and a ``runner resume`` started at once found the killed step's group running."""
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    if group:
        wait_for(lambda: not group_running(pid), what=f"process group {pid} to end")
