"""`runner resume` of a run id the state folder does not have: the newcomer is told the close
one and the latest runs there, or that the folder has none (the hint said "pass --state-dir"
to someone who had passed it, and named no run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers.environ import host_env
from helpers.run_helpers import RUNNER

from runner.engine.record import RecordStore, RunStatus

WORKFLOW = "name: one step\nsteps:\n  - id: only\n    name: Only\n    run: echo done\n"


def runner(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUNNER), *args], cwd=root, env=host_env(), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_a_mistyped_run_id_is_told_the_close_one_and_the_latest(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(WORKFLOW)
    for run_id in ("gh-555-1", "gh-600-1"):
        done = runner(
            tmp_path, "run", "w.yml", "--env", "e", "--state-dir", "S", "--run-id", run_id
        )
        assert done.returncode == 0, done.stderr
    # gh-600-1 waits (as a detached run would): the only one that can be resumed
    store = RecordStore(tmp_path / "S")
    record = store.load("gh-600-1")
    record.status = RunStatus.WAITING
    store.save(record)
    missing = runner(tmp_path, "resume", "gh-555-2", "--state-dir", "S")
    assert missing.returncode == 2
    assert "error: no run 'gh-555-2' in" in missing.stderr
    assert "pass --state-dir" not in missing.stderr
    # a finished run is no candidate: it was offered as one (newcomer pass)
    assert missing.stderr.splitlines()[1] == (
        "hint: `gh-555-1` is close, but it has finished (success): nothing to resume. runs here "
        "that can be resumed: `gh-600-1` (all of them, with their status: `runner runs list "
        f"--state-dir {tmp_path / 'S'}`)"
    )
    missing = runner(tmp_path, "resume", "gh-600-2", "--state-dir", "S")
    assert "hint: did you mean `gh-600-1`? runs here that can be resumed: `gh-600-1`" in (
        missing.stderr
    )


def test_a_folder_of_finished_runs_offers_none(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(WORKFLOW)
    done = runner(tmp_path, "run", "w.yml", "--env", "e", "--state-dir", "S", "--run-id", "a1")
    assert done.returncode == 0, done.stderr
    missing = runner(tmp_path, "resume", "zzz", "--state-dir", "S")
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[1] == (
        "hint: no run here waits to be resumed: the latest have finished (all of them, with "
        f"their status: `runner runs list --state-dir {tmp_path / 'S'}`)"
    )
    # and starting a run under its id again is not told to resume it
    again = runner(tmp_path, "run", "w.yml", "--env", "e", "--state-dir", "S", "--run-id", "a1")
    assert again.returncode == 5
    assert again.stderr == (
        f"error: run a1 already exists in {tmp_path / 'S'} and has finished (success)\n"
        "hint: a run id is used once: choose another --run-id (`runner runs show a1` shows that "
        "run)\n"
    )


def test_a_state_folder_without_runs_says_so(tmp_path: Path) -> None:
    missing = runner(tmp_path, "resume", "r1", "--state-dir", "empty")
    assert missing.returncode == 2
    assert "this state folder has no runs: pass --state-dir where the run's record is" in (
        missing.stderr
    )
