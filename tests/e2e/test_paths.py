"""A newcomer's commands from elsewhere than the repository root (issue #19, "Paths").

Every script step failed with ``bash: .runner/runs/.../script.sh: No such file or directory``
when the current folder was not the workspace root and the state folder was relative (the
default ``.runner`` included): from a subfolder, from ``/tmp`` with an absolute workflow path,
from a subfolder of another repository, and with ``--state-dir ../relstate``. ``runner resume``
used the workflow path as recorded: a run started from ``deploy/`` as ``srv.yml`` could not be
resumed from the root, and one started with an absolute path and resumed in another clone ran
the *original* checkout's steps.

Real ``git`` repositories and bash steps. The commands run in this process, in the folder the
test names (``cli_in`` changes into it; exit code, stdout and stderr as a process gives them):
what is tested is how the runner resolves the paths it is given from there. The runs killed
mid-step, for the resumes, are ``runner`` processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import run_helpers
from helpers.cli import cli_in

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is needed")

RUNNER = str(run_helpers.RUNNER)

WORKFLOW = """\
name: Paths
environments: [staging]
steps:
  - id: hello
    name: Hello
    uses: ./actions/hello
  - id: where
    name: Where
    run: |
      if [ -n "$HOLD" ]; then echo $$ > "$HOLD"; sleep 60; fi
      echo "ran-in=$PWD"
      echo "temp-is-absolute=$(case "$RUNNER_TEMP" in /*) echo yes;; *) echo no;; esac)"
      echo "where=$PWD" >> "$RUNNER_OUTPUT"
      pwd > ran-here.txt
"""

ACTION = """\
name: Hello
runs:
  using: composite
  steps:
    - run: echo "hello from the action"
      shell: bash
