"""People and teams: who may approve, as the runner's people-and-teams file says."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from runner.approvals.identity import Directory, Person
from runner.server import audit_log
from runner.server import tables as t
from runner.server.errors import NotFound


def person_of(row: Any) -> Person:
    return Person(
        row.id,
        row.username,
        row.display_name,
        row.email,
        tuple(row.ssh_principals or ()),
        tuple(row.ci_logins or ()),
    )


def _columns(person: Person) -> dict[str, Any]:
    return {
        "username": person.username,
        "display_name": person.display_name,
        "email": person.email,
        "ci_logins": list(person.ci_logins),
        "ssh_principals": list(person.ssh_principals),
    }


def directory(c: Connection) -> Directory:
    """Everyone and every team, as the runner's ``Directory``."""
    people = [person_of(r) for r in c.execute(select(t.people).order_by(t.people.c.username))]
    by_id = {p.id: p.username for p in people}
    teams: dict[str, set[str]] = {}
    for row in c.execute(select(t.team_members)):
        teams.setdefault(row.team, set()).add(by_id.get(row.person_id, ""))
    return Directory(tuple(people), {k: frozenset(v) for k, v in teams.items()}, "server")


def by_id(c: Connection, person_id: str) -> Person | None:
    row = c.execute(select(t.people).where(t.people.c.id == person_id)).first()
    return None if row is None else person_of(row)


def by_username(c: Connection, username: str) -> Person:
    row = c.execute(select(t.people).where(t.people.c.username == username)).first()
    if row is None:
        raise NotFound("unknown_person", f"no person {username!r}")
    return person_of(row)


def import_directory(c: Connection, imported: Directory, actor: str) -> int:
    """Add or update everyone in ``imported`` and replace every team with its teams."""
    for person in imported.people:
        exists = c.execute(select(t.people.c.id).where(t.people.c.id == person.id)).first()
        if exists:
            c.execute(update(t.people).where(t.people.c.id == person.id).values(**_columns(person)))
        else:
            c.execute(insert(t.people).values(id=person.id, **_columns(person)))
    c.execute(delete(t.team_members))
    ids = {p.username: p.id for p in imported.people}
    for team, members in imported.teams.items():
        for username in sorted(members):
            c.execute(insert(t.team_members).values(team=team, person_id=ids[username]))
    audit_log.append(
        c,
        "people-imported",
        None,
        actor,
        {"people": len(imported.people), "teams": len(imported.teams)},
    )
    return len(imported.people)


def add(c: Connection, person: Person) -> None:
    """Add one person; an ``IntegrityError`` when the id or username is taken."""
    c.execute(insert(t.people).values(id=person.id, **_columns(person)))
    audit_log.append(c, "person-added", None, "admin", {"username": person.username})


def set_team(c: Connection, team: str, usernames: list[str]) -> None:
    """Make ``team`` exactly these people; ``NotFound`` names the first unknown one."""
    ids = [by_username(c, name).id for name in usernames]
    c.execute(delete(t.team_members).where(t.team_members.c.team == team))
    for person_id in ids:
        c.execute(insert(t.team_members).values(team=team, person_id=person_id))
    audit_log.append(c, "team-set", None, "admin", {"team": team, "members": usernames})
