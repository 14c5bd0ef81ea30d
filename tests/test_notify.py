"""Posting to a chat webhook (``runner.notify``), against a real receiver on loopback: the one
way the runner and its server post, and every way a post fails is one error."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runner.model import Webhook
from runner.notify import WebhookError, post_json, webhook_url


class Receiver:
    """What a receiver got; ``answer`` is the status it replies with, or ``garbage``."""

    def __init__(self) -> None:
        self.answer: int | str = 200
        self.bodies: list[Any] = []
        self.content_types: list[str] = []


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.bodies.append(json.loads(body))
            got.content_types.append(self.headers.get("Content-Type", ""))
            if got.answer == "garbage":
                self.wfile.write(b"garbage\r\n\r\n")
                self.close_connection = True
                return
            assert isinstance(got.answer, int)
            self.send_response(got.answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        yield got, f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_message_arrives_as_json(receiver: tuple[Receiver, str]) -> None:
    got, url = receiver
    post_json(url, {"text": "Deployment of Shop to production is waiting ✓"})
    assert got.bodies == [{"text": "Deployment of Shop to production is waiting ✓"}]
    assert got.content_types == ["application/json"]


def test_an_http_error_is_a_failed_post(receiver: tuple[Receiver, str]) -> None:
    got, url = receiver
    got.answer = 500
    with pytest.raises(WebhookError, match=r"^the webhook answered HTTP 500$"):
        post_json(url, {"text": "x"})


def test_an_answer_that_is_not_http_is_a_failed_post(receiver: tuple[Receiver, str]) -> None:
    """http.client raises its own errors here, not OSErrors: they must not escape as tracebacks."""
    got, url = receiver
    got.answer = "garbage"
    with pytest.raises(WebhookError):
        post_json(url, {"text": "x"})


def test_a_receiver_that_is_not_there_is_a_failed_post() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WebhookError, match=r"^the webhook's host refused the connection$"):
        post_json(f"http://127.0.0.1:{port}/hook", {"text": "x"})


@pytest.mark.parametrize("url", ["not a url", "ftp://", "http://"])
def test_a_url_that_is_not_one_is_a_failed_post(url: str) -> None:
    """``url-env`` names a variable whose value no schema checked."""
    with pytest.raises(WebhookError):
        post_json(url, {"text": "x"})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://ci:S3cretHookPassw0rd@127.0.0.1:notaport/hook", "the webhook's URL is malformed"),
        ("S3cretHookPassw0rd://x/y", "the webhook's URL is not an http or https URL"),
        (
            "https://S3cretHookPassw0rd.invalid/hook",
            "the webhook's host name could not be resolved",
        ),
    ],
)
def test_a_failed_posts_message_quotes_no_part_of_the_url(url: str, message: str) -> None:
    """The message quoted what urllib said (``nonnumeric port: 'S3cretHookPassw0rd@127.0.0.1'``),
    which the masker, knowing the URL only whole, let through."""
    with pytest.raises(WebhookError) as caught:
        post_json(url, {"text": "x"}, timeout=5)
    assert str(caught.value) == message


def test_a_failed_post_is_an_os_error_for_callers_that_catch_network_failures() -> None:
    assert issubclass(WebhookError, OSError)


@pytest.mark.parametrize(
    ("hook", "environ", "expected"),
    [
        (None, {"HOOK": "https://chat.example.com/x"}, None),
        (Webhook(url="https://chat.example.com/a"), {}, "https://chat.example.com/a"),
        (
            Webhook(url_env="HOOK"),
            {"HOOK": "https://chat.example.com/b"},
            "https://chat.example.com/b",
        ),
        (Webhook(url_env="HOOK"), {}, None),
        (Webhook(url_env="HOOK"), {"HOOK": ""}, None),
    ],
)
def test_the_hooks_url_is_written_or_read_from_its_variable(
    hook: Webhook | None, environ: dict[str, str], expected: str | None
) -> None:
    assert webhook_url(hook, environ) == expected
