"""Signals that arrive before a run's steps begin, and to the other commands (issue #19).

Waiting for a deployment lock (``--wait-for-lock``, here or on the approval server) and preparing
a run got Python's default behaviour: SIGTERM killed the runner where it stood, leaving a record
that said "running"; SIGINT printed a blank line before "interrupted". Real ``runner`` processes,
real signals, each sent once the process shows (or a FIFO proves) where it waits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import run_helpers
from helpers.cancel import (
    EXIT_BOUND,
    RUNNER,
    WAIT,
    environ,
    file_workspace,
    record,
    running,
    server_workspace,
)
from helpers.cli import cli_in
from helpers.net import free_port
from helpers.people import ALICE_DESK_SIGNING
from helpers.seed import USER
from helpers.stub import Reply, Seen, stub_server

SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
RUN = [RUNNER, "run", "deploy.yml", "--env", "production", "--insecure-local-trust"]


def assert_cancelled_before_steps(out: str, data: dict[str, Any]) -> None:
    assert "Traceback" not in out, out
    assert "before the gate" not in out and "report:" not in out, out  # no step ran
    assert data["status"] == "cancelled", data
    assert data["exit_code"] == 130
    assert data["error"]["message"] == "The deployment was cancelled"
    assert {s["status"] for s in data["steps"]} == {"skipped"}, data["steps"]


def run_lock_free(state: Path, run_id: str) -> bool:
    with open(state / "runs" / run_id / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def lock_holders(state: Path) -> list[str]:
    return [json.loads(path.read_text())["run_id"] for path in (state / "locks").glob("*.json")]


@pytest.mark.parametrize(
    ("signum", "github"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
    ids=["SIGINT", "SIGTERM", "SIGTERM-github"],
)
def test_a_signal_while_waiting_for_the_lock_cancels_the_run(
    tmp_path: Path, signum: int, github: bool
) -> None:
    root = file_workspace(tmp_path / "ws")
    state = root / ".runner"
    extra = {"GITHUB_ACTIONS": "true"} if github else {}
    with running([*RUN, "--run-id", "r1"], root, environ()) as holder:
        holder.wait_for("Waiting for trading-desk")
        argv = [*RUN, "--run-id", "r2", "--wait-for-lock"]
        with running(argv, root, environ(**extra)) as waiter:
            waiter.wait_for("waiting for the lock")
            took = waiter.signal_and_time(signum)
        out = waiter.output
        assert waiter.process.returncode == 130, out
        assert took < EXIT_BOUND, out
        assert_cancelled_before_steps(out, record(state, "r2"))
        assert f"received {signal.Signals(signum).name}: cancelling the run" in out
        # the waiting run's own lock is free, and the deployment lock still the holder's
        assert run_lock_free(state, "r2")
        assert lock_holders(state) == ["r1"]
        assert holder.process.poll() is None
        if github:
            assert out.count("::group::") == out.count("::endgroup::"), out


def test_a_signal_while_a_resume_waits_for_the_lock_cancels_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run detached at its gate, resumed while another run deploys: the signal ends the
    resume's wait and the run itself is cancelled (its waiting gate with it). The detached run
    and the last resume need no process of their own: they run in this process."""
    root = file_workspace(tmp_path / "ws")
    state = root / ".runner"
    env = environ()
    detached = cli_in(monkeypatch, root, env, *RUN[1:], "--run-id", "r1", "--detach-on-wait")
    assert detached.returncode == 75, detached
    with running([*RUN, "--run-id", "r2"], root, env) as holder:
        holder.wait_for("Waiting for trading-desk")
        argv = [RUNNER, "resume", "r1", "--wait-for-lock", "--insecure-local-trust"]
        with running(argv, root, env) as resumed:
            resumed.wait_for("waiting for the lock")
            took = resumed.signal_and_time(signal.SIGTERM)
        out = resumed.output
        assert resumed.process.returncode == 130, out
        assert took < EXIT_BOUND, out
        assert "Traceback" not in out
        data = record(state, "r1")
        assert data["status"] == "cancelled", data
        statuses = {s["id"]: s["status"] for s in data["steps"]}
        assert statuses == {
            "before": "success",
            "gate": "cancelled",
            "after": "skipped",
            "report": "skipped",
        }
        assert lock_holders(state) == ["r2"]
        # resuming again says it is over
        again = cli_in(monkeypatch, root, env, "resume", "r1", "--insecure-local-trust")
        assert "already finished: cancelled" in again.stdout + again.stderr


