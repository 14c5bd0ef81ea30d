"""The people-and-teams file: the one identity model every approval source uses.

::

    people:
      - id: u-alice                      # stable id (outputs: ResponsibleUser.Id)
        username: alice
        display-name: Alice Martin
        email: alice@example.com
        ssh-principals: [alice@example.com]   # names in allowed_signers
        ci-logins: [alice-gh]                 # GITHUB_ACTOR / GITLAB_USER_LOGIN values
    teams:
      trading-desk: [alice, bob]          # usernames

Loading is strict: an unknown key, a duplicate username, principal or login, or a team member who
is not a person is an error, because a typo here decides who may approve a deployment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from msgspec import Struct, field

from runner.errors import Diagnostic, Location, WorkflowError
from runner.load.yaml import LoadError, load_yaml
from runner.model import Identity

_PERSON_KEYS = {"id", "username", "display-name", "email", "ssh-principals", "ci-logins"}


class Person(Struct, frozen=True):
    id: str
    username: str
    display_name: str
    email: str = ""
    ssh_principals: tuple[str, ...] = ()
    ci_logins: tuple[str, ...] = ()

    def identity(self) -> Identity:
        return Identity(self.id, self.username, self.display_name, self.email)


#: the source of the directory a workflow without ``approvals.trust`` has: the local user alone
LOCAL_ONLY = "(local user)"


class Directory(Struct, frozen=True):
    people: tuple[Person, ...] = ()
    teams: Mapping[str, frozenset[str]] = field(default_factory=dict)
    source: str = ""

    def by_username(self, username: str) -> Person | None:
        for person in self.people:
            if person.username == username:
                return person
        return None

    def by_principal(self, principal: str) -> Person | None:
        for person in self.people:
            if principal in person.ssh_principals:
                return person
        return None

    def by_login(self, login: str) -> Person | None:
        """A person by CI login or username (how CI and the local machine name people)."""
        for person in self.people:
            if login in person.ci_logins:
                return person
        return self.by_username(login)

    def teams_of(self, person: Person) -> list[str]:
        return sorted(t for t, members in self.teams.items() if person.username in members)

    def members(self, team: str) -> frozenset[str]:
        return self.teams.get(team, frozenset())


def parse_directory(raw: bytes, source: str) -> Directory:
    """Parse a people-and-teams file; raise :class:`WorkflowError` with positioned problems."""
    try:
        doc = load_yaml(source, raw)
    except LoadError as exc:
        raise WorkflowError(exc.diagnostics) from None
    problems: list[Diagnostic] = []

    def problem(path: tuple[str | int, ...], message: str, key: bool = False) -> None:
        problems.append(Diagnostic(doc.location(path, key=key), message, "people"))

    data = doc.data
    if not isinstance(data, dict):
        raise WorkflowError(
            [
                Diagnostic(
                    Location(source, 1, 1),
                    "the people file must be a mapping with `people` and `teams`",
                    "people",
                )
            ]
        )
    for key in data:
        if key not in ("people", "teams"):
            problem((key,), f"unexpected key `{key}`; expected `people` or `teams`", key=True)
    people: list[Person] = []
    seen: dict[str, set[str]] = {"username": set(), "id": set(), "principal": set(), "login": set()}
    for i, item in enumerate(_list(data.get("people"), ("people",), problem)):
        if not isinstance(item, dict):
            problem(("people", i), "each person must be a mapping")
            continue
        for key in item:
            if key not in _PERSON_KEYS:
                problem(
                    ("people", i, key),
                    f"unexpected key `{key}` in a person; expected "
                    f"{', '.join(sorted(_PERSON_KEYS))}",
                    key=True,
                )
        username = item.get("username")
        if not isinstance(username, str) or not username:
            problem(("people", i), "a person needs a `username`")
            continue
        person = Person(
            id=str(item.get("id") or username),
            username=username,
            display_name=str(item.get("display-name") or username),
            email=str(item.get("email") or ""),
            ssh_principals=tuple(
                _strings(item.get("ssh-principals"), ("people", i, "ssh-principals"), problem)
            ),
            ci_logins=tuple(_strings(item.get("ci-logins"), ("people", i, "ci-logins"), problem)),
        )
        for kind, values in (
            ("username", [person.username]),
            ("id", [person.id]),
            ("principal", person.ssh_principals),
            ("login", person.ci_logins),
        ):
            for value in values:
                if value in seen[kind]:
                    problem(("people", i), f"{kind} {value!r} belongs to two people")
                seen[kind].add(value)
        people.append(person)
    usernames = {p.username for p in people}
    for i, person in enumerate(people):
        for login in person.ci_logins:
            if login in usernames and login != person.username:
                problem(
                    ("people", i),
                    f"CI login {login!r} of {person.username} is another "
                    "person's username; it would let one act as the other",
                )
    teams: dict[str, frozenset[str]] = {}
    raw_teams = data.get("teams") or {}
    if not isinstance(raw_teams, dict):
        problem(("teams",), "`teams` must map team names to lists of usernames")
        raw_teams = {}
    for team, members in raw_teams.items():
        names = _strings(members, ("teams", team), problem)
        for j, name in enumerate(names):
            if name not in usernames:
                problem(("teams", team, j), f"team `{team}` lists `{name}`, who is not in `people`")
        teams[str(team)] = frozenset(names)
    if problems:
        raise WorkflowError(sorted(problems, key=Diagnostic.sort_key))
    return Directory(tuple(people), teams, source)


def _list(value: Any, path: tuple[str | int, ...], problem: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problem(path, "must be a list")
        return []
    return value


def _strings(value: Any, path: tuple[str | int, ...], problem: Any) -> list[str]:
    items = _list(value, path, problem)
    result = []
    for i, item in enumerate(items):
        if isinstance(item, str) and item:
            result.append(item)
        else:
            problem((*path, i), "must be a non-empty string")
    return result


def eligible(directory: Directory, person: Person, teams: Iterable[str]) -> bool:
    """Whether ``person`` may decide a step limited to ``teams`` (anyone in the file if none)."""
    wanted = list(teams)
    return not wanted or any(person.username in directory.members(t) for t in wanted)
