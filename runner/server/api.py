"""The JSON API under ``/api/v1``: a router of plain functions; the application state they use
(the store, the writes, the long-poll changes) comes from ``runner.server.app``.

Long-polls (``GET /interruptions/{id}?wait=S``) wait on an in-process notification that every
write triggers, and re-read the database every few seconds as well, so replicas behind a load
balancer see each other's writes too.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from runner.approvals.identity import Person
from runner.bounded import loads
from runner.server.bodies import CALLER_KEY, token_caller
from runner.server.changes import Changes, Writes
from runner.server.errors import Forbidden, Invalid, NotFound
from runner.server.storage import Caller, Store

MAX_WAIT = 60.0
#: a lock's lease while its holder runs (renewed by its heartbeat), and while it is detached at a
#: ``block-deployments`` step (until the step's deadline, at most this)
MAX_LEASE = 3600.0
MAX_DETACHED_LEASE = 30 * 24 * 3600.0


class InterruptionIn(BaseModel):
    model_config = {"extra": "allow"}
    id: str
    run_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    step_id: str


class Responsible(BaseModel):
    reassign: bool = False


class SubmitIn(BaseModel):
    result: str = Field(pattern="^(proceed|abort|retry|skip|fail)$")
    notes: str = ""
    fields: dict[str, str] = Field(default_factory=dict)


class CancelIn(BaseModel):
    reason: str = Field(default="cancelled", max_length=200)


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


# -- what every route may depend on -----------------------------------------------------------
# (coroutines: FastAPI runs a plain function dependency in the thread pool, a hop per request
# that 1,000 waiting long-polls pay for)


async def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def writes_of(request: Request) -> Writes:
    writes: Writes = request.app.state.writes
    return writes


async def changes_of(request: Request) -> Changes:
    changes: Changes = request.app.state.changes
    return changes


async def caller(
    request: Request,
    authorization: str | None = Header(default=None),
    store: Store = Depends(store_of),
) -> Caller:
    found: Caller | None = request.scope.get(CALLER_KEY)
    if found is not None:
        return found  # checked before the body was read (``BoundedBodies``)
    return await run_in_threadpool(token_caller, authorization, store.authenticate)


def need(who: Caller, *kinds: str) -> None:
    """Refuse a caller whose token is none of ``kinds`` (an admin token may do anything).
    Called in the route, after the body was validated, as it always was."""
    if who.kind not in kinds and who.kind != "admin":
        raise Forbidden("forbidden", f"a {who.kind} token cannot do this")


def person_of(who: Caller) -> Person:
    need(who, "approver")
    if who.person is None:
        raise Forbidden("forbidden", "only an approver token acts as a person")
    return who.person


# -- routes ------------------------------------------------------------------------------------

router = APIRouter(prefix="/api/v1")


@router.post("/interruptions", status_code=201)
async def create(
    body: InterruptionIn, who: Caller = Depends(caller), writes: Writes = Depends(writes_of)
) -> dict[str, Any]:
    need(who, "runner")
    # its shape, sizes and texts are judged by the decision service (Decisions.create)
    return await writes.create(body.model_dump(), who)


@router.get("/interruptions")
async def listing(
    pending: bool = False,
    run: str | None = None,
    who: Caller = Depends(caller),
    store: Store = Depends(store_of),
) -> list[dict[str, Any]]:
    need(who, "approver")
    result: list[dict[str, Any]] = await run_in_threadpool(
        lambda: store.list_interruptions(pending=pending, run=run)
    )
    return result


@router.get("/interruptions/{interruption_id}")
async def read(
    interruption_id: str,
    response: Response,
    wait: float = Query(default=0, ge=0, le=MAX_WAIT),
    if_none_match: str | None = Header(default=None),
    who: Caller = Depends(caller),
    store: Store = Depends(store_of),
    changes: Changes = Depends(changes_of),
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


@router.put("/interruptions/{interruption_id}/responsible")
async def responsible(
    interruption_id: str,
    body: Responsible,
    who: Caller = Depends(caller),
    writes: Writes = Depends(writes_of),
) -> dict[str, Any]:
    return await writes.take_responsibility(interruption_id, person_of(who), body.reassign)


@router.post("/interruptions/{interruption_id}/submit")
async def submit(
    interruption_id: str,
    body: SubmitIn,
    who: Caller = Depends(caller),
    writes: Writes = Depends(writes_of),
) -> dict[str, Any]:
    person = person_of(who)
    # the limits of notes and fields are the decision service's (Decisions.submit)
    return await writes.submit(interruption_id, person, body.result, body.notes, body.fields)


@router.post("/interruptions/{interruption_id}/cancel")
async def cancel(
    interruption_id: str,
    body: CancelIn,
    who: Caller = Depends(caller),
    writes: Writes = Depends(writes_of),
) -> dict[str, Any]:
    need(who, "runner")
    return await writes.cancel(interruption_id, body.reason, who)


@router.put("/runs/{run_id}")
async def put_run(
    run_id: str,
    request: Request,
    who: Caller = Depends(caller),
    store: Store = Depends(store_of),
) -> dict[str, str]:
    need(who, "runner")
    try:
        record = loads(await request.body(), what="the run record")
    except ValueError:
        raise Invalid("bad_request", "the body must be a JSON run record") from None
    if not isinstance(record, dict) or record.get("run_id") != run_id:
        raise Invalid("bad_request", "the record's run_id must match the URL")
    await run_in_threadpool(store.put_run, run_id, record, who)
    return {"run_id": run_id}


@router.get("/runs/{run_id}")
async def get_run(
    run_id: str, who: Caller = Depends(caller), store: Store = Depends(store_of)
) -> dict[str, Any]:
    result: dict[str, Any] = await run_in_threadpool(store.get_run, run_id)
    return result


@router.post("/locks/{key}")
async def lock(
    key: str, body: LockIn, who: Caller = Depends(caller), store: Store = Depends(store_of)
) -> dict[str, Any]:
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


@router.post("/locks/{key}/release")
async def unlock(
    key: str, body: UnlockIn, who: Caller = Depends(caller), store: Store = Depends(store_of)
) -> dict[str, Any]:
    """Release the lock if this owner holds it (no one else can)."""
    need(who, "runner")
    released = await run_in_threadpool(store.release_lock, key, body.owner, who)
    return {"key": key, "released": released}


@router.get("/locks")
async def locks(
    who: Caller = Depends(caller), store: Store = Depends(store_of)
) -> list[dict[str, Any]]:
    need(who, "admin")
    result: list[dict[str, Any]] = await run_in_threadpool(store.list_locks)
    return result


@router.post("/locks/{key}/break")
async def break_lock(
    key: str, body: BreakIn, who: Caller = Depends(caller), store: Store = Depends(store_of)
) -> dict[str, Any]:
    """An administrator removes a lock whoever holds it; audited."""
    need(who, "admin")
    broken = await run_in_threadpool(store.break_lock, key, f"admin:{who.token_id}", body.reason)
    if broken is None:
        raise NotFound("not_found", f"no lock {key!r}")
    return broken


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