def lock_taken(seen: Seen) -> Reply:
    """An approval server whose deployment lock another run holds (every POST to a lock is
    refused)."""
    if seen.method == "POST" and "/locks/" in seen.path:
        body = (
            b'{"taken": false, "run_id": "other", "since": "2026-01-01T00:00:00Z", '
            b'"expires": "2026-01-01T00:01:00Z"}'
        )
    else:
        body = b"{}"
    return 200, {"Content-Type": "application/json"}, body


@SIGNALS
def test_a_signal_in_the_server_lock_loop_cancels_the_run(tmp_path: Path, signum: int) -> None:
    with stub_server(lock_taken) as server:
        root = server_workspace(tmp_path / "ws", server.url)
        argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
        with running([*argv, "--wait-for-lock"], root, environ(RUNNER_SERVER_TOKEN="t0ken")) as run:
            run.wait_for("(since 2026-01-01T00:00:00Z, on the server;")
            took = run.signal_and_time(signum)
        out = run.output
        assert run.process.returncode == 130, out
        assert took < EXIT_BOUND, out
        assert_cancelled_before_steps(out, record(root / ".runner"))
        # the server's lock released (in case the signal fell between taking it and the
        # answer), the local one too
        requests = [f"{seen.method} {seen.path}" for seen in server.seen]
        assert any(
            r.startswith("POST /api/v1/locks/") and r.endswith("/release") for r in requests
        ), requests
        assert lock_holders(root / ".runner") == []


# -- before a record exists, and the other commands -------------------------------------------


