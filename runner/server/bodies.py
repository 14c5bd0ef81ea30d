"""Every request body the API reads, bounded before FastAPI parses it.

FastAPI parses a JSON body with ``json.loads`` before any handler runs, so a body nested a few
thousand levels deep reached the interpreter's recursion limit inside the framework (an answer
outside the stable error shape), and one nested a few hundred levels deep was stored and broke
the serialiser when read back. This ASGI middleware reads the body once, refuses one over
``MAX_BODY_BYTES`` (413) or nested deeper than :data:`runner.bounded.MAX_JSON_DEPTH` (422), both
in the API's error shape, and hands the same bytes on. Form posts of the web pages are only
size-checked. A request to the API without a live token is answered 401 before its body is
read: buffering it first let anyone hold memory without a token.
"""

from __future__ import annotations

import asyncio
import email.message
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from runner.bounded import check_depth
from runner.errors import InputLimitError
from runner.server.errors import Unauthenticated
from runner.server.limits import BODY_SECONDS, RUN_RECORD_BYTES, body_limit

#: the most any route takes: a run record (a run record of 5,000 steps is about 1.5 MB); other
#: routes take less (``runner.server.limits.body_limit``, issue #17)
MAX_BODY_BYTES = RUN_RECORD_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BoundedBodies:
    """ASGI middleware: the body of every request with one, checked and then replayed; one
    that has not all come within ``seconds`` is answered 408 and its connection closed (a
    client that sent part of one and stalled held its buffer and connection for ever: 1,000 of
    them held 270 MB, attack pass)."""

    def __init__(
        self,
        app: ASGIApp,
        seconds: float = BODY_SECONDS,
        authenticate: Callable[[str], Any] | None = None,
    ) -> None:
        self.app = app
        self.seconds = seconds
        #: the API's token check, made before a body is read (the route checks it again)
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        types = _values(scope, b"content-type")
        if len(types) > 1:
            # the framework reads the first and a dict of them the last: two readers of one
            # request must never disagree on what its body is (the depth check was skipped)
            await _refuse(
                send, 400, "bad_request", "the request has more than one Content-Type header"
            )
            return
        refused = await self._unauthenticated(scope)
        if refused is not None:
            # never read: up to 4 MiB of a body was buffered for anyone before the route said
            # 401 (attack pass: 1,000 stalled bodies held 350 MB without any token)
            await _refuse(send, 401, *refused, close=True)
            return
        limit = body_limit(scope)
        declared = next(iter(_values(scope, b"content-length")), "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, "too_large", _too_large(limit))
            return
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - loop.time())
            except TimeoutError:
                await _refuse(send, 408, "timeout", _too_slow(self.seconds), close=True)
                return
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse(send, 413, "too_large", _too_large(limit))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = _too_deep(body, types[0] if types else "")
        if problem:
            await _refuse(send, 422, "bad_request", problem)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _unauthenticated(self, scope: Scope) -> tuple[str, str] | None:
        """The API's 401 (code, message) for a request to it without a live token, or None;
        the caller found is kept in the scope, where the route's ``caller`` takes it."""
        if self.authenticate is None or not str(scope.get("path", "")).startswith("/api/"):
            return None
        authorization = next(iter(_values(scope, b"authorization")), None)
        try:
            scope[CALLER_KEY] = await asyncio.to_thread(
                token_caller, authorization, self.authenticate
            )
        except Unauthenticated as exc:
            return exc.code, exc.message
        return None


#: where a request's scope keeps the caller its token named (``BoundedBodies``)
CALLER_KEY = "runner.caller"

Caller = TypeVar("Caller")


def token_caller(authorization: str | None, authenticate: Callable[[str], Caller | None]) -> Caller:
    """The caller an ``Authorization: Bearer TOKEN`` header names: ``Unauthenticated`` for
    none, or a token unknown or revoked. (The API's one check: before a body is read, and in
    its routes' ``caller``.)"""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthenticated("unauthenticated", "send `Authorization: Bearer TOKEN`")
    found = authenticate(authorization[7:].strip())
    if found is None:
        raise Unauthenticated("bad_token", "the token is unknown or revoked")
    return found


def _too_slow(seconds: float) -> str:
    return f"the request body did not arrive within {seconds:g} s (see docs/approvals.md, limits)"


def _too_large(limit: int) -> str:
    return (
        f"the request body is larger than {limit // 1024} KiB, the most this server accepts "
        "here (see docs/approvals.md, limits)"
    )


def _values(scope: Scope, name: bytes) -> list[str]:
    """Every value of the header ``name`` (lower case), in the order sent."""
    return [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name]


def _read_as_json(content_type: str) -> bool:
    """Whether FastAPI parses a body of this type as JSON: with none, or an
    ``application/json`` or ``application/*+json`` type as ``email.message`` reads it (the
    test in ``fastapi.routing``, mirrored so that both judge the same bytes alike)."""
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _too_deep(body: bytes, content_type: str) -> str | None:
    """Why a body FastAPI will parse as JSON is refused: nested too deep."""
    if not body or not _read_as_json(content_type):
        return None
    try:
        # decoded as json.loads decodes bytes (UTF-8, -16 or -32): a deep body in UTF-16
        # passed a UTF-8-only check and reached the framework's parser
        text = body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError:
        return None  # not JSON text: FastAPI answers that in the usual way
    try:
        check_depth(text, what="the request body")
    except InputLimitError as exc:
        return str(exc)
    return None


async def _refuse(send: Send, status: int, code: str, message: str, *, close: bool = False) -> None:
    """Answer in the API's error shape; ``close``: and close the connection (the rest of the
    body may still come: it is not read)."""
    payload = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
