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


def test_users_list_of_an_empty_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It printed nothing: a failure, or the wrong database? (newcomer pass)"""
    database = f"sqlite:///{tmp_path / 'new.db'}"
    code, out, err = run(capsys, "server", "--database", database, "users", "list")
    assert (code, out) == (0, "")
    assert err == (
        f"no users in {database}\n"
        "add them with `runner server users import FILE` (a people-and-teams file) or "
        "`runner server users add USERNAME`\n"
    )
    code, out, _ = run(capsys, "server", "--database", database, "users", "add", "alice")
    assert code == 0
    code, out, _ = run(capsys, "server", "--database", database, "users", "list")
    assert (code, out.split()) == (0, ["alice", "alice"])
