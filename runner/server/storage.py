"""Storage of the approval server on SQLAlchemy: SQLite by default, PostgreSQL by URL.

Every rule of the manual step is enforced here too (teams, quorum by distinct people,
self-approval, fields), with the same judging code the runner uses. Responsibility is taken with one
conditional ``UPDATE``, so among concurrent takers exactly one wins on either database.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from runner.approvals.identity import Directory, Person
from runner.approvals.quorum import check_fields, judge
from runner.approvals.request import Interruption, Result, Submission, slot
from runner.approvals.server_source import differing_fields
from runner.server import tables as t
from runner.server.errors import (
    Conflict,
    Forbidden,
    Invalid,
    Malformed,
    NotFound,
)


@dataclass(frozen=True)
class Caller:
    kind: str  # runner | approver | admin
    token_id: str
    person: Person | None


def now() -> datetime:
    return datetime.now(UTC)


def _result(result: str) -> Result:
    """A result ``submit`` accepted, typed."""
    for known in ("proceed", "abort", "retry", "skip", "fail"):
        if result == known:
            return known
    raise Invalid("bad_result", f"unknown result {result[:40]!r}")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    # PostgreSQL answers in its session's time zone: always UTC here (the audit hash covers it)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back (stored as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


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


def rewritten(stored: Any, new: dict[str, Any]) -> str | None:
    """Why ``new`` would rewrite what ``stored`` settled, or None when it only goes on."""
    if not isinstance(stored, dict):
        return None
    if _as_json(stored) == _as_json(new):
        return None
    if stored.get("status") not in ("running", "waiting"):
        return f"the run has finished ({stored.get('status')}); its record no longer changes"
    for name in RUN_IDENTITY:
        if _as_json(stored.get(name)) != _as_json(new.get(name)):
            return f"`{name}` is fixed when a run starts (another run with the same id?)"
    steps = new.get("steps")
    by_id = (
        {s.get("id"): s for s in steps if isinstance(s, dict)} if isinstance(steps, list) else {}
    )
    for step in stored.get("steps") or []:
        if not isinstance(step, dict) or step.get("status") in UNSETTLED_STEPS:
            continue
        if _as_json(by_id.get(step.get("id"))) != _as_json(step):
            return f"step {step.get('id')!r} has finished ({step.get('status')}); it cannot change"
    return None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_connection: Any, record: Any) -> None:
            # let SQLAlchemy issue BEGIN itself, and make it IMMEDIATE: writers queue up
            # instead of failing with "database is locked" when they upgrade a read lock
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (Alembic ``upgrade head``)."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("runner.server") / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    # -- people, teams, tokens ---------------------------------------------------------------

    def import_directory(self, directory: Directory, actor: str = "import") -> int:
        with self.tx() as c:
            for person in directory.people:
                values = {
                    "username": person.username,
                    "display_name": person.display_name,
                    "email": person.email,
                    "ci_logins": list(person.ci_logins),
                    "ssh_principals": list(person.ssh_principals),
                }
                exists = c.execute(select(t.people.c.id).where(t.people.c.id == person.id)).first()
                if exists:
                    c.execute(update(t.people).where(t.people.c.id == person.id).values(**values))
                else:
                    c.execute(insert(t.people).values(id=person.id, **values))
            c.execute(delete(t.team_members))
            ids = {p.username: p.id for p in directory.people}
            for team, members in directory.teams.items():
                for username in sorted(members):
                    c.execute(insert(t.team_members).values(team=team, person_id=ids[username]))
            self.append_audit(
                c,
                "people-imported",
                None,
                actor,
                {"people": len(directory.people), "teams": len(directory.teams)},
            )
        return len(directory.people)

    def directory(self, c: Connection | None = None) -> Directory:
        def load(conn: Connection) -> Directory:
            people = [
                Person(
                    r.id,
                    r.username,
                    r.display_name,
                    r.email,
                    tuple(r.ssh_principals or ()),
                    tuple(r.ci_logins or ()),
                )
                for r in conn.execute(select(t.people).order_by(t.people.c.username))
            ]
            by_id = {p.id: p.username for p in people}
            teams: dict[str, set[str]] = {}
            for row in conn.execute(select(t.team_members)):
                teams.setdefault(row.team, set()).add(by_id.get(row.person_id, ""))
            return Directory(tuple(people), {k: frozenset(v) for k, v in teams.items()}, "server")

        if c is not None:
            return load(c)
        with self.engine.connect() as conn:
            return load(conn)

    def add_person(self, person: Person) -> None:
        try:
            self._add_person(person)
        except IntegrityError:
            raise Conflict(
                "person_exists",
                f"there is already a person with the username {person.username!r} or the id "
                f"{person.id!r}",
            ) from None

    def _add_person(self, person: Person) -> None:
        with self.tx() as c:
            c.execute(
                insert(t.people).values(
                    id=person.id,
                    username=person.username,
                    display_name=person.display_name,
                    email=person.email,
                    ci_logins=list(person.ci_logins),
                    ssh_principals=list(person.ssh_principals),
                )
            )
            self.append_audit(c, "person-added", None, "admin", {"username": person.username})

    def set_team(self, team: str, usernames: list[str]) -> None:
        with self.tx() as c:
            directory = self.directory(c)
            ids = []
            for name in usernames:
                person = directory.by_username(name)
                if person is None:
                    raise NotFound("unknown_person", f"no person {name!r}")
                ids.append(person.id)
            c.execute(delete(t.team_members).where(t.team_members.c.team == team))
            for person_id in ids:
                c.execute(insert(t.team_members).values(team=team, person_id=person_id))
            self.append_audit(c, "team-set", None, "admin", {"team": team, "members": usernames})

    def issue_token(self, kind: str, username: str | None = None, label: str = "") -> str:
        """A new token, returned once; only its hash is stored."""
        if kind not in ("runner", "approver", "admin"):
            raise Malformed("bad_kind", "token kind must be runner, approver or admin")
        with self.tx() as c:
            person_id = None
            if kind == "approver":
                person = self.directory(c).by_username(username or "")
                if person is None:
                    raise NotFound("unknown_person", f"no person {username!r}")
                person_id = person.id
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
            self.append_audit(
                c,
                "token-issued",
                None,
                "admin",
                {"token": token_id, "kind": kind, "person": username},
            )
        return token

    def revoke_token(self, token_id: str) -> bool:
        with self.tx() as c:
            done = c.execute(
                update(t.tokens).where(t.tokens.c.id == token_id).values(revoked=True)
            ).rowcount
            if done:
                self.append_audit(c, "token-revoked", None, "admin", {"token": token_id})
        return bool(done)

    def list_tokens(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "person_id": r.person_id,
                    "label": r.label,
                    "created": _iso(r.created),
                    "revoked": r.revoked,
                }
                for r in c.execute(select(t.tokens).order_by(t.tokens.c.created))
            ]

    def authenticate(self, token: str) -> Caller | None:
        with self.engine.connect() as c:
            row = c.execute(select(t.tokens).where(t.tokens.c.hash == hash_token(token))).first()
            if row is None or row.revoked:
                return None
            person = None
            if row.person_id:
                found = c.execute(select(t.people).where(t.people.c.id == row.person_id)).first()
                if found is None:
                    return None
                person = Person(
                    found.id,
                    found.username,
                    found.display_name,
                    found.email,
                    tuple(found.ssh_principals or ()),
                    tuple(found.ci_logins or ()),
                )
            return Caller(row.kind, row.id, person)

    def caller_by_id(self, token_id: str) -> Caller | None:
        """The caller of a live (not revoked) token, by its id: web sessions re-check it."""
        with self.engine.connect() as c:
            row = c.execute(select(t.tokens).where(t.tokens.c.id == token_id)).first()
            if row is None or row.revoked or not row.person_id:
                return None
            found = c.execute(select(t.people).where(t.people.c.id == row.person_id)).first()
            if found is None:
                return None
            person = Person(
                found.id,
                found.username,
                found.display_name,
                found.email,
                tuple(found.ssh_principals or ()),
                tuple(found.ci_logins or ()),
            )
            return Caller(row.kind, row.id, person)

    def start_web_session(self, token_id: str, *, lifetime: float) -> str:
        """A new server-side web session for a signed-in approver; the cookie carries its id.
        Sessions signed out, or older than ``lifetime`` seconds (their cookie no longer
        verifies), are deleted on the way."""
        session_id = secrets.token_urlsafe(32)
        moment = now()
        with self.tx() as c:
            c.execute(
                delete(t.web_sessions).where(
                    t.web_sessions.c.ended.is_not(None)
                    | (t.web_sessions.c.started < moment - timedelta(seconds=lifetime))
                )
            )
            c.execute(
                insert(t.web_sessions).values(
                    id=session_id, token_id=token_id, started=moment, ended=None
                )
            )
        return session_id

    def web_session_caller(self, session_id: str) -> Caller | None:
        """The caller of a web session that was not signed out and whose token is still live."""
        with self.engine.connect() as c:
            row = c.execute(select(t.web_sessions).where(t.web_sessions.c.id == session_id)).first()
        if row is None or row.ended is not None:
            return None
        return self.caller_by_id(row.token_id)

    def end_web_session(self, session_id: str) -> None:
        with self.tx() as c:
            c.execute(
                update(t.web_sessions)
                .where(t.web_sessions.c.id == session_id, t.web_sessions.c.ended.is_(None))
                .values(ended=now())
            )

    def history(self, interruption_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [
                {"at": _iso(r.at), "kind": r.kind, "actor": r.actor, "data": r.data}
                for r in c.execute(
                    select(t.audit)
                    .where(t.audit.c.interruption_id == interruption_id)
                    .order_by(t.audit.c.seq)
                )
            ]

    # -- interruptions -----------------------------------------------------------------------

    def view(self, c: Connection, interruption_id: str) -> dict[str, Any]:
        row = c.execute(
            select(t.interruptions).where(t.interruptions.c.id == interruption_id)
        ).first()
        if row is None:
            raise NotFound("not_found", f"no interruption {interruption_id!r}")
        subs = [
            {
                "id": s.id,
                "username": s.username,
                "person_id": s.person_id,
                "result": s.result,
                "notes": s.notes,
                "fields": s.fields,
                "at": _iso(s.at),
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
            "request": row.request,
            "state": row.state,
            "responsible": row.responsible,
            "version": row.version,
            "created": _iso(row.created),
            "updated": _iso(row.updated),
            "submissions": subs,
        }

    def create_interruption(self, request: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """Create, or find again (idempotent on run id and step, so a restarted runner finds its
        own)."""
        try:
            parsed = Interruption.from_dict(request)
        except (TypeError, ValueError, KeyError) as exc:
            raise Invalid("bad_request", f"not an interruption: {exc}") from None
        # the id is derived from the run and step, never taken from the caller: a runner token
        # must not be able to claim another run's interruption first
        parsed = replace(parsed, id=f"{parsed.run_id}--{slot(parsed)}")
        try:
            return self._create(parsed, caller)
        except IntegrityError:
            pass
        # another runner created it at the same moment (the create is idempotent), or the id of
        # another run and step is the same text (`a--b` + `c`, `a` + `b--c`)
        with self.engine.connect() as c:
            found = self._of_step(c, parsed)
        if found is None:
            raise Conflict("id_taken", f"interruption {parsed.id} belongs to another run and step")
        return self._same_request(self.get(found), parsed)

    @staticmethod
    def _of_step(c: Connection, parsed: Interruption) -> str | None:
        """The id of the interruption of this run and step, if there is one."""
        row = c.execute(
            select(t.interruptions.c.id).where(
                (t.interruptions.c.run_id == parsed.run_id)
                & (t.interruptions.c.step_id == slot(parsed))
            )
        ).first()
        return None if row is None else str(row.id)

    def _create(self, parsed: Interruption, caller: Caller) -> dict[str, Any]:
        with self.tx() as c:
            existing = self._of_step(c, parsed)
            if existing is None:
                moment = now()
                c.execute(
                    insert(t.interruptions).values(
                        id=parsed.id,
                        run_id=parsed.run_id,
                        # a failed step's question per attempt beside the step (guided failure)
                        step_id=slot(parsed),
                        request=parsed.to_dict(),
                        state="waiting",
                        responsible=None,
                        version=1,
                        created=moment,
                        updated=moment,
                    )
                )
                self.append_audit(
                    c,
                    "created",
                    parsed.id,
                    f"runner:{caller.token_id}",
                    {
                        "run_id": parsed.run_id,
                        "step": parsed.step_id,
                        "environment": parsed.environment,
                    },
                )
                return self.view(c, parsed.id)
            view = self.view(c, existing)
        return self._same_request(view, parsed)

    @staticmethod
    def _same_request(view: dict[str, Any], parsed: Interruption) -> dict[str, Any]:
        """``view`` when it holds exactly ``parsed``'s request, else a 409."""
        differ = differing_fields(view["request"], parsed.to_dict())
        if differ:
            # a second, different request under an existing run and step would be answered by
            # the first one's decisions: a staging approval replayed in production, or an
            # interruption registered ahead of a real run (issue #17)
            raise Conflict(
                "request_differs",
                f"run {parsed.run_id} already has an interruption at step {parsed.step_id} "
                f"asking something else (differs in: {', '.join(differ)}); a run id is used "
                "once: start this run with another --run-id",
            )
        return view

    def _lock_row(self, c: Connection, interruption_id: str) -> None:
        """Serialise decisions on one interruption (PostgreSQL row lock; SQLite writers are
        serialised by BEGIN IMMEDIATE already), so two submits cannot both be accepted."""
        c.execute(
            select(t.interruptions.c.id)
            .where(t.interruptions.c.id == interruption_id)
            .with_for_update()
        )

    def get(self, interruption_id: str) -> dict[str, Any]:
        with self.engine.connect() as c:
            return self.view(c, interruption_id)

    def version(self, interruption_id: str) -> int | None:
        with self.engine.connect() as c:
            row = c.execute(
                select(t.interruptions.c.version).where(t.interruptions.c.id == interruption_id)
            ).first()
            return None if row is None else int(row.version)

    def versions(self, interruption_ids: list[str]) -> dict[str, int]:
        """The version of each of these interruptions that exists, in one query per 500."""
        found: dict[str, int] = {}
        with self.engine.connect() as c:
            for start in range(0, len(interruption_ids), 500):
                chunk = interruption_ids[start : start + 500]
                rows = c.execute(
                    select(t.interruptions.c.id, t.interruptions.c.version).where(
                        t.interruptions.c.id.in_(chunk)
                    )
                )
                found.update({row.id: int(row.version) for row in rows})
        return found

    def list_interruptions(self, *, pending: bool, run: str | None) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            query = select(t.interruptions.c.id).order_by(t.interruptions.c.created)
            if pending:
                query = query.where(t.interruptions.c.state == "waiting")
            if run:
                query = query.where(t.interruptions.c.run_id == run)
            return [self.view(c, r.id) for r in c.execute(query)]

    def _may_decide(self, request: dict[str, Any], person: Person, directory: Directory) -> None:
        teams = request.get("teams") or []
        if teams and not any(person.username in directory.members(team) for team in teams):
            raise Forbidden("not_in_team", f"{person.username} is not in team {' or '.join(teams)}")

    def take_responsibility(
        self, interruption_id: str, person: Person, reassign: bool
    ) -> dict[str, Any]:
        with self.tx() as c:
            self._lock_row(c, interruption_id)
            current = self.view(c, interruption_id)
            if current["state"] != "waiting":
                raise Conflict("decided", f"the interruption is {current['state']}")
            self._may_decide(current["request"], person, self.directory(c))
            condition = t.interruptions.c.id == interruption_id
            if not reassign:
                condition &= t.interruptions.c.responsible.is_(None) | (
                    t.interruptions.c.responsible == person.username
                )
            condition &= t.interruptions.c.state == "waiting"
            done = c.execute(
                update(t.interruptions)
                .where(condition)
                .values(
                    responsible=person.username,
                    version=t.interruptions.c.version + 1,
                    updated=now(),
                )
            ).rowcount
            if not done:
                holder = self.view(c, interruption_id)["responsible"]
                raise Conflict(
                    "responsible_taken",
                    f"{holder} has taken responsibility; reassign explicitly",
                )
            previous = current["responsible"]
            kind = "reassigned" if previous and previous != person.username else "assigned"
            self.append_audit(
                c, kind, interruption_id, person.username, {"from": previous, "to": person.username}
            )
            return self.view(c, interruption_id)

    def submit(
        self, interruption_id: str, person: Person, result: str, notes: str, fields: dict[str, str]
    ) -> dict[str, Any]:
        kind = Interruption.from_dict(self.get(interruption_id)["request"])
        allowed = kind.choices if kind.guided else ("proceed", "abort")
        if result not in allowed:
            raise Invalid("bad_result", f"result must be {' or '.join(allowed)}")
        if result in ("abort", "skip", "fail") and not notes.strip():
            article = "an" if result == "abort" else "a"
            raise Invalid("notes_required", f"{article} {result} needs notes saying why")
        # field patterns are matched here, before the transaction (a slow match must never hold
        # the database's write lock); a stored request never changes, so the check still holds
        stored = kind
        problem = check_fields(stored.fields, fields, result)
        with self.tx() as c:
            self._lock_row(c, interruption_id)
            current = self.view(c, interruption_id)
            if current["state"] != "waiting":
                raise Conflict("decided", f"the interruption is {current['state']}")
            # who may decide at all comes before who holds it now
            directory = self.directory(c)
            self._may_decide(current["request"], person, directory)
            if current["responsible"] != person.username:
                raise Forbidden(
                    "not_responsible",
                    "take responsibility before submitting"
                    + (f" ({current['responsible']} has it)" if current["responsible"] else ""),
                )
            request = Interruption.from_dict(current["request"])
            if problem:
                raise Invalid("bad_fields", problem)
            started_by = directory.by_login(request.started_by)
            if (
                request.prevent_self_approval
                and started_by is not None
                and started_by.username == person.username
            ):
                raise Forbidden(
                    "self_approval",
                    f"{person.username} started this run and may not approve it",
                )
            stop = "fail" if request.guided else "abort"
            if result != stop and any(
                s["username"] == person.username and s["result"] != stop
                for s in current["submissions"]
            ):
                raise Conflict(
                    "already_counted", f"{person.username} already counted toward this step"
                )
            moment = now()
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
            submissions = [
                Submission(
                    "server",
                    s["result"],
                    s["username"],
                    "username",
                    s["notes"],
                    s["fields"],
                    s["at"],
                    key=str(s["id"]),
                )
                for s in current["submissions"]
            ] + [
                Submission(
                    "server",
                    _result(result),
                    person.username,
                    "username",
                    notes,
                    fields,
                    _iso(moment) or "",
                    key="new",
                )
            ]
            # every submission's fields were checked on its way in (above, for this one): judge
            # who counts without matching patterns again inside the transaction
            verdict = judge(
                replace(request, fields=()),
                [replace(s, fields={}) for s in submissions],
                directory,
                started_by,
            )
            state = {"approved": "approved", "aborted": "aborted"}.get(verdict.state, "waiting")
            c.execute(
                update(t.interruptions)
                .where(t.interruptions.c.id == interruption_id)
                .values(
                    state=state,
                    responsible=None,
                    version=t.interruptions.c.version + 1,
                    updated=moment,
                )
            )
            self.append_audit(
                c,
                "submitted",
                interruption_id,
                person.username,
                {"result": result, "notes": notes, "fields": fields, "state": state},
            )
            return self.view(c, interruption_id)

    def cancel(self, interruption_id: str, reason: str, caller: Caller) -> dict[str, Any]:
        with self.tx() as c:
            self._lock_row(c, interruption_id)
            current = self.view(c, interruption_id)
            if current["state"] == "waiting":
                state = "timed-out" if reason == "timed-out" else "cancelled"
                c.execute(
                    update(t.interruptions)
                    .where(t.interruptions.c.id == interruption_id)
                    .values(
                        state=state,
                        responsible=None,
                        version=t.interruptions.c.version + 1,
                        updated=now(),
                    )
                )
                self.append_audit(
                    c, state, interruption_id, f"runner:{caller.token_id}", {"reason": reason}
                )
            return self.view(c, interruption_id)

    # -- runs and locks ----------------------------------------------------------------------

    def put_run(self, run_id: str, record: dict[str, Any], caller: Caller) -> None:
        """Keep the runner's copy of a run record. The token that created it owns it (any other
        gets 403), and what is settled stays: the run's identity, every finished step, and the
        whole of a finished run (a changed one is a 409)."""
        try:
            self._put_run(run_id, record, caller)
        except IntegrityError:
            # created by another request at the same moment: judged against that one now
            self._put_run(run_id, record, caller)

    def _put_run(self, run_id: str, record: dict[str, Any], caller: Caller) -> None:
        with self.tx() as c:
            row = c.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                c.execute(
                    insert(t.runs).values(
                        run_id=run_id, record=record, updated=now(), owner=caller.token_id
                    )
                )
                return
            if row.owner != caller.token_id:
                raise Forbidden(
                    "not_owner",
                    f"run {run_id} is kept on the server by another token; only the token "
                    "that created a run record may write it",
                )
            problem = rewritten(row.record, record)
            if problem:
                raise Conflict("record_rewritten", f"run {run_id}: {problem}")
            c.execute(
                update(t.runs).where(t.runs.c.run_id == run_id).values(record=record, updated=now())
            )

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as c:
            row = c.execute(select(t.runs).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise NotFound("not_found", f"no run {run_id!r}")
            record: dict[str, Any] = row.record
            return record

    def list_runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [r.record for r in c.execute(select(t.runs).order_by(t.runs.c.updated))]

    def acquire_lock(
        self,
        key: str,
        *,
        owner: str,
        run_id: str,
        caller: Caller,
        lease: float,
        detached: bool = False,
    ) -> dict[str, Any]:
        """Take, renew or hand over the deployment lock ``key`` for the process whose random
        ``owner`` token this is; ``taken`` False names the holder.

        A lock is held by an owner, never by a run id: another process naming the same run is
        refused. The holder renews its lease (a heartbeat); once the lease has run out (the
        holder was killed), anyone may take it. A detached holder (waiting at a
        ``block-deployments`` step) hands it to its own run's resume: the same run id, through
        the token the lock was taken with.
        """
        try:
            return self._acquire_lock(key, owner, run_id, caller, lease, detached)
        except IntegrityError:
            # another process inserted the first row of this key at the same moment: judge
            # again against that row
            return self._acquire_lock(key, owner, run_id, caller, lease, detached)

    def _acquire_lock(
        self, key: str, owner: str, run_id: str, caller: Caller, lease: float, detached: bool
    ) -> dict[str, Any]:
        owner_hash = hash_token(owner)
        moment = now()
        expires = moment + timedelta(seconds=lease)
        with self.tx() as c:
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
                self._lock_audit(c, "lock-taken", caller, key, run_id, {})
            elif row.owner_hash == owner_hash:
                # the holder's heartbeat, or its detach: the run id stays what it was
                c.execute(
                    update(t.locks)
                    .where(t.locks.c.key == key)
                    .values(detached=detached, expires=expires)
                )
            elif row.expires is not None and _aware(row.expires) <= moment:
                c.execute(
                    update(t.locks).where(t.locks.c.key == key).values(since=moment, **values)
                )
                self._lock_audit(
                    c,
                    "lock-taken",
                    caller,
                    key,
                    run_id,
                    {"expired": {"run_id": row.run_id, "expires": _iso(row.expires)}},
                )
            elif (
                row.detached
                and row.run_id == run_id
                and row.token_id is not None
                and row.token_id == caller.token_id
            ):
                c.execute(update(t.locks).where(t.locks.c.key == key).values(**values))
                self._lock_audit(c, "lock-handed-over", caller, key, run_id, {})
            else:
                return {
                    "taken": False,
                    "run_id": row.run_id,
                    "since": _iso(row.since),
                    "expires": _iso(row.expires),
                    "detached": bool(row.detached),
                }
            return {"taken": True, "run_id": run_id, "expires": _iso(expires)}

    def release_lock(self, key: str, owner: str, caller: Caller) -> bool:
        """Release the lock if ``owner`` holds it; True when it did."""
        with self.tx() as c:
            row = c.execute(select(t.locks).where(t.locks.c.key == key).with_for_update()).first()
            if row is None or row.owner_hash != hash_token(owner):
                return False
            c.execute(delete(t.locks).where(t.locks.c.key == key))
            self._lock_audit(c, "lock-released", caller, key, row.run_id, {})
            return True

    def list_locks(self) -> list[dict[str, Any]]:
        moment = now()
        with self.engine.connect() as c:
            return [
                {
                    "key": r.key,
                    "run_id": r.run_id,
                    "token_id": r.token_id,
                    "detached": bool(r.detached),
                    "since": _iso(r.since),
                    "expires": _iso(r.expires),
                    "expired": r.expires is not None and _aware(r.expires) <= moment,
                }
                for r in c.execute(select(t.locks).order_by(t.locks.c.since))
            ]

    def break_lock(self, key: str, actor: str, reason: str) -> dict[str, Any] | None:
        """An administrator removes a lock whoever holds it (audited); None if there was none."""
        with self.tx() as c:
            row = c.execute(select(t.locks).where(t.locks.c.key == key).with_for_update()).first()
            if row is None:
                return None
            c.execute(delete(t.locks).where(t.locks.c.key == key))
            broken = {
                "key": key,
                "run_id": row.run_id,
                "token_id": row.token_id,
                "since": _iso(row.since),
                "expires": _iso(row.expires),
            }
            self.append_audit(c, "lock-broken", None, actor, {**broken, "reason": reason})
            return broken

    def _lock_audit(
        self,
        c: Connection,
        kind: str,
        caller: Caller,
        key: str,
        run_id: str,
        data: dict[str, Any],
    ) -> None:
        self.append_audit(
            c,
            kind,
            None,
            f"{caller.kind}:{caller.token_id}",
            {"key": key, "run_id": run_id, **data},
        )

    # -- audit -------------------------------------------------------------------------------

    def append_audit(
        self,
        c: Connection,
        kind: str,
        interruption_id: str | None,
        actor: str,
        data: dict[str, Any],
    ) -> None:
        """Append one entry chained to the previous by hash (see ``runner.server.audit``)."""
        from runner.server.audit import entry_hash

        if self.postgres:
            c.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        last = c.execute(select(t.audit.c.hash).order_by(t.audit.c.seq.desc()).limit(1)).first()
        previous = last.hash if last else "0" * 64
        moment = now()
        entry = {
            "at": _iso(moment),
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

    def audit_entries(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [
                {
                    "seq": r.seq,
                    "at": _iso(r.at),
                    "kind": r.kind,
                    "interruption_id": r.interruption_id,
                    "actor": r.actor,
                    "data": r.data,
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                }
                for r in c.execute(select(t.audit).order_by(t.audit.c.seq))
            ]
