"""A loopback port for a server a test starts as a process of its own (which must be told its
port before it listens, unlike a server in this process, which binds port 0 itself)."""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(log: Path, url: str, since: int = 0) -> bool:
    """Whether the ``runner server`` writing ``log`` (from byte ``since``: a restarted server
    appends) says it listens on ``url``. It says so once its own socket is bound, so a process
    that took the port between :func:`free_port` and that bind (another worker's server) is
    not taken for it: its health answers too, from another database."""
    try:
        with log.open("rb") as handle:
            handle.seek(since)
            return f"listening on {url}/".encode() in handle.read()
    except OSError:
        return False
