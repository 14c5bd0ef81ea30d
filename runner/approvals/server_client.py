"""A small client of the approval server's API, for the runner and for approvers' commands.

Retries connection errors, timeouts and 5xx answers with exponential backoff and jitter, honouring
``Retry-After``; a 4xx answer is final. A call given a ``budget`` (the seconds left before a step's
deadline) never waits past it, whatever ``Retry-After`` says (issue #17: a 503 with
``Retry-After: 300`` kept a runner whose step timed out after 18 s waiting for 200 s). TLS is
verified (``ca-bundle`` for private CAs). The token never appears in an error message or a log.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from runner.bounded import loads
from runner.errors import ApprovalError, UsageError
from runner.errors import ServerAnswer as ServerAnswer
from runner.urls import url_problem

RETRY_STATUSES = {429, 500, 502, 503, 504}


#: where the token is read from when `approvals.server.token-env` names no variable
DEFAULT_TOKEN_ENV = "RUNNER_SERVER_TOKEN"


class ServerClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        ca_bundle: str | None = None,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import requests

        problem = url_problem(url)
        if problem:
            # ``--server localhost:8080`` was retried as if the server were down (requests reads
            # ``localhost`` as a scheme), and ``http://[::1`` ended in an internal error
            raise UsageError(
                f"approval server URL {problem}",
                hint="write it in full, with http:// or https://, e.g. http://localhost:8080",
            )
        self.base = url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "runner"
        self.verify: bool | str = ca_bundle or True
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.timeout = timeout
        self.clock = clock

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
        attempts: int | None = None,
        budget: float | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body or None, headers); raise ApprovalError when it cannot be had.

        With ``budget`` (seconds), neither the retries' sleeps nor the connection's timeouts
        reach past that many seconds from now: the call gives up instead."""
        import requests

        tries = attempts or self.attempts
        end = None if budget is None else self.clock() + max(0.0, budget)
        problem = "no answer"
        for attempt in range(1, tries + 1):
            wait: float | None = None
            connect, read = 10.0, read_timeout or self.timeout
            if end is not None:
                # at least a moment to ask at all, even with nothing left
                left = max(0.5, end - self.clock())
                connect, read = min(connect, left), min(read, left)
            try:
                response = self.session.request(
                    method,
                    self.base + path,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=(connect, read),
                    verify=self.verify,
                )
            except requests.exceptions.SSLError as exc:
                raise ApprovalError(
                    f"TLS verification of the approval server failed: {type(exc).__name__}",
                    hint="set `approvals.server.ca-bundle` for a private CA",
                ) from None
            except requests.exceptions.RequestException as exc:
                problem = f"{type(exc).__name__}"
            else:
                if response.status_code in RETRY_STATUSES:
                    problem = f"HTTP {response.status_code}"
                    wait = _retry_after(response.headers.get("Retry-After"))
                else:
                    return response.status_code, _body(response), dict(response.headers)
            if attempt < tries:
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                pause = wait if wait is not None else random.uniform(delay / 2, delay)
                if end is not None:
                    left = end - self.clock()
                    if pause >= left:
                        raise ApprovalError(
                            f"the approval server did not answer properly ({problem}); not "
                            f"retrying: the step's deadline comes first"
                        )
                self.sleep(pause)
        raise ApprovalError(
            f"the approval server did not answer properly ({problem}) after {tries} attempt(s)",
            hint=f"check that the approval server runs at {_shown(self.base)} and that this "
            "machine reaches it",
        )

    def interruption(self, interruption_id: str, *, budget: float | None = None) -> dict[str, Any]:
        """The server's view of one interruption: its stored ``request`` and its decision rows
        (``submissions``: id, username, person_id, result, notes, fields, at), for a runner to
        compare with its own request and re-verify recorded decisions. ServerAnswer when the
        server refuses (404: it has none); ApprovalError when it cannot be reached or answers
        something else than an interruption."""

        body = self.call("GET", f"/interruptions/{quote(interruption_id, safe='')}", budget=budget)
        if not isinstance(body, dict) or not isinstance(body.get("submissions"), list):
            raise ApprovalError("the approval server answered something else than an interruption")
        return body

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`request` for calls that must succeed (2xx); else ServerAnswer."""
        status, body, _ = self.request(method, path, **kwargs)
        if 200 <= status < 300:
            return body
        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        raise ServerAnswer(
            status, str(error.get("code", "error")), str(error.get("message", f"HTTP {status}"))
        )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 300.0))
    except ValueError:
        return None


def _body(response: Any) -> Any:
    """The answer's JSON, or None when it is not JSON (nor UTF-8, nor shallow enough: a
    hostile or broken server gets the same treatment as a garbled answer)."""

    if not response.content:
        return None
    try:
        return loads(response.content, what="the server's answer")
    except ValueError:
        return None


def _shown(url: str) -> str:
    """``url`` as a message may show it: without a user and password written into it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address, as it was written
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=host, path=parts.path.removesuffix("/api/v1")))
