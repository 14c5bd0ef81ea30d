"""The ASGI application: the JSON API (``runner.server.api``) under ``/api/v1`` (OpenAPI at
``/api/v1/openapi.json``), and the one place where what the server refuses
(``runner.server.errors``) becomes an HTTP status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from runner.server import api
from runner.server.bodies import BoundedBodies
from runner.server.changes import REREAD_SECONDS, Changes, Notify, Writes
from runner.server.errors import (
    Conflict,
    Forbidden,
    Invalid,
    Malformed,
    NotFound,
    ServerError,
    Unauthenticated,
)
from runner.server.limits import BODY_SECONDS
from runner.server.storage import Store

#: the one mapping from what the server refuses to an HTTP status; storage knows no HTTP
STATUS: dict[type[ServerError], int] = {
    Malformed: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
}


def status_of(error: ServerError) -> int:
    """The HTTP status of ``error``: its nearest class in ``STATUS`` (a subclass such as
    ``TooLarge`` answers as its parent)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServerError)
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}}, status_code=status_of(exc)
    )


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
    message = "; ".join(problems) or "the request is not valid"
    return JSONResponse({"error": {"code": "invalid", "message": message}}, status_code=422)


#: the API's error code of each status the framework itself answers with
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """What the framework refuses by itself (an unparsable body, an unknown route) in the API's
    error shape, not FastAPI's own ``{"detail": ...}``."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": {"code": HTTP_CODES.get(exc.status_code, "http_error"), "message": exc.detail}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def create_app(
    store: Store,
    *,
    notify: Notify | None = None,
    reread_seconds: float = REREAD_SECONDS,
    body_seconds: float = BODY_SECONDS,
) -> FastAPI:
    """The API on ``store``; ``notify`` hears of every write to an interruption (the webhook);
    another replica's writes are seen within ``reread_seconds``; a request body must arrive
    within ``body_seconds``."""
    changes = Changes(reread_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        changes.bind()
        rereader = asyncio.create_task(changes.reread_forever(store))
        try:
            yield
        finally:
            rereader.cancel()

    app = FastAPI(
        lifespan=lifespan,
        title="runner approval server",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.store = store
    app.state.changes = changes
    app.state.writes = Writes(store, changes, notify)
    app.add_middleware(BoundedBodies, seconds=body_seconds, authenticate=store.authenticate)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ServerError, _refused)
    app.include_router(api.router)
    return app
