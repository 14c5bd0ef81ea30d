"""Deployment locks: one deployment per key (workflow and environment) at a time.

A lock is held by an owner (the holding process's random token, stored hashed), never by a run
id: another process naming the same run is refused. The holder renews its lease (a heartbeat);
once the lease has run out (the holder was killed), anyone may take it. A detached holder
(waiting at a ``block-deployments`` step) hands it to its own run's resume: the same run id,
through the token the lock was taken with.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from runner.server import audit_log
from runner.server import tables as t
from runner.server.tokens import Caller
from runner.server.values import aware, hash_token, iso, now


def acquire(
    c: Connection,
    key: str,
    *,
    owner: str,
    run_id: str,
    caller: Caller,
    lease: float,
    detached: bool,
) -> dict[str, Any]:
    """Take, renew or hand over the lock ``key``; ``taken`` False names the holder. An
    ``IntegrityError`` when another process inserted the key's first row in the meantime."""
    owner_hash = hash_token(owner)
    moment = now()
    expires = moment + timedelta(seconds=lease)
    row = c.execute(select(t.locks).where(t.locks.c.key == key).with_for_update()).first()
    values = {
        "owner_hash": owner_hash,
        "token_id": caller.token_id,
        "run_id": run_id,
        "detached": detached,
        "expires": expires,
    }
    if row is None:
        c.execute(insert(t.locks).values(key=key, since=moment, **values))
        _audit(c, "lock-taken", caller, key, run_id, {})
    elif row.owner_hash == owner_hash:
        # the holder's heartbeat, or its detach: the run id stays what it was
        c.execute(
            update(t.locks).where(t.locks.c.key == key).values(detached=detached, expires=expires)
        )
    elif row.expires is not None and aware(row.expires) <= moment:
        c.execute(update(t.locks).where(t.locks.c.key == key).values(since=moment, **values))
        _audit(
            c,
            "lock-taken",
            caller,
            key,
            run_id,
            {"expired": {"run_id": row.run_id, "expires": iso(row.expires)}},
        )
    elif (
        row.detached
        and row.run_id == run_id
        and row.token_id is not None
        and row.token_id == caller.token_id
    ):
        c.execute(update(t.locks).where(t.locks.c.key == key).values(**values))
        _audit(c, "lock-handed-over", caller, key, run_id, {})
    else:
        return {
            "taken": False,
            "run_id": row.run_id,
            "since": iso(row.since),
            "expires": iso(row.expires),
            "detached": bool(row.detached),
        }
    return {"taken": True, "run_id": run_id, "expires": iso(expires)}


def release(c: Connection, key: str, owner: str, caller: Caller) -> bool:
    """Release the lock if ``owner`` holds it; True when it did."""
    row = c.execute(select(t.locks).where(t.locks.c.key == key).with_for_update()).first()
    if row is None or row.owner_hash != hash_token(owner):
        return False
    c.execute(delete(t.locks).where(t.locks.c.key == key))
    _audit(c, "lock-released", caller, key, row.run_id, {})
    return True


def listing(c: Connection) -> list[dict[str, Any]]:
    moment = now()
    return [
        {
            "key": r.key,
            "run_id": r.run_id,
            "token_id": r.token_id,
            "detached": bool(r.detached),
            "since": iso(r.since),
            "expires": iso(r.expires),
            "expired": r.expires is not None and aware(r.expires) <= moment,
        }
        for r in c.execute(select(t.locks).order_by(t.locks.c.since))
    ]


def break_(c: Connection, key: str, actor: str, reason: str) -> dict[str, Any] | None:
    """An administrator removes a lock whoever holds it (audited); None if there was none."""
    row = c.execute(select(t.locks).where(t.locks.c.key == key).with_for_update()).first()
    if row is None:
        return None
    c.execute(delete(t.locks).where(t.locks.c.key == key))
    broken = {
        "key": key,
        "run_id": row.run_id,
        "token_id": row.token_id,
        "since": iso(row.since),
        "expires": iso(row.expires),
    }
    audit_log.append(c, "lock-broken", None, actor, {**broken, "reason": reason})
    return broken


def _audit(
    c: Connection, kind: str, caller: Caller, key: str, run_id: str, data: dict[str, Any]
) -> None:
    audit_log.append(
        c, kind, None, f"{caller.kind}:{caller.token_id}", {"key": key, "run_id": run_id, **data}
    )
