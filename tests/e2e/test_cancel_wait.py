"""Cancelling a run that waits at a manual step, with real signals sent to a real ``runner run``
(issue #19, "Cancel and detach in CI").

A signal was noticed only at the next poll: 21-23 s with ``poll-seconds: 30``, 17.5 s in a server
long-poll. GitHub kills a cancelled job about 7.5 s after its SIGINT, so the ``always()`` steps
and the ``cancelled`` record never happened; and the seed workflow's last step reported
"succeeded" after a Ctrl-C. Each test measures from the signal to the runner's exit, against a
bound far below the poll interval (a generous one: the machine may be busy), and checks that the
``always()`` step ran and saw the deployment as failed.
"""

from __future__ import annotations

import os
import pty
import shlex
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import run_helpers
from helpers.cancel import (
    EXIT_BOUND,
    FILE_WORKFLOW,
    RUNNER,
    SERVER_WORKFLOW,
    Running,
    environ,
    file_workspace,
    record,
    running,
    server_workspace,
)
from helpers.seed import seed_copy
from helpers.server_e2e import world
from helpers.stub import Reply, Seen, stub_server

#: fixtures, found by pytest here: `runner server` on a SQLite file, with a runner token and
#: approvers' tokens
__all__ = ["world"]


def assert_cancelled(run: Running, took: float, state: Path) -> None:
    out = run.output
    assert run.process.returncode == 130, out
    assert took < EXIT_BOUND, f"the runner took {took:.1f}s to end after the signal:\n{out}"
    # the always() step ran, and did not report a success
    assert "report: failed: The deployment was cancelled" in out, out
    assert "after the gate" not in out
    data = record(state)
    assert data["status"] == "cancelled"
    assert data["error"]["message"] == "The deployment was cancelled"
    statuses = {s["id"]: s["status"] for s in data["steps"]}
    assert statuses == {
        "before": "success",
        "gate": "cancelled",
        "after": "skipped",
        "report": "success",
    }


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_file_source_wait_at_once(tmp_path: Path, signum: int) -> None:
    root = file_workspace(tmp_path / "ws")
    argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
    with running([*argv, "--insecure-local-trust"], root, environ()) as run:
        run.wait_for("Waiting for trading-desk")
        took = run.signal_and_time(signum)
    assert_cancelled(run, took, root / ".runner")
    assert f"received {signal.Signals(signum).name}: cancelling the run" in run.output


def test_a_run_started_in_the_background_of_a_script_ignores_sigint(tmp_path: Path) -> None:
    """``runner run ... &`` in a script: the shell starts it with SIGINT ignored, so that a
    Ctrl-C typed at the script's terminal is not for it, and Unix programs keep it so. The run
    ignored it at its first step all the same, and was cancelled. SIGTERM still cancels."""
    root = file_workspace(tmp_path / "ws")
    argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
    script = f'{shlex.join([*argv, "--insecure-local-trust"])} & echo "pid $!"; wait $!'
    with running(["bash", "-c", script], root, environ()) as run:
        run.wait_for("Waiting for trading-desk")
        pid = int(run.output.split("pid ", 1)[1].split()[0])
        os.kill(pid, signal.SIGINT)
        with pytest.raises(AssertionError):
            run.wait_for("received SIGINT", within=2.0)
        assert run.process.poll() is None, run.output
        os.kill(pid, signal.SIGTERM)
        run.process.wait(timeout=60)
    assert run.process.returncode == 130, run.output
    assert "received SIGTERM: cancelling the run" in run.output
    assert record(root / ".runner")["status"] == "cancelled"