@contextlib.contextmanager
def blocked_on_fifo(path: Path, pid: int) -> Iterator[int]:
    """The FIFO at ``path``: yields once process ``pid`` has read the start of it and waits in
    ``read`` for the rest (the writing end is left open). In the call itself, not about to make
    it: a signal that lands in between is seen by Python only when the call returns (CPython
    checks for signals between bytecodes and when a call is interrupted). The FIFO is made
    before the process starts: made after, a command that reached the file first found none."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:  # ENXIO: no reader yet
            assert exc.errno == errno.ENXIO
            assert time.monotonic() < deadline, "nobody opened the FIFO"
            time.sleep(0.02)
    try:
        os.write(fd, b"name: half a workflow\n")
        wchan = Path(f"/proc/{pid}/wchan")
        run_helpers.wait_for(
            lambda: _unread(fd) == 0 and "pipe" in wchan.read_text(),
            what="the reader to wait in read",
        )
        yield fd
    finally:
        os.close(fd)


def _unread(fd: int) -> int:
    size = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, size)
    return int.from_bytes(size, sys.byteorder)


COMMANDS = {
    "run": ["run", "flow.yml", "--env", "production"],
    "plan": ["plan", "flow.yml", "--env", "production"],
    "validate": ["validate", "flow.yml"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@SIGNALS
def test_a_signal_while_loading_ends_with_one_line(
    tmp_path: Path, command: str, signum: int
) -> None:
    """The workflow file is a FIFO: the command waits reading it (before any record)."""
    root = tmp_path / "ws"
    (root / ".git").mkdir(parents=True)
    os.mkfifo(root / "flow.yml")
    argv = [RUNNER, *COMMANDS[command]]
    with (
        running(argv, root, environ()) as proc,
        blocked_on_fifo(root / "flow.yml", proc.process.pid),
    ):
        took = proc.signal_and_time(signum)
    assert proc.process.returncode == 130, proc.output
    assert took < EXIT_BOUND
    assert proc.output == "interrupted\n"
    assert not (root / ".runner" / "runs").exists()


def test_runner_server_ends_with_one_line(tmp_path: Path) -> None:
    """``runner server`` (uvicorn) on SIGTERM: it shuts down, then exits 130 with one line."""
    port = free_port()
    database = f"sqlite:///{tmp_path / 'server.db'}"
    argv = [RUNNER, "server", "--database", database, "--port", str(port)]
    with running(argv, tmp_path, environ()) as proc:
        run_helpers.wait_for(lambda: _listening(port), what="the server to listen")
        took = proc.signal_and_time(signal.SIGTERM)
    out = proc.output
    assert proc.process.returncode == 130, out
    assert took < EXIT_BOUND, out
    assert "Traceback" not in out
    assert out.strip().splitlines()[-1] == "interrupted", out


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_approval_new_stops_ssh_keygen_and_ends_with_one_line(tmp_path: Path, how: str) -> None:
    """``runner approval new`` waits in ``ssh-keygen -Y sign`` for a key's passphrase on the
    terminal. SIGTERM (a closed CI job, ``kill``) killed the runner and left ssh-keygen
    waiting on the terminal; now ssh-keygen is stopped and the runner exits 130. Ctrl-C typed
    on the terminal (SIGINT to both) already ended so; kept so."""
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret phrase", "-f", str(key)], check=True
    )
    primary, secondary = pty.openpty()
    argv = [
        RUNNER, "approval", "new", "--run-id", "r1", "--step", "gate", "--env", "production",
        "--digest", "ab" * 32, "--decision", "proceed", "--notes", "ok", "--key", str(key),
        "--principal", "alice@example.com", "--out", str(tmp_path / "approvals"),
    ]  # fmt: skip
    process = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=environ(),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,  # the pty becomes its terminal: ssh-keygen asks there
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(secondary)
    out = b""
    try:
        deadline = time.monotonic() + WAIT
        while b"passphrase" not in out.lower():
            assert time.monotonic() < deadline, out
            out += os.read(primary, 4096)
        keygen = _children(process.pid)
        assert keygen, "no ssh-keygen child"
        # the runner waits in a call for ssh-keygen (see ``blocked_on_fifo`` for why)
        stat = Path(f"/proc/{process.pid}/stat")
        run_helpers.wait_for(
            lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "S", what="the runner to wait"
        )
        if how == "ctrl-c":
            os.write(primary, b"\x03")  # through the terminal's line discipline
        else:
            process.send_signal(signal.SIGTERM)
        process.wait(WAIT)
        with contextlib.suppress(OSError):  # EIO once every writer has gone
            while chunk := os.read(primary, 4096):
                out += chunk
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    text = out.decode(errors="replace")
    assert process.returncode == 130, text
    assert "Traceback" not in text
    assert text.rstrip().splitlines()[-1] == "interrupted", text
    for pid in keygen:
        run_helpers.wait_for(lambda pid=pid: not run_helpers.pid_alive(pid), what="ssh-keygen")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


PROMPT_WORKFLOW = """\
name: Prompt
environments: [production]
approvals:
  trust: {people: people.yml}
  prompt: {}
steps:
  - id: gate
    name: Gate
    manual:
      teams: [trading-desk]
"""


def test_ctrl_c_at_the_prompt_ends_the_question_line(tmp_path: Path) -> None:
    """The question "Proceed or abort? [p/a] " has no newline: the cancel message that follows
    a Ctrl-C was printed on its line."""
    root = tmp_path / "ws"
    (root / ".git").mkdir(parents=True)
    (root / "people.yml").write_text(ALICE_DESK_SIGNING.replace("alice", USER))
    (root / "deploy.yml").write_text(PROMPT_WORKFLOW)
    primary, secondary = pty.openpty()
    try:
        argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
        with running(argv, root, environ(), stdin=secondary) as run:
            run.wait_for("Proceed or abort? [p/a] ")
            run.signal_and_time(signal.SIGINT)
    finally:
        os.close(primary)
        os.close(secondary)
    out = run.output
    assert run.process.returncode == 130, out
    assert "Proceed or abort? [p/a] \nreceived SIGINT: cancelling the run\n" in out, out
