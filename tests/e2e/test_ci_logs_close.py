"""The CI logs close what they open on every way out of a run (issue #19).

In GitHub Actions, ``--detach-on-wait`` left ``::stop-commands::<token>`` in force and the manual
step's ``::group::`` open: the job's own later ``::notice`` was not processed, and "Run ... is
waiting" was hidden in a collapsed group. GitLab likewise kept a ``section_start`` without its
``section_end``. Each way out is taken here by a real ``runner run`` (GITHUB_ACTIONS=true or
GITLAB_CI=true, as inside those jobs): a detach at a manual step, an error that ends the run in
the middle of a step (its record cannot be saved), a cancel while waiting, and a second signal
while an ``always()`` step runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import run_helpers
from helpers.people import ALICE_DESK

RUNNER = str(run_helpers.RUNNER)
WAIT = 60.0  # a hang guard on every wait below


WORKFLOW = """\
name: Closing
environments: [production]
approvals:
  trust: {people: people.yml, allowed-signers: allowed_signers}
  file: {path: approvals, poll-seconds: 30}
steps:
  - id: before
    name: Before
    run: echo "before"
  - id: gate
    name: Gate
    manual:
      teams: [trading-desk]
  - id: report
    name: Report
    if: always()
    run: |
      echo "report ran"
      HOLD
"""

#: a run that succeeds
PLAIN = """\
name: Closing
steps:
  - id: only
    name: Only
    run: echo "done"
"""

#: a step that breaks the state folder under the runner: the record of the run becomes a
#: folder, so saving it after the step fails and the run ends with an error (exit 5)
BREAK_STATE = """\
name: Closing
steps:
  - id: breaker
    name: Breaker
    run: |
      run_folder=$(dirname "$RUNNER_TEMP")
      rm -f "$run_folder/record.json"
      mkdir -p "$run_folder/record.json/blocked"
      echo "the record is now a folder"