def test_a_signal_ends_a_server_long_poll_at_once(world: Any) -> None:
    """The real approval server, long-polled (20 s per request): the signal lands inside it."""
    world.root.joinpath("deploy.yml").write_text(SERVER_WORKFLOW.replace("URL", world.server.url))
    env = environ(RUNNER_SERVER_TOKEN=world.runner_token)
    argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
    with running(argv, world.root, env) as run:
        world.wait_for_interruption(run.process)
        run.wait_for("Waiting for trading-desk")
        time.sleep(0.3)  # into the long-poll (lets the run get there; not a timing check)
        took = run.signal_and_time(signal.SIGINT)
    assert_cancelled(run, took, world.root / ".runner")
    # the request was withdrawn from the server
    view = world.api("GET", "/interruptions/r1--gate").json()
    assert view["state"] == "cancelled", view


def test_ctrl_c_at_the_prompt_runs_the_seed_report_as_failed(tmp_path: Path) -> None:
    """The seed workflow at a terminal: Ctrl-C at the traders' check. Its last step printed
    "succeeded"; it must say the deployment failed, at once."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / ".git").mkdir()
    seed_copy(root)
    primary, secondary = pty.openpty()
    try:
        argv = [RUNNER, "run", "deploy-webapp.yml", "--env", "production", "--run-id", "r1"]
        with running(argv, root, environ(), stdin=secondary) as run:
            run.wait_for("Proceed or abort? [p/a]")
            took = run.signal_and_time(signal.SIGINT)
    finally:
        os.close(primary)
        os.close(secondary)
    out = run.output
    assert run.process.returncode == 130, out
    assert took < EXIT_BOUND, f"the runner took {took:.1f}s to end after the signal:\n{out}"
    assert "Deployment of 1.4.2 to production: failed: The deployment was cancelled" in out, out
    assert "succeeded" not in out
    assert "Fatal Python error" not in out
    assert record(root / ".runner")["status"] == "cancelled"


def test_a_second_signal_during_the_always_steps_stops_the_runner(tmp_path: Path) -> None:
    """The first signal ends the wait; the ``always()`` step runs; a second signal (GitHub's
    SIGTERM after SIGINT) stops the runner and that step at once."""
    root = file_workspace(tmp_path / "ws")
    pid = tmp_path / "report.pid"
    slow = FILE_WORKFLOW.replace(
        '      echo "report: $OUTCOME"',
        f'      echo $$ > {pid}\n      echo "report: $OUTCOME"\n      sleep 60',
    )
    (root / "deploy.yml").write_text(slow)
    argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
    with running([*argv, "--insecure-local-trust"], root, environ()) as run:
        run.wait_for("Waiting for trading-desk")
        run.process.send_signal(signal.SIGINT)
        run.wait_for("report: failed: The deployment was cancelled")
        took = run.signal_and_time(signal.SIGTERM)
    assert run.process.returncode == 130, run.output
    assert took < EXIT_BOUND, run.output
    # the always() step did not outlive the runner
    step = int(pid.read_text())
    run_helpers.wait_for(lambda: not run_helpers.pid_alive(step), what="the step to be stopped")


JSON = {"Content-Type": "application/json"}


def registers(seen: Seen) -> bool:
    return seen.method == "POST" and seen.path.endswith("/interruptions")


def unavailable(seen: Seen) -> Reply:
    """An approval server that keeps the run's locks and records but answers every request to
    register an interruption with ``503, Retry-After: 30`` (a server being restarted)."""
    if registers(seen):
        return 503, {**JSON, "Retry-After": "30"}, b"{}"
    if seen.method == "POST" and "/locks/" in seen.path:
        return 200, JSON, b'{"taken": true}'
    return 200, JSON, b"{}"


def test_a_signal_ends_the_backoff_of_a_server_registration_at_once(tmp_path: Path) -> None:
    """Registering the request with a server that asks to retry in 30 s: the signal ends the
    wait for the retry."""
    with stub_server(unavailable) as server:
        root = server_workspace(tmp_path / "ws", server.url)
        argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
        with running(argv, root, environ(RUNNER_SERVER_TOKEN="t0ken")) as run:
            run.wait_for("Manual intervention required")
            run_helpers.wait_for(
                lambda: [s for s in server.seen if registers(s)], what="a registration"
            )
            took = run.signal_and_time(signal.SIGINT)
        assert_cancelled(run, took, root / ".runner")
