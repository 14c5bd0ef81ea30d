"""The runner's copies of run records: written only by the token that created one, and what a
record settled (the run's identity, every finished step, a finished run) stays."""

from __future__ import annotations

from typing import Any

from msgspec import Struct, ValidationError, convert, field
from sqlalchemy import Connection, insert, select, update

from runner.server import tables as t
from runner.server.errors import Conflict, Forbidden, Invalid, NotFound
from runner.server.values import as_json, now

#: step statuses that may still change; any other is settled
UNSETTLED_STEPS = frozenset({"pending", "running", "waiting", "interrupted"})
#: what names a run: fixed when it starts
RUN_IDENTITY = (
    "run_id",
    "workflow_path",
    "workflow_name",
    "digest",
    "environment",
    "files",
    "inputs",
    "started_by",
    "started_at",
    "commit",
    "trust_commit",
)


class StepShape(Struct):
    """What the server and its pages read of a step of a run record (``RunRecord``'s types)."""

    id: str = ""
    name: str = ""
    status: str = ""
    approval: dict[str, Any] | None = None


class RunShape(Struct):
    """What the server and its pages read of a run record: a field is optional, as in
    ``runner.engine.record.RunRecord``, but has its type when present; others are the
    runner's own."""

    run_id: str
    status: str = ""
    steps: list[StepShape] = field(default_factory=list)
    workflow_name: str = ""
    environment: str = ""
    started_at: str = ""
    started_by: dict[str, str] = field(default_factory=dict)


def shape_problem(record: Any) -> str | None:
    """Why ``record`` is not a run record the server can keep and show, or None (a record
    without `started_by`, or with `steps` not a list, made its page a bare 500: attack pass)."""
    try:
        convert(record, RunShape)
    except ValidationError as exc:
        return str(exc)
    return None


def rewritten(stored: Any, new: dict[str, Any]) -> str | None:
    """Why ``new`` would rewrite what ``stored`` settled, or None when it only goes on."""
    if not isinstance(stored, dict):
        return None
    if as_json(stored) == as_json(new):
        return None
    if stored.get("status") not in ("running", "waiting"):
        return f"the run has finished ({stored.get('status')}); its record no longer changes"
    for name in RUN_IDENTITY:
        if as_json(stored.get(name)) != as_json(new.get(name)):
            return f"`{name}` is fixed when a run starts (another run with the same id?)"
    steps = new.get("steps")
    by_id = (
        {s.get("id"): s for s in steps if isinstance(s, dict)} if isinstance(steps, list) else {}
    )
    for step in stored.get("steps") or []:
        if not isinstance(step, dict) or step.get("status") in UNSETTLED_STEPS:
            continue
        if as_json(by_id.get(step.get("id"))) != as_json(step):
            return f"step {step.get('id')!r} has finished ({step.get('status')}); it cannot change"
    return None


def put(c: Connection, run_id: str, record: dict[str, Any], owner: str) -> None:
    """Keep ``record`` for the token ``owner``: ``Forbidden`` when another token created it,
    ``Conflict`` when it rewrites what was settled; an ``IntegrityError`` when another request
    created it in the meantime; ``Invalid`` when it is no run record."""
    problem = shape_problem(record)
    if problem:
        raise Invalid("bad_request", f"not a run record: {problem}")
    row = c.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
    if row is None:
        c.execute(insert(t.runs).values(run_id=run_id, record=record, updated=now(), owner=owner))
        return
    if row.owner != owner:
        raise Forbidden(
            "not_owner",
            f"run {run_id} is kept on the server by another token; only the token "
            "that created a run record may write it",
        )
    problem = rewritten(row.record, record)
    if problem:
        raise Conflict("record_rewritten", f"run {run_id}: {problem}")
    c.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(record=record, updated=now()))


def get(c: Connection, run_id: str) -> dict[str, Any]:
    row = c.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
    if row is None:
        raise NotFound("not_found", f"no run {run_id!r}")
    record: dict[str, Any] = row.record
    return record


def listing(c: Connection) -> list[dict[str, Any]]:
    return [r.record for r in c.execute(select(t.runs).order_by(t.runs.c.updated))]
