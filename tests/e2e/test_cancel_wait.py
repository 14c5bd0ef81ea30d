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

import contextlib
import json
import os
import pty
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import run_helpers
from helpers.paths import ROOT, borrow
from helpers.server_e2e import world

seed_prompt = borrow("seed_prompt", ROOT / "tests" / "e2e" / "test_seed_prompt.py")
#: fixtures, found by pytest here: `runner server` on a SQLite file, with a runner token and
#: approvers' tokens
__all__ = ["world"]

RUNNER = str(run_helpers.RUNNER)
#: from the signal to the runner's exit, far below every poll interval used here (30 s, and
#: the server's 20 s long-poll) and below GitHub's 7.5 s before it kills the job
EXIT_BOUND = 5.0
#: the bound on every wait for the run to get somewhere (a hang guard, not a measurement)
WAIT = 60.0

PEOPLE = """\
people:
  - id: u-alice
    username: alice
    display-name: Alice Martin
    email: alice@example.com
    ssh-principals: [alice@example.com]
teams:
  trading-desk: [alice]
"""

STEPS = """\
steps:
  - id: before
    name: Before
    run: echo "before the gate"
  - id: gate
    name: Gate
    manual:
      teams: [trading-desk]
  - id: after
    name: After
    run: echo "after the gate"
  - id: report
    name: Report
    if: always()
    env:
      OUTCOME: >-
        #{if Octopus.Deployment.Error}failed: #{Octopus.Deployment.Error}#{else}succeeded#{/if}
    run: |
      echo "report: $OUTCOME"
"""

FILE_WORKFLOW = (
    """\
name: Cancel while waiting
environments: [production]
approvals:
  trust: {people: people.yml, allowed-signers: allowed_signers}
  file: {path: approvals, poll-seconds: 30}
"""
    + STEPS
)


class Running:
    """A ``runner`` subprocess whose merged output is read as it comes."""

    def __init__(
        self, argv: list[str], cwd: Path, env: Mapping[str, str], stdin: Any = None
    ) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        # chunks, not lines: a prompt's question has no newline
        assert self.process.stdout is not None
        for chunk in iter(lambda: self.process.stdout.read1(4096), b""):  # type: ignore[union-attr]
            self.chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + WAIT
        while text not in self.output:
            assert self.process.poll() is None, f"the run ended before {text!r}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} within {WAIT}s:\n{self.output}"
            time.sleep(0.02)

    def signal_and_time(self, signum: int) -> float:
        """Send ``signum``; the seconds until the runner exits."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the run did not end {WAIT}s after the signal") from None
        took = time.monotonic() - sent
        self.reader.join(5)
        return took

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running(
    argv: list[str], cwd: Path, env: Mapping[str, str], stdin: Any = None
) -> Iterator[Running]:
    run = Running(argv, cwd, env, stdin)
    try:
        yield run
    finally:
        run.stop()


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in run_helpers.CI_VARIABLES}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1", RUNNER_ACTOR="ci-bot", **extra)
    return env


def record(state: Path, run_id: str = "r1") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / "runs" / run_id / "record.json").read_text())
    return data


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


def file_workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "people.yml").write_text(PEOPLE)
    (root / "allowed_signers").write_text("")
    (root / "approvals").mkdir()
    (root / "deploy.yml").write_text(FILE_WORKFLOW)
    return root


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_file_source_wait_at_once(tmp_path: Path, signum: int) -> None:
    root = file_workspace(tmp_path / "ws")
    argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
    with running([*argv, "--insecure-local-trust"], root, environ()) as run:
        run.wait_for("Waiting for trading-desk")
        took = run.signal_and_time(signum)
    assert_cancelled(run, took, root / ".runner")
    assert f"received {signal.Signals(signum).name}: cancelling the run" in run.output


SERVER_WORKFLOW = """\
name: Cancel while waiting
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: URL
    token-env: RUNNER_SERVER_TOKEN
""" + STEPS.replace("teams: [trading-desk]", "teams: [trading-desk]\n      timeout-minutes: 30")


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
    seed_prompt.seed_copy(root)
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


class Unavailable(BaseHTTPRequestHandler):
    """An approval server that keeps the run's locks and records but answers every request
    to register an interruption with ``503, Retry-After: 30`` (a server being restarted)."""

    protocol_version = "HTTP/1.1"
    registrations: ClassVar[list[str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.command == "POST" and self.path.endswith("/interruptions"):
            type(self).registrations.append(self.path)
            status, body, extra = 503, b"{}", {"Retry-After": "30"}
        elif self.command == "POST" and "/locks/" in self.path:
            status, body, extra = 200, b'{"taken": true}', {}
        else:
            status, body, extra = 200, b"{}", {}
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **extra}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_signal_ends_the_backoff_of_a_server_registration_at_once(tmp_path: Path) -> None:
    """Registering the request with a server that asks to retry in 30 s: the signal ends the
    wait for the retry."""
    Unavailable.registrations = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    httpd.daemon_threads = True
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        root = tmp_path / "ws"
        (root / ".git").mkdir(parents=True)
        (root / "approvals").mkdir()
        (root / "approvals" / "people.yml").write_text(PEOPLE)
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        (root / "deploy.yml").write_text(SERVER_WORKFLOW.replace("URL", url))
        argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
        with running(argv, root, environ(RUNNER_SERVER_TOKEN="t0ken")) as run:
            run.wait_for("Manual intervention required")
            run_helpers.wait_for(lambda: Unavailable.registrations, what="a registration")
            took = run.signal_and_time(signal.SIGINT)
        assert_cancelled(run, took, root / ".runner")
    finally:
        httpd.shutdown()
        httpd.server_close()