"""


@dataclass
class Way:
    name: str
    workflow: str
    args: tuple[str, ...]
    code: int


WAYS = [
    Way("detach", WORKFLOW.replace("HOLD", ""), ("--detach-on-wait",), 75),
    Way("error", BREAK_STATE, (), 5),
    Way("cancel", WORKFLOW.replace("HOLD", ""), (), 130),
    Way("second-signal", WORKFLOW.replace("HOLD", "sleep 60"), (), 130),
]
CI = {"github": {"GITHUB_ACTIONS": "true"}, "gitlab": {"GITLAB_CI": "true"}}


def run(root: Path, way: Way, ci: str) -> tuple[int, str]:
    (root / "deploy.yml").write_text(way.workflow)
    env = {k: v for k, v in os.environ.items() if k not in run_helpers.CI_VARIABLES}
    env.update(CI[ci], CI="true", NO_COLOR="1", PYTHONUNBUFFERED="1", RUNNER_ACTOR="ci-bot")
    argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
    argv += ["--insecure-local-trust", *way.args]
    out = root / "out.txt"
    with out.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            if way.name in ("cancel", "second-signal"):
                wait_for_text(out, "Waiting for trading-desk", process)
                process.send_signal(signal.SIGINT)
            if way.name == "second-signal":
                wait_for_text(out, "report ran", process)
                process.send_signal(signal.SIGTERM)
            process.wait(WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return process.returncode, out.read_text(encoding="utf-8", errors="replace")


def wait_for_text(path: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while text not in path.read_text(errors="replace"):
        assert process.poll() is None, f"the run ended before {text!r}:\n{path.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} within {WAIT}s"
        time.sleep(0.02)


def github_state(out: str) -> list[tuple[str, bool, int]]:
    """Each line with whether GitHub would process commands there and the group depth, as the
    runner of the outer job reads the log."""
    token: str | None = None
    depth = 0
    seen = []
    for line in out.splitlines():
        if token is not None:
            if line == f"::{token}::":
                token = None
            seen.append((line, False, depth))
            continue
        if line.startswith("::stop-commands::"):
            token = line.removeprefix("::stop-commands::")
        elif line.startswith("::group::"):
            assert depth == 0, "groups are not nested"
            depth += 1
        elif line == "::endgroup::":
            depth -= 1
        seen.append((line, True, depth))
    return seen


def gitlab_open(out: str) -> list[tuple[str, list[str]]]:
    """Each line with the sections open there."""
    opened: list[str] = []
    seen = []
    for line in out.splitlines():
        for kind, name in re.findall(r"section_(start|end):\d+:([A-Za-z0-9_.-]+)", line):
            if kind == "start":
                opened.append(name)
            else:
                assert opened and opened[-1] == name, f"section_end:{name} ends nothing open"
                opened.pop()
        seen.append((line, list(opened)))
    return seen


@pytest.mark.parametrize("ci", sorted(CI))
@pytest.mark.parametrize("way", WAYS, ids=[w.name for w in WAYS])
def test_every_way_out_closes_the_log(tmp_path: Path, ci: str, way: Way) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "people.yml").write_text(ALICE_DESK)
    (root / "allowed_signers").write_text("")
    (root / "approvals").mkdir()
    code, out = run(root, way, ci)
    assert code == way.code, out
    if ci == "github":
        lines = github_state(out)
        _, live, depth = lines[-1]
        assert live and depth == 0, f"the log ends fenced or in a group:\n{out}"
        # what the runner says at the end is outside the fence and outside every group
        for line, live, depth in lines:
            if line.startswith(("Run r1 ", "error:", "interrupted")):
                assert live and depth == 0, f"{line!r} is hidden:\n{out}"
    else:
        lines_open = gitlab_open(out)
        assert lines_open[-1][1] == [], f"sections left open:\n{out}"
        for line, opened in lines_open:
            if line.startswith(("Run r1 ", "error:", "interrupted")):
                assert opened == [], f"{line!r} is inside section {opened}:\n{out}"
    if way.name == "detach":
        assert "Run r1 is waiting for approval" in out
    if way.name == "error":
        assert "cannot save the record of run r1" in out


def test_the_outer_jobs_notice_after_a_detach_is_processed(tmp_path: Path) -> None:
    """The job's own step after ``runner run --detach-on-wait`` prints ``::notice``: with the
    fence left up, GitHub would show it as text."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "people.yml").write_text(ALICE_DESK)
    (root / "allowed_signers").write_text("")
    (root / "approvals").mkdir()
    code, out = run(root, WAYS[0], "github")
    assert code == 75, out
    lines = github_state(out + "::notice::deployment waits for approval\n")
    assert lines[-1] == ("::notice::deployment waits for approval", True, 0)
    assert json.loads((root / ".runner" / "runs" / "r1" / "record.json").read_text())["status"] == (
        "waiting"
    )


@pytest.mark.parametrize("unwritable", ["GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"])
@pytest.mark.parametrize("way", [WAYS[0], Way("success", PLAIN, (), 0)], ids=["detach", "success"])
def test_a_job_file_that_cannot_be_written_keeps_the_runs_exit_code(
    tmp_path: Path, way: Way, unwritable: str
) -> None:
    """Found by a newcomer pass: with `$GITHUB_OUTPUT` or `$GITHUB_STEP_SUMMARY` naming a file
    that cannot be written, a run that had succeeded, or detached (75), ended in an internal
    error, exit 70. The run has ended by then: a warning, and the run's own exit code."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "people.yml").write_text(ALICE_DESK)
    (root / "allowed_signers").write_text("")
    (root / "deploy.yml").write_text(way.workflow)
    env = {k: v for k, v in os.environ.items() if k not in run_helpers.CI_VARIABLES}
    env.update(GITHUB_ACTIONS="true", CI="true", RUNNER_ACTOR="ci-bot")
    env[unwritable] = str(tmp_path / "no-such-folder" / "file")
    argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
    argv += ["--insecure-local-trust", *way.args]
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == way.code, done.stdout + done.stderr
    assert "warning: cannot write the job" in done.stdout + done.stderr
    assert "internal error" not in done.stdout + done.stderr
