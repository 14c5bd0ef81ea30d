"""Connections that say what they want in time: uvicorn's h11 protocol with a deadline for a
request's headers.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but gives a connection
that never finishes its request headers all the time in the world, and h11 has no timeout of its
own: 1,100 connections that sent nothing held every file descriptor of a server, and an approver
could no longer reach it (attack pass). A connection now has ``header_seconds`` from its opening,
or from the answer to its previous request, to send a request's headers; then it is closed. (Its
body has a deadline of its own: ``runner.server.bodies``.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from runner.server.limits import HEADER_SECONDS


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that takes longer than ``header_seconds``
    to send a request's headers."""

    header_seconds = HEADER_SECONDS
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request's headers have come
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request's headers, on a kept-alive connection

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        # h11 cannot answer (408) before a request: the connection is closed
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def with_header_deadline(seconds: float) -> type[HeaderDeadline]:
    """The protocol class (uvicorn's ``Config(http=...)``) with a deadline of ``seconds``."""
    attributes: dict[str, Any] = {"header_seconds": seconds}
    return type("HeaderDeadline", (HeaderDeadline,), attributes)
