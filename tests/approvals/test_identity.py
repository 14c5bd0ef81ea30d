"""The people-and-teams file: strict loading with positioned diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import ROOT

from runner.approvals.identity import Directory, Person, eligible, parse_directory
from runner.approvals.trust import load_directory
from runner.errors import ApprovalError, WorkflowError
from runner.git import Git
from runner.model import Trust

SOURCE = "approvals/people.yml"


def problems(raw: str) -> list[str]:
    with pytest.raises(WorkflowError) as caught:
        parse_directory(raw.encode(), SOURCE)
    return [f"{d.location}: {d.message}" for d in caught.value.diagnostics]


def test_the_repository_people_file_loads() -> None:
    directory = parse_directory((ROOT / SOURCE).read_bytes(), SOURCE)
    assert directory.source == SOURCE
    assert [p.username for p in directory.people] == ["alice", "bob"]
    alice = directory.by_username("alice")
    assert alice == Person(
        id="u-alice",
        username="alice",
        display_name="Alice Martin",
        email="alice@example.com",
        ssh_principals=("alice@example.com",),
        ci_logins=("alice-gh",),
    )
    assert directory.teams == {
        "trading-desk": frozenset({"alice", "bob"}),
        "dba": frozenset({"bob"}),
    }
    bob = directory.by_principal("bob@example.com")
    assert bob is not None and bob.username == "bob"
    assert directory.by_login("bobc") == bob
    assert directory.by_login("bob") == bob  # a login falls back to the username
    assert directory.by_principal("bob") is None
    assert directory.teams_of(bob) == ["dba", "trading-desk"]
    assert directory.members("nobody") == frozenset()


def test_defaults_for_a_minimal_person() -> None:
    directory = parse_directory(b"people:\n  - username: zoe\n", SOURCE)
    assert directory.people == (Person("zoe", "zoe", "zoe"),)
    assert directory.teams == {}


def test_empty_file_is_an_empty_directory() -> None:
    directory = parse_directory(b"people: []\nteams: {}\n", SOURCE)
    assert directory == Directory((), {}, SOURCE)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "people:\n  - username: alice\n    displayname: Alice\nteams: {}\nextra: 1\n",
            [
                f"{SOURCE}:3:5: unexpected key `displayname` in a person; expected ci-logins, "
                "display-name, email, id, ssh-principals, username",
                f"{SOURCE}:5:1: unexpected key `extra`; expected `people` or `teams`",
            ],
        ),
        (
            "people:\n  - username: alice\n  - username: alice\n",
            [
                f"{SOURCE}:3:5: id 'alice' belongs to two people",
                f"{SOURCE}:3:5: username 'alice' belongs to two people",
            ],
        ),
        (
            "people:\n"
            "  - username: alice\n"
            "    ssh-principals: [a@example.com]\n"
            "  - username: bob\n"
            "    ssh-principals: [b@example.com, a@example.com]\n",
            [f"{SOURCE}:4:5: principal 'a@example.com' belongs to two people"],
        ),
        (
            "people:\n"
            "  - username: alice\n"
            "    ci-logins: [ace]\n"
            "  - username: bob\n"
            "    ci-logins: [ace]\n",
            [f"{SOURCE}:4:5: login 'ace' belongs to two people"],
        ),
        (
            "people:\n  - username: alice\n    id: u-1\n  - username: bob\n    id: u-1\n",
            [f"{SOURCE}:4:5: id 'u-1' belongs to two people"],
        ),
        (
            "people:\n  - username: alice\nteams:\n  ops: [alice, zed]\n  dba: [bob]\n",
            [
                f"{SOURCE}:4:16: team `ops` lists `zed`, who is not in `people`",
                f"{SOURCE}:5:9: team `dba` lists `bob`, who is not in `people`",
            ],
        ),
        (
            "people:\n  - username: alice\nteams:\n  ops: alice\n",
            [f"{SOURCE}:4:8: must be a list"],
        ),
        (
            "people:\n  - id: x\n  - 3\n  - username: c\n    ssh-principals: ['', 4]\n",
            [
                f"{SOURCE}:2:5: a person needs a `username`",
                f"{SOURCE}:3:5: each person must be a mapping",
                f"{SOURCE}:5:22: must be a non-empty string",
                f"{SOURCE}:5:26: must be a non-empty string",
            ],
        ),
        (
            "- alice\n",
            [f"{SOURCE}:1:1: the people file must be a mapping with `people` and `teams`"],
        ),
        ("people: {alice: 1}\n", [f"{SOURCE}:1:9: must be a list"]),
        (
            "people: []\nteams: [ops]\n",
            [f"{SOURCE}:2:8: `teams` must map team names to lists of usernames"],
        ),
    ],
    ids=[
        "unknown-keys",
        "duplicate-username",
        "duplicate-principal",
        "duplicate-login",
        "duplicate-id",
        "member-not-a-person",
        "members-not-a-list",
        "bad-people",
        "not-a-mapping",
        "people-not-a-list",
        "teams-not-a-mapping",
    ],
)
def test_strict_loading_reports_every_problem_with_its_position(
    raw: str, expected: list[str]
) -> None:
    assert problems(raw) == expected


def test_login_naming_another_persons_username_is_refused() -> None:
    raw = b"people:\n  - username: alice\n    ci-logins: [bob]\n  - username: bob\n"
    try:
        directory = parse_directory(raw, SOURCE)
    except WorkflowError:
        return
    bob = directory.by_login("bob")
    assert bob is not None
    assert bob.username == "bob", f"the login `bob` names {bob.username}"


def test_error_names_the_first_problem_with_its_position() -> None:
    with pytest.raises(WorkflowError) as caught:
        parse_directory(b"people:\n  - username: a\n  - username: a\n", SOURCE)
    assert str(caught.value).startswith(f"{SOURCE}:3:5: ")
    assert {d.kind for d in caught.value.diagnostics} == {"people"}


def test_invalid_yaml_is_a_positioned_workflow_error() -> None:
    with pytest.raises(WorkflowError) as caught:
        parse_directory(b"people: [\n", SOURCE)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.location.path == SOURCE
    assert diagnostic.location.line == 2
    assert diagnostic.message.startswith("invalid YAML")


@pytest.mark.parametrize(
    ("teams", "who", "allowed"),
    [
        ((), "dave", True),
        (("ops",), "alice", True),
        (("ops",), "dave", False),
        (("dba", "ops"), "alice", True),
        (("missing",), "alice", False),
    ],
)
def test_eligible(teams: tuple[str, ...], who: str, allowed: bool) -> None:
    directory = Directory(
        (Person("alice", "alice", "Alice"), Person("dave", "dave", "Dave")),
        {"ops": frozenset({"alice"})},
    )
    person = directory.by_username(who)
    assert person is not None
    assert eligible(directory, person, teams) is allowed


def test_load_directory_from_the_working_tree(tmp_path: Path) -> None:
    (tmp_path / "approvals").mkdir()
    (tmp_path / SOURCE).write_bytes((ROOT / SOURCE).read_bytes())
    directory = load_directory(Trust(people=SOURCE), Git(tmp_path), "whoever")
    assert [p.username for p in directory.people] == ["alice", "bob"]
    assert directory.source == SOURCE


def test_load_directory_without_trust_is_the_local_user(tmp_path: Path) -> None:
    directory = load_directory(None, Git(tmp_path), "zoe")
    assert directory.people == (Person("zoe", "zoe", "zoe"),)
    assert directory.source == "(local user)"


def test_load_directory_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ApprovalError, match=r"cannot read trust file approvals/people\.yml"):
        load_directory(Trust(people=SOURCE), Git(tmp_path), "zoe")
