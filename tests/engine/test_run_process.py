"""Steps as processes: timeouts stop the whole process group, big output streams through,
``start: with-previous`` steps overlap, ``retry`` re-runs, and SIGINT/SIGTERM cancel the run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from helpers.run_helpers import (
    Outcome,
    Workspace,
    kill_quietly,
    pid_alive,
    wait_for,
    wait_until_killed,
)

from runner.engine.record import RunRecord


def test_timeout_kills_process_group_with_grandchild(workspace: Workspace) -> None:
    pid_file = workspace.root / "grandchild.pid"
    result = workspace.run(
        f"""
        name: timeout
        steps:
          - id: slow
            name: Slow
            timeout-minutes: 0.02
            run: |
              sleep 300 &
              echo $! > {pid_file}
              echo "waiting"
              sleep 300
          - id: after
            name: After
            if: always()
            run: echo "after ran"
          - id: skipped
            name: Skipped
            run: echo "should not run"
        """
    )
    wait_until_killed(pid_file, "the grandchild")
    assert result.code == 1
    slow = result.step("slow")
    assert (slow.status, slow.outcome, slow.conclusion) == ("failure",) * 3
    assert slow.error == "timed out after 0.02 minutes"
    assert slow.exit_code == -signal.SIGTERM
    assert result.step("after").outcome == "success"
    assert result.step("skipped").status == "skipped"
    assert result.record.error == {
        "message": "Step 'Slow' failed",
        "detail": "timed out after 0.02 minutes",
    }
    assert "  after ran" in result.lines()
    assert "✗ Slow" in result.out
    assert "(timed out after 0.02 minutes)" in result.out


@pytest.mark.parametrize(
    ("script", "lines"),
    [
        # 50 MB in 1 kB lines
        ("python3 -c \"import sys; sys.stdout.write(('x' * 999 + '\\n') * 50_000)\"", 50_000),
        # 50 MB without a single newline: released in pieces as one long line
        ("head -c 50000000 /dev/zero | tr '\\0' 'y'", None),
    ],
    ids=["lines", "one-line"],
)
def test_fifty_megabytes_of_output(
    workspace: Workspace, tmp_path: Path, script: str, lines: int | None
) -> None:
    output = tmp_path / "stdout.txt"
    with output.open("w") as out:
        proc = workspace.spawn(
            f"""
            name: big output
            steps:
              - id: loud
                name: Loud
                run: {script}
              - id: next
                name: Next
                run: echo "next ran"
            """,
            stdout=out,
        )
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    record = RunRecord.from_json((workspace.state_dir / "runs/run-1/record.json").read_text())
    assert [(s.id, s.outcome) for s in record.steps] == [("loud", "success"), ("next", "success")]
    size = output.stat().st_size
    assert size > 50_000_000
    if lines is not None:
        with output.open() as text:
            assert sum(1 for line in text if line == "  " + "x" * 999 + "\n") == lines


def test_parallel_steps_overlap(workspace: Workspace) -> None:
    """Each step waits for the file the other one creates: they only finish if they overlap."""
    wait = (
        'for i in $(seq 1 200); do [ -f "{0}" ] && break; sleep 0.05; done; '
        '[ -f "{0}" ] || {{ echo "{0} never appeared"; exit 1; }}'
    )
    result = workspace.run(
        f"""
        name: parallel
        steps:
          - id: first
            name: First
            run: |
              touch a.ready
              {wait.format("b.ready")}
              echo "first saw b"
          - id: second
            name: Second
            start: with-previous
            run: |
              touch b.ready
              {wait.format("a.ready")}
              echo "second saw a"
          - id: third
            name: Third
            start: with-previous
            run: |
              {wait.format("a.ready")}
              {wait.format("b.ready")}
              echo "third saw both"
          - id: after
            name: After
            run: echo "after the group"
        """
    )
    assert result.code == 0, result.out
    assert result.statuses() == {
        "first": "success",
        "second": "success",
        "third": "success",
        "after": "success",
    }
    lines = result.lines()
    # while several steps run, their lines carry the step id: "[first] first saw b"
    said = {line.split("] ", 1)[-1].strip() for line in lines}
    assert {"first saw b", "second saw a", "third saw both"} <= said
    assert lines.index("▶ After") > max(
        i for i, line in enumerate(lines) if line.startswith("✓ ") and "After" not in line
    )


def test_parallel_failure_skips_following_steps(workspace: Workspace) -> None:
    result = workspace.run(
        """
        name: parallel failure
        steps:
          - id: ok
            name: Ok
            run: echo fine
          - id: broken
            name: Broken
            start: with-previous
            run: exit 4
          - id: deploy
            name: Deploy
            run: echo deploying
        """
    )
    assert result.code == 1
    assert result.statuses() == {"ok": "success", "broken": "failure", "deploy": "skipped"}
    assert result.step("broken").exit_code == 4
    assert result.step("broken").error == "exit code 4"


@pytest.mark.parametrize(
    ("failures", "attempts", "outcome", "code"),
    [(0, 1, "success", 0), (2, 3, "success", 0), (3, 3, "failure", 1), (5, 3, "failure", 1)],
)
def test_retry(workspace: Workspace, failures: int, attempts: int, outcome: str, code: int) -> None:
    result = workspace.run(
        f"""
        name: retry
        steps:
          - id: flaky
            name: Flaky
            retry:
              attempts: 3
            run: |
              n=$(( $(cat counter 2>/dev/null || echo 0) + 1 ))
              echo "$n" > counter
              echo "attempt $n"
              echo "attempt=$n" >> "$GITHUB_OUTPUT"
              [ "$n" -gt {failures} ]
        """
    )
    assert result.code == code
    flaky = result.step("flaky")
    assert (flaky.outcome, flaky.attempts) == (outcome, attempts)
    assert flaky.outputs == {"attempt": str(attempts)}
    assert (workspace.root / "counter").read_text() == f"{attempts}\n"
    retried = [line for line in result.lines() if "retrying" in line]
    assert retried == [
        f"  attempt {n} of 3 failed; retrying in 0s" for n in range(1, min(failures, 2) + 1)
    ]


def test_exit_code_and_shells(workspace: Workspace) -> None:
    result = workspace.run(
        """
        name: shells
        steps:
          - id: sh
            name: Sh
            shell: sh
            run: echo "sh here"
          - id: python
            name: Python
            shell: python
            run: print("python", 6 * 7)
          - id: template
            name: Template
            shell: bash -e {0}
            run: echo "template here"
          - id: pipefail
            name: Pipefail
            continue-on-error: true
            run: false | true
          - id: errexit
            name: Errexit
            continue-on-error: true
            run: |
              false
              echo "not reached"
          - id: exit-code
            name: Exit code
            run: exit 42
        """
    )
    assert result.code == 1
    lines = result.lines()
    for line in ("  sh here", "  python 42", "  template here"):
        assert line in lines
    assert "  not reached" not in lines
    assert [(s.id, s.outcome, s.exit_code) for s in result.record.steps] == [
        ("sh", "success", 0),
        ("python", "success", 0),
        ("template", "success", 0),
        ("pipefail", "failure", 1),
        ("errexit", "failure", 1),
        ("exit-code", "failure", 42),
    ]


def test_missing_shell_and_working_directory_fail_the_step(workspace: Workspace) -> None:
    (workspace.root / "sub").mkdir(parents=True)
    result = workspace.run(
        """
        name: broken steps
        steps:
          - id: no-shell
            name: No shell
            continue-on-error: true
            shell: no-such-shell-x {0}
            run: echo hi
          - id: no-dir
            name: No dir
            continue-on-error: true
            working-directory: does/not/exist
            run: echo hi
          - id: dir
            name: Dir
            working-directory: sub
            run: pwd
        """
    )
    assert result.code == 0, result.out
    no_shell, no_dir = result.step("no-shell"), result.step("no-dir")
    assert (no_shell.outcome, no_shell.conclusion) == ("failure", "success")
    assert no_shell.error == "shell 'no-such-shell-x' is not installed on this machine"
    assert (no_dir.outcome, no_dir.conclusion) == ("failure", "success")
    assert no_dir.error == (
        f"{workspace.root / 'deploy.yml'}:11:24: working-directory `does/not/exist` does not exist"
    )
    assert f"  {workspace.root / 'sub'}" in result.lines()


# -- cancellation ---------------------------------------------------------------------------

CANCEL_WORKFLOW = """
name: cancel
steps:
  - id: before
    name: Before
    run: echo "before ran"
  - id: long
    name: Long
    run: |
      sleep 300 &
      echo $! > grandchild.pid
      touch started
      sleep 300
  - id: skipped
    name: Skipped
    run: echo "should not run"
  - id: cleanup
    name: Clean up
    if: always()
    run: |
      echo "cleanup ran, job status ${{ job.status }}"
      sleep 0.2
      echo "cleanup finished"
  - id: on-cancel
    name: On cancel
    if: cancelled()
    run: echo "cancelled() step ran"
  - id: on-failure
    name: On failure
    if: failure()
    run: echo "failure() step ran"
