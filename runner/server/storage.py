"""The approval server's storage as one object: each method opens one transaction and hands it
to the repository of its table (``people``, ``tokens``, ``web_sessions``, ``interruptions``,
``runs``, ``locks``, ``audit_log``) or to the decision service (``decisions``).

SQLite by default, PostgreSQL by URL (``database.make_engine``). Refusals are
``runner.server.errors``; the HTTP statuses are ``runner.server.app``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from runner.approvals.identity import Directory, Person
from runner.server import (
    audit_log,
    interruptions,
    locks,
    people,
    runs,
    tokens,
    web_sessions,
)
from runner.server.database import make_engine, migrate
from runner.server.decisions import Decisions
from runner.server.errors import Conflict
from runner.server.tokens import Caller
from runner.server.values import now

__all__ = ["Caller", "Store", "make_engine", "migrate", "now"]

T = TypeVar("T")


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.decisions = Decisions(engine)

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    def _read(self, func: Callable[[Connection], T]) -> T:
        with self.engine.connect() as c:
            return func(c)

    def _write(self, func: Callable[[Connection], T]) -> T:
        with self.engine.begin() as c:
            return func(c)

    def _write_twice(self, func: Callable[[Connection], T]) -> T:
        """``func`` in a transaction, and once more in another when a concurrent request
        inserted the same row first (it is then judged against that row)."""
        try:
            return self._write(func)
        except IntegrityError:
            return self._write(func)

    # -- people, teams, tokens, web sessions -------------------------------------------------

    def import_directory(self, directory: Directory, actor: str = "import") -> int:
        return self._write(lambda c: people.import_directory(c, directory, actor))

    def directory(self) -> Directory:
        return self._read(people.directory)

    def add_person(self, person: Person) -> None:
        try:
            self._write(lambda c: people.add(c, person))
        except IntegrityError:
            raise Conflict(
                "person_exists",
                f"there is already a person with the username {person.username!r} or the id "
                f"{person.id!r}",
            ) from None

    def set_team(self, team: str, usernames: list[str]) -> None:
        self._write(lambda c: people.set_team(c, team, usernames))

    def issue_token(self, kind: str, username: str | None = None, label: str = "") -> str:
        """A new token, returned once; only its hash is stored."""
        return self._write(lambda c: tokens.issue(c, kind, username, label))

    def revoke_token(self, token_id: str) -> bool:
        return self._write(lambda c: tokens.revoke(c, token_id))

    def list_tokens(self) -> list[dict[str, Any]]:
        return self._read(tokens.listing)

    def authenticate(self, token: str) -> Caller | None:
        return self._read(lambda c: tokens.authenticate(c, token))

    def caller_by_id(self, token_id: str) -> Caller | None:
        """The caller of a live (not revoked) token that acts as a person, by its id."""
        return self._read(lambda c: tokens.person_caller(c, token_id))

    def start_web_session(self, token_id: str, *, lifetime: float) -> str:
        return self._write(lambda c: web_sessions.start(c, token_id, lifetime=lifetime))

    def web_session_caller(self, session_id: str) -> Caller | None:
        return self._read(lambda c: web_sessions.caller(c, session_id))

    def end_web_session(self, session_id: str) -> None:
        self._write(lambda c: web_sessions.end(c, session_id))

    # -- interruptions -----------------------------------------------------------------------

    def create_interruption(self, request: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return self.decisions.create(request, caller)

    def take_responsibility(
        self, interruption_id: str, person: Person, reassign: bool
    ) -> dict[str, Any]:
        return self.decisions.take_responsibility(interruption_id, person, reassign)

    def submit(
        self, interruption_id: str, person: Person, result: str, notes: str, fields: dict[str, str]
    ) -> dict[str, Any]:
        return self.decisions.submit(interruption_id, person, result, notes, fields)

    def cancel(self, interruption_id: str, reason: str, caller: Caller) -> dict[str, Any]:
        return self.decisions.cancel(interruption_id, reason, caller)

    def get(self, interruption_id: str) -> dict[str, Any]:
        return self._read(lambda c: interruptions.view(c, interruption_id))

    def version(self, interruption_id: str) -> int | None:
        return self._read(lambda c: interruptions.version(c, interruption_id))

    def versions(self, interruption_ids: list[str]) -> dict[str, int]:
        return self._read(lambda c: interruptions.versions(c, interruption_ids))

    def list_interruptions(self, *, pending: bool, run: str | None) -> list[dict[str, Any]]:
        return self._read(lambda c: interruptions.listing(c, pending=pending, run=run))

    def history(self, interruption_id: str) -> list[dict[str, Any]]:
        return self._read(lambda c: audit_log.history(c, interruption_id))

    # -- runs and locks ----------------------------------------------------------------------

    def put_run(self, run_id: str, record: dict[str, Any], caller: Caller) -> None:
        """Keep the runner's copy of a run record (``runs.put`` says what is refused)."""
        self._write_twice(lambda c: runs.put(c, run_id, record, caller.token_id))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._read(lambda c: runs.get(c, run_id))

    def list_runs(self) -> list[dict[str, Any]]:
        return self._read(runs.listing)

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
        """Take, renew or hand over the deployment lock ``key`` (see ``runner.server.locks``)."""
        return self._write_twice(
            lambda c: locks.acquire(
                c, key, owner=owner, run_id=run_id, caller=caller, lease=lease, detached=detached
            )
        )

    def release_lock(self, key: str, owner: str, caller: Caller) -> bool:
        return self._write(lambda c: locks.release(c, key, owner, caller))

    def list_locks(self) -> list[dict[str, Any]]:
        return self._read(locks.listing)

    def break_lock(self, key: str, actor: str, reason: str) -> dict[str, Any] | None:
        return self._write(lambda c: locks.break_(c, key, actor, reason))

    # -- audit -------------------------------------------------------------------------------

    def audit_entries(self) -> list[dict[str, Any]]:
        return self._read(audit_log.entries)
