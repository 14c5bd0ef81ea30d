"""Writes to interruptions and what follows each: the long-polls woken, the webhook sent.

``Writes`` is the one chain of write, wake and notify; the API and the web pages both call it.
``Changes`` wakes the long-polls (``GET /interruptions/{id}?wait=S``) of one interruption when it
changes, here or on another replica on the same database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastapi.concurrency import run_in_threadpool

from runner.approvals.identity import Person
from runner.server.storage import Caller, Store

#: how often the versions of waited-on interruptions are re-read (another replica's writes)
REREAD_SECONDS = 5.0

Notify = Callable[[str, dict[str, Any]], None]


class Changes:
    """Wakes the long-polls of one interruption when it changes.

    Only the waiters of the interruption that changed wake up, so a submit costs the same with
    1,000 other runners waiting. A write by this process wakes them at once; a write by another
    replica is seen by one task that reads the versions of every waited-on interruption in one
    query each ``reread_seconds`` (not each waiter on its own: 1,000 waiters made that 200
    queries a second).
    """

    def __init__(self, reread_seconds: float = REREAD_SECONDS) -> None:
        self.reread_seconds = reread_seconds
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
            await asyncio.sleep(self.reread_seconds)
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
        """Called after a write (from the event loop or a worker thread)."""
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


class Writes:
    """Each write to an interruption, in a worker thread, then its waiters woken and the
    webhook told (``runner.server.notify`` names the events it sends)."""

    def __init__(self, store: Store, changes: Changes, notify: Notify | None) -> None:
        self.store = store
        self.changes = changes
        self.notify = notify

    async def create(self, request: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return await self._write(
            "create_interruption", self.store.create_interruption, request, caller
        )

    async def take_responsibility(
        self, interruption_id: str, person: Person, reassign: bool
    ) -> dict[str, Any]:
        return await self._write(
            "take_responsibility",
            self.store.take_responsibility,
            interruption_id,
            person,
            reassign,
        )

    async def submit(
        self, interruption_id: str, person: Person, result: str, notes: str, fields: dict[str, str]
    ) -> dict[str, Any]:
        return await self._write(
            "submit", self.store.submit, interruption_id, person, result, notes, fields
        )

    async def cancel(self, interruption_id: str, reason: str, caller: Caller) -> dict[str, Any]:
        return await self._write("cancel", self.store.cancel, interruption_id, reason, caller)

    async def _write(
        self, event: str, func: Callable[..., dict[str, Any]], *args: Any
    ) -> dict[str, Any]:
        view = await run_in_threadpool(func, *args)
        self.changes.changed(view["id"])
        if self.notify is not None:
            self.notify(event, view)
        return view
