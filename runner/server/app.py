"""The ASGI application: the JSON API under ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``).

Long-polls (``GET /interruptions/{id}?wait=S``) wait on an in-process notification that every write
triggers, and re-read the database every few seconds as well, so replicas behind a load balancer
see each other's writes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from runner.bounded import loads
from runner.server.bodies import BoundedBodies
from runner.server.errors import (
    Conflict,
    Forbidden,
    Invalid,
    Malformed,
    NotFound,
    ServerError,
    TooLarge,
    Unauthenticated,
)
from runner.server.limits import LIST_ITEMS, TEXT_CHARS, request_problem
from runner.server.storage import Caller, Store

MAX_WAIT = 60.0
REREAD_SECONDS = 5.0


class Changes:
    """Wakes the long-polls of one interruption when it changes.

    Only the waiters of the interruption that changed wake up, so a submit costs the same with
    1,000 other runners waiting. A write by this process wakes them at once; a write by another
    replica is seen by one task that reads the versions of every waited-on interruption in one
    query each ``REREAD_SECONDS`` (not each waiter on its own: 1,000 waiters made that 200
    queries a second).
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.events: dict[str, asyncio.Event] = {}
        self.waiters: dict[str, int] = {}
        self.seen: dict[str, int | None] = {}
        #: the versions waiters read themselves since the last re-read, by interruption
        self.read: dict[str, set[int]] = {}

    def bind(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def reread_forever(self, store: Store) -> None:
        while True:
            await asyncio.sleep(REREAD_SECONDS)
            try:
                await self.reread(store)
            except Exception as exc:  # a database hiccup: try again next round
                logging.getLogger("runner.server").warning("re-reading versions failed: %s", exc)

    async def reread(self, store: Store) -> None:
        waited = list(self.waiters)
        for gone in set(self.seen) - set(waited):
            del self.seen[gone]
        if not waited:
            return
        read, self.read = self.read, {}
        versions = await run_in_threadpool(store.versions, waited)
        for interruption_id in waited:
            version = versions.get(interruption_id)
            # changed since the last round, or since a waiter's own read (what was seen may be
            # older than what a new waiter read, or belong to a deleted namesake)
            before = self.seen.get(interruption_id, version)
            if before != version or any(v != version for v in read.get(interruption_id, ())):
                self._wake(interruption_id)
            self.seen[interruption_id] = version

    def saw(self, interruption_id: str, version: int) -> None:
        """A waiter read ``version`` itself and is about to wait."""
        self.read.setdefault(interruption_id, set()).add(version)

    def _wake(self, interruption_id: str) -> None:
        event = self.events.get(interruption_id)
        if event is not None:
            event.set()

    def changed(self, interruption_id: str | None) -> None:
        """Called from worker threads after a write."""
        if self.loop is not None and interruption_id:
            self.loop.call_soon_threadsafe(self._wake, interruption_id)

    def subscribe(self, interruption_id: str) -> asyncio.Event:
        """Register interest before reading, so a write in between is not missed."""
        event = self.events.setdefault(interruption_id, asyncio.Event())
        self.waiters[interruption_id] = self.waiters.get(interruption_id, 0) + 1
        return event

    def unsubscribe(self, interruption_id: str, event: asyncio.Event) -> None:
        self.waiters[interruption_id] -= 1
        if self.waiters[interruption_id] == 0:
            del self.waiters[interruption_id]
            self.events.pop(interruption_id, None)
        elif event.is_set() and self.events.get(interruption_id) is event:
            # the others woke too; the next round waits on a fresh event
            self.events[interruption_id] = asyncio.Event()


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


class InterruptionIn(BaseModel):
    model_config = {"extra": "allow"}
    id: str
    run_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    step_id: str


class Responsible(BaseModel):
    reassign: bool = False


class SubmitIn(BaseModel):
    result: str = Field(pattern="^(proceed|abort|retry|skip|fail)$")
    notes: str = Field(default="", max_length=10_000)
    fields: dict[str, str] = Field(default_factory=dict)


class CancelIn(BaseModel):
    reason: str = Field(default="cancelled", max_length=200)


#: a lock's lease while its holder runs (renewed by its heartbeat), and while it is detached at a
#: ``block-deployments`` step (until the step's deadline, at most this)
MAX_LEASE = 3600.0
MAX_DETACHED_LEASE = 30 * 24 * 3600.0


class LockIn(BaseModel):
    run_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    #: the holding process's random token: only it renews or releases the lock
    owner: str = Field(min_length=16, max_length=200)
    lease: float = Field(default=60.0, ge=1.0, le=MAX_DETACHED_LEASE)
    detached: bool = False


class UnlockIn(BaseModel):
    owner: str = Field(min_length=16, max_length=200)


class BreakIn(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


def create_app(
    store: Store,
    *,
    extra: Callable[[FastAPI, Store, Changes], None] | None = None,
    notify: Callable[[str, dict[str, Any]], None] | None = None,
) -> FastAPI:
    changes = Changes()

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
    app.add_middleware(BoundedBodies)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
        message = "; ".join(problems) or "the request is not valid"
        return JSONResponse({"error": {"code": "invalid", "message": message}}, status_code=422)

    @app.exception_handler(ServerError)
    async def _server_error(request: Request, exc: ServerError) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": exc.code, "message": exc.message}}, status_code=status_of(exc)
        )

    async def caller(authorization: str | None = Header(default=None)) -> Caller:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthenticated("unauthenticated", "send `Authorization: Bearer TOKEN`")
        found = await run_in_threadpool(store.authenticate, authorization[7:].strip())
        if found is None:
            raise Unauthenticated("bad_token", "the token is unknown or revoked")
        return found

    def need(who: Caller, *kinds: str) -> None:
        if who.kind not in kinds and who.kind != "admin":
            raise Forbidden("forbidden", f"a {who.kind} token cannot do this")

    async def write(func: Callable[..., Any], *args: Any) -> Any:
        result = await run_in_threadpool(func, *args)
        changes.changed(result.get("id") if isinstance(result, dict) else None)
        if isinstance(result, dict) and "request" in result and notify is not None:
            notify(func.__name__, result)
        return result

    @app.post("/api/v1/interruptions", status_code=201)
    async def create(body: InterruptionIn, who: Caller = Depends(caller)) -> dict[str, Any]:
        need(who, "runner")
        check_size(body.model_dump())
        result: dict[str, Any] = await write(store.create_interruption, body.model_dump(), who)
        return result

    def check_size(body: dict[str, Any]) -> None:
        from runner.approvals.request import Interruption

        try:
            parsed = Interruption.from_dict(body)
        except (TypeError, ValueError, KeyError, RecursionError):
            return  # the store says what is wrong with it
        problem = request_problem(parsed)
        if problem:
            raise TooLarge("too_large", f"the request is too large: {problem}")

    @app.get("/api/v1/interruptions")
    async def listing(
        pending: bool = False, run: str | None = None, who: Caller = Depends(caller)
    ) -> list[dict[str, Any]]:
        need(who, "approver")
        result: list[dict[str, Any]] = await run_in_threadpool(
            lambda: store.list_interruptions(pending=pending, run=run)
        )
        return result

    @app.get("/api/v1/interruptions/{interruption_id}")
    async def read(
        interruption_id: str,
        response: Response,
        wait: float = Query(default=0, ge=0, le=MAX_WAIT),
        if_none_match: str | None = Header(default=None),
        who: Caller = Depends(caller),
    ) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        known = (if_none_match or "").strip('W/"')
        while True:
            event = changes.subscribe(interruption_id)
            try:
                version = await run_in_threadpool(store.version, interruption_id)
                if version is None:
                    raise NotFound("not_found", f"no interruption {interruption_id!r}")
                remaining = deadline - loop.time()
                if str(version) != known or remaining <= 0:
                    break
                changes.saw(interruption_id, version)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
            finally:
                changes.unsubscribe(interruption_id, event)
        if str(version) == known:
            return Response(status_code=304, headers={"ETag": f'"{version}"'})
        view = await run_in_threadpool(store.get, interruption_id)
        response.headers["ETag"] = f'"{view["version"]}"'
        return view

    @app.put("/api/v1/interruptions/{interruption_id}/responsible")
    async def responsible(
        interruption_id: str, body: Responsible, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        need(who, "approver")
        if who.person is None:
            raise Forbidden("forbidden", "only an approver token acts as a person")
        result: dict[str, Any] = await write(
            store.take_responsibility, interruption_id, who.person, body.reassign
        )
        return result

    @app.post("/api/v1/interruptions/{interruption_id}/submit")
    async def submit(
        interruption_id: str, body: SubmitIn, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        need(who, "approver")
        if who.person is None:
            raise Forbidden("forbidden", "only an approver token acts as a person")
        if len(body.fields) > LIST_ITEMS or any(
            len(k) > TEXT_CHARS or len(v) > TEXT_CHARS for k, v in body.fields.items()
        ):
            raise TooLarge(
                "too_large",
                f"at most {LIST_ITEMS} fields, each name and value of at most {TEXT_CHARS} "
                "characters",
            )
        result: dict[str, Any] = await write(
            store.submit, interruption_id, who.person, body.result, body.notes, body.fields
        )
        return result

    @app.post("/api/v1/interruptions/{interruption_id}/cancel")
    async def cancel(
        interruption_id: str, body: CancelIn, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        need(who, "runner")
        result: dict[str, Any] = await write(store.cancel, interruption_id, body.reason, who)
        return result

    @app.put("/api/v1/runs/{run_id}")
    async def put_run(
        run_id: str, request: Request, who: Caller = Depends(caller)
    ) -> dict[str, str]:
        need(who, "runner")
        try:
            record = loads(await request.body(), what="the run record")
        except ValueError:
            raise Invalid("bad_request", "the body must be a JSON run record") from None
        if not isinstance(record, dict) or record.get("run_id") != run_id:
            raise Invalid("bad_request", "the record's run_id must match the URL")
        await write(store.put_run, run_id, record, who)
        return {"run_id": run_id}

    @app.get("/api/v1/runs/{run_id}")
    async def get_run(run_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        result: dict[str, Any] = await run_in_threadpool(store.get_run, run_id)
        return result

    @app.post("/api/v1/locks/{key}")
    async def lock(key: str, body: LockIn, who: Caller = Depends(caller)) -> dict[str, Any]:
        """Take, renew (the holder's heartbeat) or, for a detached holder's own resume, take
        over the deployment lock ``key``; ``taken`` False names the holder."""
        need(who, "runner")
        if not body.detached and body.lease > MAX_LEASE:
            raise Invalid("bad_lease", f"a running holder's lease is at most {MAX_LEASE:.0f} s")
        result: dict[str, Any] = await run_in_threadpool(
            lambda: store.acquire_lock(
                key,
                owner=body.owner,
                run_id=body.run_id,
                caller=who,
                lease=body.lease,
                detached=body.detached,
            )
        )
        return result

    @app.post("/api/v1/locks/{key}/release")
    async def unlock(key: str, body: UnlockIn, who: Caller = Depends(caller)) -> dict[str, Any]:
        """Release the lock if this owner holds it (no one else can)."""
        need(who, "runner")
        released = await run_in_threadpool(store.release_lock, key, body.owner, who)
        return {"key": key, "released": released}

    @app.get("/api/v1/locks")
    async def locks(who: Caller = Depends(caller)) -> list[dict[str, Any]]:
        need(who, "admin")
        result: list[dict[str, Any]] = await run_in_threadpool(store.list_locks)
        return result

    @app.post("/api/v1/locks/{key}/break")
    async def break_lock(key: str, body: BreakIn, who: Caller = Depends(caller)) -> dict[str, Any]:
        """An administrator removes a lock whoever holds it; audited."""
        need(who, "admin")
        broken = await run_in_threadpool(
            store.break_lock, key, f"admin:{who.token_id}", body.reason
        )
        if broken is None:
            raise NotFound("not_found", f"no lock {key!r}")
        return broken

    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    if extra is not None:
        extra(app, store, changes)
    return app


Handler = Callable[..., Awaitable[Any]]
