"""The approval server fails mid-long-poll in ways ``tests/server`` does not inject: it drops the
connection without answering, resets it, sends half an answer, or never answers. A real loopback
server (a raw socket stub) does each; the runner's ``server`` source must report an error, never
a decision, keep its last known state, and count a decision once the server answers properly.

(Already proven elsewhere: a server killed and restarted mid-wait, 5xx, garbage and slow answers
-- ``tests/server/test_server_e2e.py``, ``tests/server/test_server_source.py``.)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import cli_in
from helpers.clock import FakeClock, fake_time, real_now
from helpers.environ import host_env
from helpers.paths import ROOT

from runner.approvals import server_source
from runner.approvals.identity import Directory
from runner.approvals.request import Interruption
from runner.approvals.server_client import ServerClient
from runner.approvals.server_source import ServerSource
from runner.errors import ApprovalError
from runner.model import Approvals
from runner.model import ServerSource as ServerConfig
from runner.options import RunOptions

RUNNER = str(Path(sys.executable).with_name("runner"))
TOKEN = "rnr_fault_SECRET-token-never-shown"
ID = "r1--gate"


def view(submissions: list[dict[str, Any]], version: int) -> dict[str, Any]:
    return {
        "id": ID,
        "run_id": "r1",
        "step_id": "gate",
        "request": {},
        "state": "waiting",
        "responsible": None,
        "version": version,
        "created": "",
        "updated": "",
        "submissions": submissions,
    }


PROCEED = {
    "id": 7,
    "username": "alice",
    "person_id": "u-alice",
    "result": "proceed",
    "notes": "ok",
    "fields": {},
    "at": "2030-01-01T12:00:00.000Z",
}


@dataclass
class Stub:
    """A loopback HTTP/1.1 server on raw sockets. ``mode`` decides how a long-poll (GET) ends:
    ``drop`` (close without a byte), ``reset`` (RST), ``half`` (headers and part of the body,
    then close), ``hang`` (never answer), ``headers-only`` (status line, then close), or ``ok``
    (answer ``answer``). Registration (POST), runs and locks are always answered."""

    mode: str = "drop"
    answer: dict[str, Any] = field(default_factory=lambda: view([], 1))
    seen: list[str] = field(default_factory=list)
    url: str = ""
    sock: socket.socket | None = None
    stopping: bool = False
    #: the request as the runner registered it, echoed back in every view (as the server does)
    registered: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def stop(self) -> None:
        self.stopping = True
        if self.sock is not None:
            self.sock.close()

    def _serve(self) -> None:
        assert self.sock is not None
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    @staticmethod
    def _reply(conn: socket.socket, status: int, body: dict[str, Any] | None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f'Content-Length: {len(data)}\r\nETag: "{(body or {}).get("version", 0)}"\r\n'
            "Connection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + data)

    def _handle(self, conn: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            head, _, rest = request.partition(b"\r\n\r\n")
            line = head.split(b"\r\n")[0].decode()
            headers = dict(h.decode().split(": ", 1) for h in head.split(b"\r\n")[1:] if b": " in h)
            length = int(headers.get("Content-Length", headers.get("content-length", "0")))
            while len(rest) < length:
                rest += conn.recv(65536)
            self.seen.append(line)
            method, path = line.split(" ")[:2]
            if method == "POST" and path.split("?")[0] == "/api/v1/interruptions":
                self.registered = json.loads(rest[:length])
                self._reply(conn, 201, {**view([], 1), "request": self.registered})
            elif method != "GET":
                self._reply(conn, 200, {"run_id": "r1", "taken": True})
            elif self.mode == "ok":
                self._reply(conn, 200, {**self.answer, "request": self.registered})
            elif self.mode == "drop":
                pass
            elif self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.mode == "half":
                data = json.dumps(view([PROCEED], 2)).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data[: len(data) // 2]
                )
            elif self.mode == "headers-only":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            elif self.mode == "hang":
                while not self.stopping:
                    time.sleep(0.05)
        except OSError:
            pass
        finally:
            conn.close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    made = Stub()
    made.start()
    yield made
    made.stop()


@pytest.fixture
def request_() -> Interruption:
    return Interruption(
        id=ID,
        run_id="r1",
        step_id="gate",
        step_name="Gate",
        title="Gate",
        instructions="",
        teams=(),
        quorum=(),
        fields=(),
        created="2030-01-01T12:00:00Z",
        deadline=None,
        environment="production",
        workflow="w",
        digest="d" * 64,
        commit=None,
        inputs={},
        following_steps=(),
        started_by="ci-bot",
        prevent_self_approval=False,
        sources=("server",),
    )


def make_source(
    url: str, monkeypatch: pytest.MonkeyPatch, attempts: int = 2
) -> tuple[ServerSource, list[float]]:
    # a short long-poll, so that a server that never answers times out in about a second
    monkeypatch.setattr(server_source, "LONG_POLL_SECONDS", 0.2)
    sleeps: list[float] = []
    client = ServerClient(
        url, TOKEN, attempts=attempts, base_delay=0.01, sleep=sleeps.append, timeout=1
    )
    approvals = Approvals(server=ServerConfig(url=url))
    source = ServerSource(
        environ={},
        approvals=approvals,
        workspace=Path("."),
        directory=Directory(),
        options=RunOptions(),
        client=client,
    )
    return source, sleeps


LONG = os.environ.get("RUNNER_FUZZ") == "long"
#: a server that never answers costs the client's read timeout (the long-poll + 15 s) per
#: attempt: only in the long run (scripts/fuzz-long)
HANG = pytest.param(
    "hang", marks=pytest.mark.skipif(not LONG, reason="takes 15 s a poll; RUNNER_FUZZ=long")
)
MODES = ["drop", "reset", "half", "headers-only", HANG]


@pytest.mark.parametrize("mode", MODES)
def test_a_long_poll_cut_short_is_an_error_never_a_decision(
    stub: Stub, request_: Interruption, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    stub.mode = mode
    rounds = 1 if mode == "hang" else 2
    source, sleeps = make_source(stub.url, monkeypatch, attempts=rounds)
    source.register(request_)
    assert source.poll(request_) == []  # the registration's own view: nothing decided
    for _ in range(rounds):
        with pytest.raises(ApprovalError) as caught:
            source.poll(request_)
        assert caught.value.message.startswith("the approval server"), caught.value.message
        assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
        # the last good answer is kept, not the broken one
        assert source.view == {**view([], 1), "request": stub.registered}
    assert source.failures == rounds
    # the server comes back and says alice proceeded: now, and only now, it counts
    stub.mode, stub.answer = "ok", view([PROCEED], 2)
    (submission,) = source.poll(request_)
    assert (submission.who, submission.result, submission.source) == ("alice", "proceed", "server")
    assert source.failures == 0
    assert sleeps, "the source must back off after a failing poll"
    polls = [line for line in stub.seen if line.startswith("GET ")]
    assert len(polls) >= 2


# -- a whole run against a server that drops every long-poll ----------------------------------

WORKFLOW = """\
name: Server faults
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: {url}
    token-env: RUNNER_SERVER_TOKEN
