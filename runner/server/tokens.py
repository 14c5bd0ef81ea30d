"""API tokens: issued once, stored as a hash; a token is a caller (runner, approver, admin)."""

from __future__ import annotations

import secrets
from typing import Any

from msgspec import Struct
from sqlalchemy import Connection, insert, select, update

from runner.approvals.identity import Person
from runner.server import audit_log, people
from runner.server import tables as t
from runner.server.errors import Malformed
from runner.server.values import hash_token, iso, now

KINDS = ("runner", "approver", "admin")


class Caller(Struct, frozen=True):
    kind: str  # runner | approver | admin
    token_id: str
    person: Person | None


def issue(c: Connection, kind: str, username: str | None, label: str) -> str:
    """A new token, returned once; only its hash is stored. An approver token acts as
    ``username`` (``NotFound`` when there is no such person)."""
    if kind not in KINDS:
        raise Malformed("bad_kind", "token kind must be runner, approver or admin")
    person_id = people.by_username(c, username or "").id if kind == "approver" else None
    token_id = secrets.token_hex(6)
    token = f"rnr_{token_id}_{secrets.token_urlsafe(32)}"
    c.execute(
        insert(t.tokens).values(
            id=token_id,
            hash=hash_token(token),
            kind=kind,
            person_id=person_id,
            label=label,
            created=now(),
            revoked=False,
        )
    )
    audit_log.append(
        c, "token-issued", None, "admin", {"token": token_id, "kind": kind, "person": username}
    )
    return token


def revoke(c: Connection, token_id: str) -> bool:
    done = c.execute(update(t.tokens).where(t.tokens.c.id == token_id).values(revoked=True))
    if done.rowcount:
        audit_log.append(c, "token-revoked", None, "admin", {"token": token_id})
    return bool(done.rowcount)


def listing(c: Connection) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "person_id": r.person_id,
            "label": r.label,
            "created": iso(r.created),
            "revoked": r.revoked,
        }
        for r in c.execute(select(t.tokens).order_by(t.tokens.c.created))
    ]


def _caller(c: Connection, row: Any) -> Caller | None:
    if row is None or row.revoked:
        return None
    if not row.person_id:
        return Caller(row.kind, row.id, None)
    person = people.by_id(c, row.person_id)
    return None if person is None else Caller(row.kind, row.id, person)


def authenticate(c: Connection, token: str) -> Caller | None:
    """The caller of a live token, or None."""
    return _caller(
        c, c.execute(select(t.tokens).where(t.tokens.c.hash == hash_token(token))).first()
    )


def person_caller(c: Connection, token_id: str) -> Caller | None:
    """The caller of a live token that acts as a person, by its id: web sessions re-check it."""
    row = c.execute(select(t.tokens).where(t.tokens.c.id == token_id)).first()
    if row is None or not row.person_id:
        return None
    return _caller(c, row)
