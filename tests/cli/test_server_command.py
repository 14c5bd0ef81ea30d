"""``runner server`` as a command: what it says when it cannot serve, and of an empty database."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from runner.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_port_in_use_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn logged its own ERROR line and exited 3, "aborted at a manual intervention"
    (newcomer pass): the runner's error and hint instead, and 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        database = f"sqlite:///{tmp_path / 'server.db'}"
        code, out, err = run(capsys, "server", "--database", database, "--port", str(port))
    assert (code, out) == (2, "")
    assert err == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"
        "hint: another program listens there: use --port N\n"
    )
