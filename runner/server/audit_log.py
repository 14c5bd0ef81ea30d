"""The audit table: entries appended in the writer's transaction, each chained to the one
before by hash (``runner.server.audit`` computes and verifies the chain)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert, select, text

from runner.server import tables as t
from runner.server.audit import GENESIS, entry_hash
from runner.server.values import iso, now

#: serialises appends on PostgreSQL, where two transactions could read the same last hash
#: (SQLite writers are serialised by BEGIN IMMEDIATE already)
_APPEND_LOCK = 727274


def append(
    c: Connection,
    kind: str,
    interruption_id: str | None,
    actor: str,
    data: dict[str, Any],
) -> None:
    """Append one entry chained to the previous by hash."""
    if c.dialect.name == "postgresql":
        c.execute(text(f"SELECT pg_advisory_xact_lock({_APPEND_LOCK})"))
    last = c.execute(select(t.audit.c.hash).order_by(t.audit.c.seq.desc()).limit(1)).first()
    previous = last.hash if last else GENESIS
    moment = now()
    entry = {
        "at": iso(moment),
        "kind": kind,
        "interruption_id": interruption_id,
        "actor": actor,
        "data": json.loads(json.dumps(data, default=str)),
    }
    c.execute(
        insert(t.audit).values(
            at=moment,
            kind=kind,
            interruption_id=interruption_id,
            actor=actor,
            data=entry["data"],
            prev_hash=previous,
            hash=entry_hash(previous, entry),
        )
    )


def entries(c: Connection) -> list[dict[str, Any]]:
    """Every entry, in order, as exported and verified."""
    return [
        {
            "seq": r.seq,
            "at": iso(r.at),
            "kind": r.kind,
            "interruption_id": r.interruption_id,
            "actor": r.actor,
            "data": r.data,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
        }
        for r in c.execute(select(t.audit).order_by(t.audit.c.seq))
    ]


def history(c: Connection, interruption_id: str) -> list[dict[str, Any]]:
    """What happened to one interruption, in order (the web page's history)."""
    return [
        {"at": iso(r.at), "kind": r.kind, "actor": r.actor, "data": r.data}
        for r in c.execute(
            select(t.audit)
            .where(t.audit.c.interruption_id == interruption_id)
            .order_by(t.audit.c.seq)
        )
    ]