"""


def repository(path: Path, workflow: str = "workflows/deploy.yml") -> Path:
    """A git repository with a workflow using a local action, and a ``docs/`` subfolder."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)
    (path / workflow).parent.mkdir(parents=True, exist_ok=True)
    (path / workflow).write_text(WORKFLOW)
    (path / "actions" / "hello").mkdir(parents=True)
    (path / "actions" / "hello" / "action.yml").write_text(ACTION)
    (path / "docs").mkdir()
    return path


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in run_helpers.CI_VARIABLES}
    env.pop("HOLD", None)
    env.update(NO_COLOR="1", **extra)
    return env


Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Runner:
    """``runner(cwd, *args, **variables)``: ``runner ARGS`` in folder ``cwd``, in this process."""

    def run(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return cli_in(monkeypatch, cwd, environ(**extra), *args)

    return run


def only_record(state: Path) -> dict[str, object]:
    records = list(state.glob("runs/*/record.json"))
    assert len(records) == 1, records
    data: dict[str, object] = json.loads(records[0].read_text())
    return data


def assert_ran(
    done: subprocess.CompletedProcess[str], root: Path, *, resumed: bool = False
) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No such file" not in done.stdout + done.stderr
    # a resumed run goes on after the action's step, which finished before the kill
    assert ("hello from the action" in done.stdout) != resumed
    assert f"ran-in={root}" in done.stdout
    assert "temp-is-absolute=yes" in done.stdout


def test_from_a_subfolder_with_the_default_state_folder(tmp_path: Path, runner: Runner) -> None:
    repo = repository(tmp_path / "repo")
    done = runner(repo / "docs", "run", "../workflows/deploy.yml", "--env", "staging")
    assert_ran(done, repo)
    # the run history is the workspace root's, whatever folder the run started from
    assert not (repo / "docs" / ".runner").exists()
    record = only_record(repo / ".runner")
    assert record["workflow_path"] == "workflows/deploy.yml"
    listed = runner(repo / "docs", "runs", "list", "--format", "json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [record["run_id"]]
    at_root = runner(repo, "runs", "list", "--format", "json")
    assert json.loads(at_root.stdout) == json.loads(listed.stdout)


def test_from_tmp_with_an_absolute_workflow_path(tmp_path: Path, runner: Runner) -> None:
    repo = repository(tmp_path / "repo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = runner(elsewhere, "run", str(repo / "workflows" / "deploy.yml"), "--env", "staging")
    assert_ran(done, repo)
    assert not (elsewhere / ".runner").exists()
    assert only_record(repo / ".runner")["workflow_path"] == "workflows/deploy.yml"


def test_from_a_subfolder_of_another_repository(tmp_path: Path, runner: Runner) -> None:
    repo = repository(tmp_path / "repo")
    other = repository(tmp_path / "other")
    done = runner(other / "docs", "run", str(repo / "workflows" / "deploy.yml"), "--env", "staging")
    assert_ran(done, repo)
    assert not (other / ".runner").exists()
    assert only_record(repo / ".runner")["workflow_path"] == "workflows/deploy.yml"


@pytest.mark.parametrize("how", ["option", "variable"])
def test_with_a_relative_state_folder(tmp_path: Path, how: str, runner: Runner) -> None:
    repo = repository(tmp_path / "repo")
    args = ["run", "../workflows/deploy.yml", "--env", "staging"]
    if how == "option":
        done = runner(repo / "docs", *args, "--state-dir", "../relstate")
    else:
        done = runner(repo / "docs", *args, RUNNER_STATE_DIR="../relstate")
    assert_ran(done, repo)
    # relative to the folder it was given in, as a shell user means it
    only_record(repo / "relstate")


def test_without_git_the_root_is_the_parent_of_workflows(tmp_path: Path, runner: Runner) -> None:
    project = tmp_path / "project"
    (project / "workflows").mkdir(parents=True)
    (project / "workflows" / "deploy.yml").write_text(WORKFLOW)
    (project / "actions" / "hello").mkdir(parents=True)
    (project / "actions" / "hello" / "action.yml").write_text(ACTION)
    (project / "docs").mkdir()
    done = runner(project / "docs", "run", "../workflows/deploy.yml", "--env", "staging")
    assert_ran(done, project)
    only_record(project / ".runner")


def interrupted_run(cwd: Path, workflow: str, hold: Path, state: Path) -> str:
    """Start a run, kill it (runner and step) while its second step runs: the record is left
    with that step ``running``, for ``runner resume --rerun-interrupted``. Returns the run id.

    The state folder is given absolute, so that starting the run works wherever it starts:
    these tests are about the resume."""
    process = subprocess.Popen(
        [RUNNER, "run", workflow, "--env", "staging", "--run-id", "r1", "--state-dir", str(state)],
        cwd=cwd,
        env=environ(HOLD=str(hold)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        run_helpers.wait_for(
            lambda: hold.is_file() and hold.read_text().strip(), what="the held step"
        )
    finally:
        process.kill()
        output, _ = process.communicate()
        if hold.is_file() and hold.read_text().strip():
            run_helpers.kill_quietly(int(hold.read_text()), group=True)
    assert "Where" in output, output
    return "r1"


def test_resume_from_the_root_of_a_run_started_in_a_subfolder(
    tmp_path: Path, runner: Runner
) -> None:
    repo = repository(tmp_path / "repo", workflow="deploy/srv.yml")
    state = repo / ".runner"
    run_id = interrupted_run(repo / "deploy", "srv.yml", tmp_path / "hold", state)
    done = runner(repo, "resume", run_id, "--rerun-interrupted")
    assert_ran(done, repo, resumed=True)
    record = only_record(state)
    assert (record["status"], record["workflow_path"]) == ("success", "deploy/srv.yml")


def test_resume_in_another_clone_runs_that_clone(tmp_path: Path, runner: Runner) -> None:
    first = repository(tmp_path / "first")
    second = repository(tmp_path / "second")
    workflow = str(first / "workflows" / "deploy.yml")
    run_id = interrupted_run(tmp_path, workflow, tmp_path / "hold", first / ".runner")
    # the state folder travels (a CI artifact); the resume runs in the second checkout
    shutil.copytree(first / ".runner", tmp_path / "artifact")
    done = runner(
        second / "docs",
        "resume",
        run_id,
        "--rerun-interrupted",
        "--state-dir",
        str(tmp_path / "artifact"),
    )
    assert_ran(done, second, resumed=True)
    assert (second / "ran-here.txt").read_text().strip() == str(second)
    assert not (first / "ran-here.txt").exists()


def test_resume_outside_any_checkout_says_where_to_run(tmp_path: Path, runner: Runner) -> None:
    repo = repository(tmp_path / "repo")
    state = repo / ".runner"
    run_id = interrupted_run(repo, "workflows/deploy.yml", tmp_path / "hold", state)
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    done = runner(nowhere, "resume", run_id, "--rerun-interrupted", "--state-dir", str(state))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "workflows/deploy.yml, which is not in the workspace" in done.stderr
    assert "hint: run `runner resume` from inside the checkout" in done.stderr


def test_github_annotations_name_the_file_from_the_repository_root(
    tmp_path: Path, runner: Runner
) -> None:
    """GitHub places an annotation by a path relative to the repository (``$GITHUB_WORKSPACE``):
    a run started from ``docs/`` named ``../workflows/deploy.yml``."""
    repo = repository(tmp_path / "repo")
    workflow = repo / "workflows" / "deploy.yml"
    workflow.write_text(WORKFLOW.replace('echo "ran-in=$PWD"', "exit 3"))
    done = runner(
        repo / "docs",
        "run",
        "../workflows/deploy.yml",
        "--env",
        "staging",
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(repo),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error ")]
    assert errors, done.stdout
    assert all("file=workflows/deploy.yml," in line for line in errors), errors
