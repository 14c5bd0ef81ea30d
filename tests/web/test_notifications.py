"""Webhook notifications from a real ``runner server --webhook URL`` to a loopback receiver:
created, assigned and decided arrive as JSON with a link to the interruption's page; a receiver
that is down, or that takes 10 s to answer, never slows the API or the web page.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Server

#: seconds: only to tell a call that waits on the webhook from one that doesn't. One that waited
#: would take the webhook's 5 s timeout (a slow receiver) or its 1 s + 2 s retry pauses (one that
#: is down); a call that did not can take over 1 s when the test workers share busy cores. Every
#: call notifies, so calls that waited would all be slow: a few slow ones are the machine's.
FAST = 2.5


@dataclass
class Receiver:
    """A loopback webhook receiver. ``mode``: ``ok`` answers at once, ``slow`` after 10 s,
    ``garbage-first`` answers its first request with something that is not HTTP."""

    mode: str = "ok"
    messages: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    requests: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests += 1
                    first = receiver.requests == 1
                if receiver.mode == "garbage-first" and first:
                    self.wfile.write(b"garbage\r\n\r\n")
                    self.close_connection = True
                    return
                if receiver.mode == "slow":
                    receiver.stop.wait(10)
                with receiver.lock:
                    receiver.messages.append(json.loads(body))
                    receiver.content_types.append(self.headers.get("Content-Type", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def receiving(mode: str = "ok") -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver(mode)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), receiver.handler())
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        receiver.stop.set()
        httpd.shutdown()
        httpd.server_close()


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return result, time.perf_counter() - started


def closed_port() -> int:
    """A loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_created_assigned_and_decided_arrive_as_json_with_a_link(
    make_server: Callable[..., Server], wait_until: Callable[..., Any]
) -> None:
    with receiving() as (receiver, hook):
        server = make_server(webhook=hook)
        # through the API
        view = server.create("hooks-api", title="Release 1.4.2")
        assert server.assign("alice", view["id"]).status_code == 200
        assert server.submit("alice", view["id"], "proceed", "desk told").status_code == 200
        wait_until(lambda: len(receiver.messages) >= 3, "three notifications", seconds=10)
        link = f"{server.url}/interruptions/{view['id']}"
        created, assigned, decided = receiver.messages[:3]
        assert [m["event"] for m in receiver.messages[:3]] == [
            "create_interruption",
            "take_responsibility",
            "submit",
        ]
        assert all(
            m["interruption"] == view["id"] and m["link"] == link for m in receiver.messages[:3]
        )
        assert all(t.startswith("application/json") for t in receiver.content_types)
        assert created["state"] == "waiting"
        assert created["text"].startswith("Release 1.4.2 (Web test -> production, run hooks-api)")
        assert "waits for approval" in created["text"] and link in created["text"]
        assert "was assigned" in assigned["text"] and "responsible alice" in assigned["text"]
        assert decided["state"] == "approved" and "was decided: approved" in decided["text"]

        # through the web page: the same events
        other = server.create("hooks-web")
        alice = server.session("alice")
        try:
            path = f"/interruptions/{other['id']}"
            assert alice.post(f"{path}/assign", {"csrf": alice.csrf()}).status_code == 303
            answer = alice.post(
                f"{path}/submit",
                {"csrf": alice.csrf(), "result": "abort", "notes": "window open", "confirm": "yes"},
            )
            assert answer.status_code == 303
        finally:
            alice.close()
        wait_until(lambda: len(receiver.messages) >= 6, "three more notifications", seconds=10)
        web = receiver.messages[3:6]
        assert [(m["event"], m["state"]) for m in web] == [
            ("create_interruption", "waiting"),
            ("take_responsibility", "waiting"),
            ("submit", "aborted"),
        ]
        assert all(m["link"] == f"{server.url}{path}" for m in web)


@pytest.mark.parametrize("receiver_state", ["down", "slow"])
def test_a_receiver_that_is_down_or_slow_never_slows_the_api(
    make_server: Callable[..., Server], wait_until: Callable[..., Any], receiver_state: str
) -> None:
    with receiving("slow") as (receiver, slow_hook):
        hook = slow_hook if receiver_state == "slow" else f"http://127.0.0.1:{closed_port()}/x"
        server = make_server(webhook=hook)
        alice = server.session("alice")
        try:
            durations: dict[str, float] = {}
            for n in range(4):
                view, durations[f"create {n}"] = timed(server.create, f"slow-{n}")
                answer, durations[f"assign {n}"] = timed(server.assign, "alice", view["id"])
                assert answer.status_code == 200
                answer, durations[f"submit {n}"] = timed(
                    server.submit, "alice", view["id"], "proceed", "ok"
                )
                assert answer.status_code == 200
            # the web page's own writes notify too
            view = server.create("slow-web")
            path = f"/interruptions/{view['id']}"
            csrf = alice.csrf()
            answer, durations["web assign"] = timed(alice.post, f"{path}/assign", {"csrf": csrf})
            assert answer.status_code == 303
            answer, durations["web submit"] = timed(
                alice.post, f"{path}/submit", {"csrf": csrf, "result": "proceed"}
            )
            assert answer.status_code == 303
            answer, durations["long-poll answer"] = timed(
                server.api,
                "GET",
                f"/interruptions/{view['id']}",
                params={"wait": 5},
                headers={"If-None-Match": '"1"'},
            )
            assert answer.status_code == 200
        finally:
            alice.close()
        slow = {what: round(seconds, 3) for what, seconds in durations.items() if seconds >= FAST}
        assert len(slow) <= len(durations) // 4, f"calls slowed by the webhook: {slow}"
        if receiver_state == "slow":
            # the webhook really was in play: the receiver holds a request
            wait_until(lambda: receiver.requests >= 1, "a webhook request", seconds=5)
            assert receiver.messages == []
        assert httpx.get(f"{server.url}/api/v1/health", timeout=FAST).status_code == 200


def test_an_answer_that_is_not_http_does_not_stop_the_notifications(
    make_server: Callable[..., Server], wait_until: Callable[..., Any]
) -> None:
    with receiving("garbage-first") as (receiver, hook):
        server = make_server(webhook=hook)
        view = server.create("garbage")
        assert server.assign("bob", view["id"]).status_code == 200
        # the first attempt gets garbage; a retry (after 1 s) and the next event must arrive
        wait_until(
            lambda: len(receiver.messages) >= 2, "notifications after a bad answer", seconds=4
        )
        assert [m["event"] for m in receiver.messages] == [
            "create_interruption",
            "take_responsibility",
        ]
