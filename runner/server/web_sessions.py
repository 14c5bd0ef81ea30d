"""Server-side sessions of the web pages: the cookie carries only a session's id."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import Connection, delete, insert, select, update

from runner.server import tables as t
from runner.server import tokens
from runner.server.tokens import Caller
from runner.server.values import now


def start(c: Connection, token_id: str, *, lifetime: float) -> str:
    """A new session for a signed-in approver. Sessions signed out, or older than ``lifetime``
    seconds (their cookie no longer verifies), are deleted on the way."""
    session_id = secrets.token_urlsafe(32)
    moment = now()
    c.execute(
        delete(t.web_sessions).where(
            t.web_sessions.c.ended.is_not(None)
            | (t.web_sessions.c.started < moment - timedelta(seconds=lifetime))
        )
    )
    c.execute(
        insert(t.web_sessions).values(id=session_id, token_id=token_id, started=moment, ended=None)
    )
    return session_id


def caller(c: Connection, session_id: str) -> Caller | None:
    """The caller of a session that was not signed out and whose token is still live."""
    row = c.execute(select(t.web_sessions).where(t.web_sessions.c.id == session_id)).first()
    if row is None or row.ended is not None:
        return None
    return tokens.person_caller(c, row.token_id)


def end(c: Connection, session_id: str) -> None:
    c.execute(
        update(t.web_sessions)
        .where(t.web_sessions.c.id == session_id, t.web_sessions.c.ended.is_(None))
        .values(ended=now())
    )
