"""A loopback port for a server a test starts as a process of its own (which must be told its
port before it listens, unlike a server in this process, which binds port 0 itself)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