steps:
  - id: gate
    name: Gate Check
    manual:
      teams: [trading-desk]
      timeout-minutes: 0.05
  - id: after
    name: After
    run: echo "decided-by=#{{Octopus.Action[Gate Check].Output.Manual.ResponsibleUser.Username}}"
"""


@pytest.mark.parametrize("mode", ["drop", "half"])
def test_a_run_against_a_server_cutting_every_long_poll_times_out(
    stub: Stub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    stub.mode = mode
    root = tmp_path / "ws"
    (root / ".git").mkdir(parents=True)
    (root / "approvals").mkdir()
    shutil.copy(ROOT / "approvals" / "people.yml", root / "approvals" / "people.yml")
    (root / "deploy.yml").write_text(WORKFLOW.format(url=stub.url))
    env = host_env(RUNNER_ACTOR="ci-bot", RUNNER_SERVER_TOKEN=TOKEN)
    # in process on a fake clock: the retries, the backoff and the step's three seconds pass
    # at once (the cut connections are real)
    fake_time(monkeypatch, FakeClock(real_now()))
    argv = ("run", "deploy.yml", "--env", "production", "--run-id", "r1", "--state-dir", "S")
    done = cli_in(monkeypatch, root, env, *argv)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "a failure is never a decision" in output
    assert "decided-by=" not in output
    assert TOKEN not in output
    record = json.loads((root / "S" / "runs" / "r1" / "record.json").read_text())
    gate, after = record["steps"]
    assert (record["status"], gate["approval"]["state"]) == ("timed-out", "timed-out")
    assert gate["approval"]["decisions"] == [] and gate["approval"]["submissions"] == []
    assert after["status"] != "success"
