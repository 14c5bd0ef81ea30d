"""Interruptions (a manual step waiting on the server) and the decisions submitted on them.

Every change bumps ``version``: long-polls compare it, and the ETag is made of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from runner.approvals.identity import Person
from runner.approvals.request import Interruption, slot
from runner.server import tables as t
from runner.server.errors import NotFound
from runner.server.values import iso, shown


def view(c: Connection, interruption_id: str) -> dict[str, Any]:
    """The interruption as the API shows it, with its submissions; ``NotFound`` if none."""
    row = c.execute(select(t.interruptions).where(t.interruptions.c.id == interruption_id)).first()
    if row is None:
        raise NotFound("not_found", f"no interruption {interruption_id!r}")
    subs = [
        {
            "id": s.id,
            "username": s.username,
            "person_id": s.person_id,
            "result": s.result,
            "notes": shown(s.notes),
            "fields": shown(s.fields),
            "at": iso(s.at),
        }
        for s in c.execute(
            select(t.submissions)
            .where(t.submissions.c.interruption_id == interruption_id)
            .order_by(t.submissions.c.id)
        )
    ]
    return {
        "id": row.id,
        "run_id": row.run_id,
        "step_id": row.step_id,
        "request": shown(row.request),
        "state": row.state,
        "responsible": row.responsible,
        "version": row.version,
        "created": iso(row.created),
        "updated": iso(row.updated),
        "submissions": subs,
    }


def of_step(c: Connection, run_id: str, step_id: str) -> str | None:
    """The id of the interruption of this run and step, if there is one."""
    row = c.execute(
        select(t.interruptions.c.id).where(
            (t.interruptions.c.run_id == run_id) & (t.interruptions.c.step_id == step_id)
        )
    ).first()
    return None if row is None else str(row.id)


def insert_waiting(c: Connection, request: Interruption, moment: datetime, owner: str) -> None:
    """Keep ``request`` as waiting, registered by the runner token ``owner``."""
    c.execute(
        insert(t.interruptions).values(
            id=request.id,
            run_id=request.run_id,
            # a failed step's question per attempt beside the step (guided failure)
            step_id=slot(request),
            request=request.to_dict(),
            state="waiting",
            responsible=None,
            version=1,
            created=moment,
            updated=moment,
            owner=owner,
        )
    )


def owner(c: Connection, interruption_id: str) -> str | None:
    """The id of the runner token that registered the interruption (None: registered before
    owners were kept); ``NotFound`` if there is none."""
    row = c.execute(
        select(t.interruptions.c.owner).where(t.interruptions.c.id == interruption_id)
    ).first()
    if row is None:
        raise NotFound("not_found", f"no interruption {interruption_id!r}")
    return None if row.owner is None else str(row.owner)


def lock_row(c: Connection, interruption_id: str) -> None:
    """Serialise decisions on one interruption (PostgreSQL row lock; SQLite writers are
    serialised by BEGIN IMMEDIATE already), so two submits cannot both be accepted."""
    c.execute(
        select(t.interruptions.c.id)
        .where(t.interruptions.c.id == interruption_id)
        .with_for_update()
    )


def version(c: Connection, interruption_id: str) -> int | None:
    row = c.execute(
        select(t.interruptions.c.version).where(t.interruptions.c.id == interruption_id)
    ).first()
    return None if row is None else int(row.version)


def versions(c: Connection, interruption_ids: list[str]) -> dict[str, int]:
    """The version of each of these interruptions that exists, in one query per 500."""
    found: dict[str, int] = {}
    for start in range(0, len(interruption_ids), 500):
        chunk = interruption_ids[start : start + 500]
        rows = c.execute(
            select(t.interruptions.c.id, t.interruptions.c.version).where(
                t.interruptions.c.id.in_(chunk)
            )
        )
        found.update({row.id: int(row.version) for row in rows})
    return found


def listing(c: Connection, *, pending: bool, run: str | None) -> list[dict[str, Any]]:
    query = select(t.interruptions.c.id).order_by(t.interruptions.c.created)
    if pending:
        query = query.where(t.interruptions.c.state == "waiting")
    if run:
        query = query.where(t.interruptions.c.run_id == run)
    return [view(c, r.id) for r in c.execute(query)]


def take(
    c: Connection, interruption_id: str, username: str, *, reassign: bool, moment: datetime
) -> bool:
    """Make ``username`` responsible for a waiting interruption, in one conditional ``UPDATE``
    (among concurrent takers exactly one wins); without ``reassign``, only if no one else is.
    False when another holds it."""
    condition = (t.interruptions.c.id == interruption_id) & (t.interruptions.c.state == "waiting")
    if not reassign:
        condition &= t.interruptions.c.responsible.is_(None) | (
            t.interruptions.c.responsible == username
        )
    done = c.execute(
        update(t.interruptions)
        .where(condition)
        .values(responsible=username, version=t.interruptions.c.version + 1, updated=moment)
    )
    return bool(done.rowcount)


def settle(c: Connection, interruption_id: str, state: str, moment: datetime) -> None:
    """Set the state (still ``waiting`` after a submission short of the quorum) and free the
    responsibility."""
    c.execute(
        update(t.interruptions)
        .where(t.interruptions.c.id == interruption_id)
        .values(
            state=state, responsible=None, version=t.interruptions.c.version + 1, updated=moment
        )
    )


def add_submission(
    c: Connection,
    interruption_id: str,
    person: Person,
    result: str,
    notes: str,
    fields: dict[str, str],
    moment: datetime,
) -> None:
    c.execute(
        insert(t.submissions).values(
            interruption_id=interruption_id,
            person_id=person.id,
            username=person.username,
            result=result,
            notes=notes,
            fields=fields,
            at=moment,
        )
    )