"""


def cancel_run(workspace: Workspace, sig: signal.Signals) -> Outcome:
    proc = workspace.spawn(CANCEL_WORKFLOW)
    started = workspace.root / "started"
    try:
        wait_for(started.exists, what="the long step to start")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Outcome(proc.returncode, out, err, workspace.state_dir, "run-1")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_cancels_run_and_always_steps_still_run(
    workspace: Workspace, sig: signal.Signals
) -> None:
    result = cancel_run(workspace, sig)
    wait_until_killed(workspace.root / "grandchild.pid", "the grandchild")
    assert result.code == 130, result.err
    record = result.record
    assert (record.status, record.exit_code) == ("cancelled", 130)
    assert result.statuses() == {
        "before": "success",
        "long": "cancelled",
        "skipped": "skipped",
        "cleanup": "success",
        "on-cancel": "success",
        "on-failure": "skipped",
    }
    long = result.step("long")
    assert (long.outcome, long.conclusion, long.error) == ("cancelled", "cancelled", "cancelled")
    assert result.step("skipped").reason == "the deployment has been cancelled"
    lines = result.lines()
    assert f"received {sig.name}: cancelling the run" in lines
    assert "  cleanup ran, job status cancelled" in lines
    assert "  cleanup finished" in lines
    assert "  cancelled() step ran" in lines
    assert lines[-1].startswith("Run run-1 was cancelled in ")


def test_second_signal_stops_at_once_and_kills_running_steps(workspace: Workspace) -> None:
    proc = workspace.spawn(
        """
        name: cancel twice
        steps:
          - id: long
            name: Long
            run: |
              touch started
              sleep 300
          - id: cleanup
            name: Clean up
            if: always()
            run: |
              echo $$ > cleanup.pid
              sleep 300
        """
    )
    try:
        wait_for((workspace.root / "started").exists, what="the long step")
        proc.send_signal(signal.SIGINT)
        pid_file = workspace.root / "cleanup.pid"
        wait_for(
            lambda: pid_file.exists() and pid_file.read_text().endswith("\n"),
            what="the cleanup step",
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    cleanup = int(pid_file.read_text())
    try:
        wait_for(lambda: not pid_alive(cleanup), what="the cleanup step to be killed")
    finally:
        kill_quietly(cleanup)
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "interrupted"
    record = RunRecord.from_json((workspace.state_dir / "runs/run-1/record.json").read_text())
    assert record.step("long").status == "cancelled"


def test_cancelled_while_waiting_between_retries_is_not_retried(workspace: Workspace) -> None:
    """A cancelled attempt ends the retries."""
    proc = workspace.spawn(
        """
        name: cancel retry
        steps:
          - id: flaky
            name: Flaky
            retry:
              attempts: 5
            run: |
              echo x >> attempts
              touch started
              sleep 300
        """
    )
    try:
        wait_for((workspace.root / "started").exists, what="the first attempt")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert (workspace.root / "attempts").read_text() == "x\n"
    record = RunRecord.from_json((workspace.state_dir / "runs/run-1/record.json").read_text())
    assert (record.step("flaky").outcome, record.step("flaky").attempts) == ("cancelled", 1)


def test_an_output_handler_that_fails_fails_the_step_and_prints_nothing_of_the_line(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import runner.steps.script as script

    handle = script.handle_line

    def fragile(ctx, processor, line, refused=None):  # type: ignore[no-untyped-def]
        if "BOOM" in line:
            raise ValueError(f"cannot handle {line!r}")
        handle(ctx, processor, line, refused)

    monkeypatch.setattr(script, "handle_line", fragile)
    result = workspace.run(
        """
        name: fragile
        steps:
          - id: loud
            name: Loud
            run: |
              echo "before"
              echo "BOOM hunter2"
              seq 1 200000
          - id: after
            name: After
            run: echo "after ran"
        """
    )
    assert result.code == 1
    loud = result.record.steps[0]
    assert (loud.outcome, loud.exit_code) == ("failure", 0)
    assert "could not handle this step's output (ValueError)" in str(loud.error)
    assert "  before" in result.lines()
    assert "  200000" not in result.lines()
    assert result.record.steps[1].status == "skipped"
    assert "hunter2" not in capsys.readouterr().err
