"""A tiny HTTP server on loopback that answers what a test says, standing in for a broken
approval server (errors, garbage, slowness) or a webhook receiver. It records every request."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Stub:
    answer: Callable[[Seen], Reply]
    url: str = ""
    seen: list[Seen] = field(default_factory=list)


@contextlib.contextmanager
def stub_server(answer: Callable[[Seen], Reply]) -> Iterator[Stub]:
    """A :class:`Stub` serving ``answer`` until the block ends."""
    made = Stub(answer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command,
                self.path,
                dict(self.headers.items()),
                self.rfile.read(length) if length else b"",
            )
            made.seen.append(seen)
            status, headers, body = made.answer(seen)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = handle_one

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    made.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield made
    finally:
        httpd.shutdown()
        httpd.server_close()
