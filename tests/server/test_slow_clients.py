"""Slow and idle clients against `runner server` (a subprocess, real sockets): a connection that
does not send a request's headers in time is closed, a body that does not arrive in time is
answered 408 and its connection closed, and past --limit-concurrency open connections a request
gets 503; a long-poll, which waits after its request came whole, is not cut (attack pass: 1,000
stalled bodies held 270 MB, 1,100 idle connections locked every approver out)."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from helpers.server_e2e import World, make_world

#: the deadlines the server runs with here (seconds), and how late an answer may be on a busy
#: machine
DEADLINE = 1.0
SLACK = 10.0


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = make_world(tmp_path_factory.mktemp("slow"))
    options = ("--header-timeout", str(DEADLINE), "--body-timeout", str(DEADLINE))
    made = dataclasses.replace(
        made,
        server=dataclasses.replace(made.server, options=(*options, "--limit-concurrency", "8")),
    )
    made.server.start()
    try:
        yield made
    finally:
        made.server.stop()


def connect(world: World) -> socket.socket:
    return socket.create_connection(("127.0.0.1", world.server.port), timeout=SLACK)


def read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_body_that_stalls_is_answered_408_and_closed(slow: World) -> None:
    with connect(slow) as sock:
        sock.sendall(
            b"POST /api/v1/interruptions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {slow.runner_token}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 262000\r\n\r\n"
            + b"x" * 100_000
        )
        started = time.monotonic()
        answer = read_to_close(sock)
        waited = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(body) == {
        "error": {
            "code": "timeout",
            "message": "the request body did not arrive within 1 s (see docs/approvals.md, limits)",
        }
    }
    assert DEADLINE * 0.9 <= waited < SLACK


@pytest.mark.parametrize("sent", [b"", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"])
def test_a_connection_that_does_not_send_its_headers_is_closed(slow: World, sent: bytes) -> None:
    with connect(slow) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        assert read_to_close(sock) == b""
        assert DEADLINE * 0.9 <= time.monotonic() - started < SLACK


def test_a_long_poll_outlasts_the_deadlines(slow: World) -> None:
    """The deadlines are for what a client sends; a long-poll waits on the server."""
    answer = requests.get(
        f"{slow.server.url}/api/v1/interruptions/none?wait=3",
        headers={"Authorization": f"Bearer {slow.runner_token}"},
        timeout=SLACK,
    )
    assert answer.status_code == 404  # answered, not cut
    with requests.Session() as session:  # a kept-alive connection serves a second request
        for _ in range(2):
            assert session.get(f"{slow.server.url}/api/v1/health", timeout=SLACK).ok
            time.sleep(DEADLINE * 1.5)


def test_past_the_concurrency_limit_a_request_gets_503(slow: World) -> None:
    idle = [connect(slow) for _ in range(8)]
    try:
        answer = requests.get(f"{slow.server.url}/api/v1/health", timeout=SLACK)
        assert answer.status_code == 503
    finally:
        for sock in idle:
            sock.close()
    # the idle ones were closed by their deadline anyway; the server serves again
    deadline = time.monotonic() + SLACK
    while requests.get(f"{slow.server.url}/api/v1/health", timeout=SLACK).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_server_raises_its_open_files_limit() -> None:
    """The usual soft limit (1,024) is below --limit-concurrency's default: the server raises
    it within the hard limit."""
    probe = (
        "import resource\n"
        "from runner.cli.server import _raise_open_files\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "wanted = 1000 if hard == resource.RLIM_INFINITY else min(1000, hard)\n"
        "print(_raise_open_files(wanted) == wanted,\n"
        "      resource.getrlimit(resource.RLIMIT_NOFILE)[0] == wanted)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(b"", "unauthenticated"), (b"Authorization: Bearer rnr_not-a-token\r\n", "bad_token")],
    ids=["none", "unknown"],
)
def test_a_body_without_a_live_token_is_refused_before_it_is_read(
    slow: World, authorization: bytes, code: str
) -> None:
    """Up to 4 MiB of a body was read for anyone before the route answered 401: 1,000 stalled
    bodies held 350 MB without a token (attack pass). The answer comes at once, the body
    unread, and the connection is closed."""
    with connect(slow) as sock:
        sock.sendall(
            b"PUT /api/v1/runs/r1 HTTP/1.1\r\nHost: x\r\n"
            + authorization
            + b"Content-Type: application/json\r\nContent-Length: 4000000\r\n\r\n"
            + b"x" * 1000
        )
        started = time.monotonic()
        answer = read_to_close(sock)
        waited = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answer[:300]
    assert json.loads(body)["error"]["code"] == code
    assert waited < DEADLINE * 0.9  # not the body's deadline: it was never waited for
