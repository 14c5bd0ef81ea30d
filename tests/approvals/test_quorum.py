"""quorum.judge and check_fields: who counts, who is refused and why, and when a step is decided."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from runner.approvals.identity import Directory, Person
from runner.approvals.quorum import check_fields, judge
from runner.approvals.request import FieldSpec, Interruption, Submission

ALICE = Person(
    "u-alice",
    "alice",
    "Alice Martin",
    "alice@example.com",
    ssh_principals=("alice@example.com",),
    ci_logins=("alice-gh",),
)
BOB = Person("u-bob", "bob", "Bob Chen", "bob@example.com", ("bob@example.com",), ("bobc",))
CAROL = Person("u-carol", "carol", "Carol Diaz", "carol@example.com", ("carol@example.com",))
DAVE = Person("u-dave", "dave", "Dave Teamless")

DIRECTORY = Directory(
    (ALICE, BOB, CAROL, DAVE),
    {
        "trading-desk": frozenset({"alice", "bob"}),
        "dba": frozenset({"bob", "carol"}),
    },
    "people.yml",
)

TICKET = FieldSpec("ticket", "string", required=True, pattern=r"CHG-[0-9]+")
RISK = FieldSpec("risk", "choice", options=("low", "high"))
SURE = FieldSpec("sure", "boolean")


def request(**changes: object) -> Interruption:
    base = Interruption(
        id="run-1--gate",
        run_id="run-1",
        step_id="gate",
        step_name="Gate",
        title="Gate",
        instructions="",
        teams=(),
        quorum=(),
        fields=(),
        created="2030-01-01T00:00:00Z",
        deadline=None,
        environment="production",
        workflow="Deploy",
        digest="0" * 64,
        commit=None,
        inputs={},
        following_steps=(),
        started_by="dave",
        prevent_self_approval=False,
        sources=("prompt", "file"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


_counter = iter(range(1_000_000))


def sub(
    who: str,
    result: str = "proceed",
    *,
    source: str = "prompt",
    kind: str = "username",
    fields: dict[str, str] | None = None,
    notes: str = "",
    problem: str | None = None,
) -> Submission:
    n = next(_counter)
    return Submission(
        source=source,
        result=result,  # type: ignore[arg-type]
        who=who,
        who_kind=kind,  # type: ignore[arg-type]
        notes=notes,
        fields=fields or {},
        submitted_at=f"2030-01-01T00:00:{n % 60:02d}Z",
        key=f"{source}:{who}:{n}",
        problem=problem,
    )


def reasons(verdict: object) -> list[str]:
    return [r.reason for r in verdict.refused]  # type: ignore[attr-defined]


# -- quorum by distinct people -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quorum", "people", "state", "progress"),
    [
        ((("trading-desk", 2),), ["alice"], "waiting", (("trading-desk", 1, 2),)),
        ((("trading-desk", 2),), ["alice", "bob"], "approved", (("trading-desk", 2, 2),)),
        ((("trading-desk", 2),), ["alice", "carol"], "waiting", (("trading-desk", 1, 2),)),
        ((("dba", 1),), ["alice"], "waiting", (("dba", 0, 1),)),
        ((("dba", 1),), ["alice", "carol"], "approved", (("dba", 1, 1),)),
        ((), [], "waiting", ()),
        ((), ["dave"], "approved", ()),
    ],
)
def test_quorum_met_or_not_by_distinct_people(
    quorum: tuple[tuple[str, int], ...], people: list[str], state: str, progress: tuple[object, ...]
) -> None:
    verdict = judge(request(quorum=quorum), [sub(p) for p in people], DIRECTORY, None)
    assert verdict.state == state
    assert verdict.progress == progress
    assert verdict.refused == ()
    assert [a.person.username for a in verdict.accepted] == people


def test_same_person_twice_counts_once() -> None:
    verdict = judge(
        request(quorum=(("trading-desk", 2),)), [sub("alice"), sub("alice")], DIRECTORY, None
    )
    assert verdict.state == "waiting"
    assert [a.person.username for a in verdict.accepted] == ["alice"]
    assert reasons(verdict) == [
        "proceed by alice via prompt: alice already counted toward this step"
    ]
    assert verdict.progress == (("trading-desk", 1, 2),)


@pytest.mark.parametrize(
    ("other", "kind", "source"),
    [
        ("alice@example.com", "principal", "file"),
        ("alice-gh", "login", "server"),
        ("alice", "username", "server"),
    ],
)
def test_person_counted_once_across_sources(other: str, kind: str, source: str) -> None:
    submissions = [sub("alice", kind="login"), sub(other, kind=kind, source=source)]
    verdict = judge(request(quorum=(("trading-desk", 2),)), submissions, DIRECTORY, None)
    assert verdict.state == "waiting"
    assert [(a.person.username, a.submission.source) for a in verdict.accepted] == [
        ("alice", "prompt")
    ]
    assert reasons(verdict) == [
        f"proceed by {other} via {source}: alice already counted toward this step"
    ]


def test_person_in_two_teams_fills_one_place_only() -> None:
    rules = request(quorum=(("trading-desk", 1), ("dba", 1)))
    verdict = judge(rules, [sub("bob")], DIRECTORY, None)
    assert verdict.state == "waiting"
    assert verdict.progress == (("trading-desk", 1, 1), ("dba", 0, 1))
    assert verdict.deciding is None


@pytest.mark.parametrize(
    "order",
    [["bob", "alice"], ["alice", "bob"], ["bob", "carol"], ["carol", "bob"]],
)
def test_two_teams_filled_by_matching_whatever_the_order(order: list[str]) -> None:
    # bob is in both teams: when he came first into trading-desk's place, alice must be able to
    # take that place and push bob into dba's (an augmenting path)
    rules = request(quorum=(("trading-desk", 1), ("dba", 1)))
    verdict = judge(rules, [sub(p) for p in order], DIRECTORY, None)
    assert verdict.state == "approved"
    assert verdict.progress == (("trading-desk", 1, 1), ("dba", 1, 1))
    assert verdict.deciding is not None
    assert verdict.deciding.person.username == order[-1]


def test_quorum_not_met_when_two_places_need_a_third_person() -> None:
    rules = request(quorum=(("trading-desk", 2), ("dba", 1)))
    # alice and bob fill trading-desk; dba still needs someone other than bob
    verdict = judge(rules, [sub("alice"), sub("bob")], DIRECTORY, None)
    assert verdict.state == "waiting"
    assert verdict.progress == (("trading-desk", 2, 2), ("dba", 0, 1))
    verdict = judge(rules, [sub("alice"), sub("bob"), sub("carol")], DIRECTORY, None)
    assert verdict.state == "approved"
    assert verdict.progress == (("trading-desk", 2, 2), ("dba", 1, 1))


# -- who may decide ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prevent", "started_by", "state", "refused"),
    [
        (
            True,
            ALICE,
            "waiting",
            ["proceed by alice via prompt: alice started this run and may not approve it"],
        ),
        (False, ALICE, "approved", []),
        (True, BOB, "approved", []),
        # the starter ("dave") is not in the people file: self-approval cannot be ruled out,
        # so approvals are refused (fail closed)
        (
            True,
            None,
            "waiting",
            [
                "proceed by alice via prompt: the run was started by 'dave', who is not in the "
                "people file, so self-approval cannot be ruled out"
            ],
        ),
        (False, None, "approved", []),
    ],
)
def test_self_approval(
    prevent: bool, started_by: Person | None, state: str, refused: list[str]
) -> None:
    verdict = judge(request(prevent_self_approval=prevent), [sub("alice")], DIRECTORY, started_by)
    assert verdict.state == state
    assert reasons(verdict) == refused


def test_self_approval_recognised_through_another_name() -> None:
    verdict = judge(
        request(prevent_self_approval=True),
        [sub("alice@example.com", kind="principal", source="file")],
        DIRECTORY,
        ALICE,
    )
    assert verdict.state == "waiting"
    assert reasons(verdict) == [
        "proceed by alice@example.com via file: alice started this run and may not approve it"
    ]


@pytest.mark.parametrize(
    ("teams", "who", "reason"),
    [
        (("dba",), "alice", "proceed by alice via prompt: alice is not in team dba"),
        (("dba", "ops"), "alice", "proceed by alice via prompt: alice is not in team dba or ops"),
        (("trading-desk",), "dave", "proceed by dave via prompt: dave is not in team trading-desk"),
        (("no-such-team",), "bob", "proceed by bob via prompt: bob is not in team no-such-team"),
    ],
)
def test_team_membership_enforced(teams: tuple[str, ...], who: str, reason: str) -> None:
    verdict = judge(request(teams=teams), [sub(who)], DIRECTORY, None)
    assert verdict.state == "waiting"
    assert verdict.accepted == ()
    assert reasons(verdict) == [reason]


@pytest.mark.parametrize(("teams", "who"), [(("dba",), "bob"), (("dba", "ops"), "carol")])
def test_team_member_accepted(teams: tuple[str, ...], who: str) -> None:
    verdict = judge(request(teams=teams), [sub(who)], DIRECTORY, None)
    assert verdict.state == "approved"
    assert verdict.deciding is not None
    assert verdict.deciding.person.username == who


@pytest.mark.parametrize(
    ("who", "kind", "reason"),
    [
        (
            "mallory",
            "username",
            "proceed by mallory via prompt: username 'mallory' is not in the people file",
        ),
        (
            "m@evil.example",
            "principal",
            "proceed by m@evil.example via prompt: principal "
            "'m@evil.example' is not in the people file",
        ),
        (
            "mallory-gh",
            "login",
            "proceed by mallory-gh via prompt: login 'mallory-gh' is not in the people file",
        ),
        # a principal is not a username, nor the other way round
        (
            "alice",
            "principal",
            "proceed by alice via prompt: principal 'alice' is not in the people file",
        ),
        (
            "alice@example.com",
            "username",
            "proceed by alice@example.com via prompt: username "
            "'alice@example.com' is not in the people file",
        ),
    ],
)
def test_unknown_person_refused(who: str, kind: str, reason: str) -> None:
    verdict = judge(request(), [sub(who, kind=kind)], DIRECTORY, None)
    assert verdict.state == "waiting"
    assert reasons(verdict) == [reason]


def test_login_matches_ci_login_then_username() -> None:
    for who in ("alice-gh", "alice"):
        verdict = judge(request(), [sub(who, kind="login")], DIRECTORY, None)
        assert verdict.deciding is not None
        assert verdict.deciding.person == ALICE


def test_source_problem_never_counts() -> None:
    verdict = judge(
        request(), [sub("alice", source="file", problem="bad signature")], DIRECTORY, None
    )
    assert verdict.state == "waiting"
    assert verdict.accepted == ()
    assert reasons(verdict) == ["file: bad signature"]


# -- aborts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before",
    [[], ["alice"], ["alice", "carol"]],
)
def test_any_valid_abort_aborts_even_after_approvals(before: list[str]) -> None:
    rules = request(teams=("trading-desk", "dba"), quorum=(("trading-desk", 2),))
    submissions = [*(sub(p) for p in before), sub("bob", "abort", notes="window open")]
    verdict = judge(rules, submissions, DIRECTORY, None)
    assert verdict.state == "aborted"
    assert verdict.deciding is not None
    assert verdict.deciding.person == BOB
    assert verdict.deciding.submission.notes == "window open"
    assert [a.person.username for a in verdict.accepted] == [*before, "bob"]


def test_abort_by_someone_already_counted_aborts() -> None:
    rules = request(quorum=(("trading-desk", 2),))
    verdict = judge(rules, [sub("alice"), sub("alice", "abort")], DIRECTORY, None)
    assert verdict.state == "aborted"
    assert verdict.deciding is not None
    assert verdict.deciding.submission.result == "abort"


def test_abort_after_quorum_met_in_the_same_batch_aborts() -> None:
    verdict = judge(request(), [sub("alice"), sub("bob", "abort")], DIRECTORY, None)
    assert verdict.state == "aborted"


@pytest.mark.parametrize(
    ("who", "kind", "reason"),
    [
        ("alice", "username", "abort by alice via prompt: alice is not in team dba"),
        ("dave", "username", "abort by dave via prompt: dave is not in team dba"),
        (
            "mallory",
            "username",
            "abort by mallory via prompt: username 'mallory' is not in the people file",
        ),
    ],
)
def test_abort_from_outside_the_team_does_not_abort(who: str, kind: str, reason: str) -> None:
    rules = request(teams=("dba",))
    verdict = judge(rules, [sub(who, "abort", kind=kind), sub("carol")], DIRECTORY, None)
    assert verdict.state == "approved"
    assert reasons(verdict) == [reason]
    verdict = judge(rules, [sub(who, "abort", kind=kind)], DIRECTORY, None)
    assert verdict.state == "waiting"
    assert verdict.deciding is None


def test_abort_with_a_source_problem_does_not_abort() -> None:
    verdict = judge(request(), [sub("bob", "abort", problem="expired")], DIRECTORY, None)
    assert verdict.state == "waiting"
    assert reasons(verdict) == ["prompt: expired"]


# -- fields --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "result", "problem"),
    [
        ({"ticket": "CHG-12"}, "proceed", None),
        ({"ticket": "CHG-12", "risk": "low", "sure": "true"}, "proceed", None),
        ({"ticket": "CHG-12", "sure": "FALSE"}, "proceed", None),
        ({}, "proceed", "field 'ticket' is required"),
        ({"ticket": ""}, "proceed", "field 'ticket' is required"),
        (
            {"ticket": "CHG-12x"},
            "proceed",
            "field 'ticket' does not match CHG-[0-9]+, got 'CHG-12x'",
        ),
        (
            {"ticket": "xCHG-12"},
            "proceed",
            "field 'ticket' does not match CHG-[0-9]+, got 'xCHG-12'",
        ),
        (
            {"ticket": "CHG-1", "risk": "medium"},
            "proceed",
            "field 'risk' must be one of low, high, got 'medium'",
        ),
        (
            {"ticket": "CHG-1", "risk": "LOW"},
            "proceed",
            "field 'risk' must be one of low, high, got 'LOW'",
        ),
        (
            {"ticket": "CHG-1", "sure": "yes"},
            "proceed",
            "field 'sure' must be true or false, got 'yes'",
        ),
        ({"ticket": "CHG-1", "extra": "1"}, "proceed", "unknown field 'extra'"),
        ({}, "abort", None),
        ({"ticket": "nonsense", "risk": "medium"}, "abort", None),
    ],
)
def test_check_fields(values: dict[str, str], result: str, problem: str | None) -> None:
    assert check_fields((TICKET, RISK, SURE), values, result) == problem


def test_field_problem_refuses_the_submission() -> None:
    rules = request(fields=(TICKET,))
    verdict = judge(rules, [sub("alice", fields={"ticket": "CHG-x"})], DIRECTORY, None)
    assert verdict.state == "waiting"
    assert reasons(verdict) == [
        "proceed by alice via prompt: field 'ticket' does not match CHG-[0-9]+, got 'CHG-x'"
    ]
    # a refused submission does not use up the person: a corrected one counts
    verdict = judge(
        rules,
        [sub("alice", fields={"ticket": "CHG-x"}), sub("alice", fields={"ticket": "CHG-7"})],
        DIRECTORY,
        None,
    )
    assert verdict.state == "approved"
    assert verdict.deciding is not None
    assert verdict.deciding.submission.fields == {"ticket": "CHG-7"}


def test_abort_needs_no_fields() -> None:
    rules = request(fields=(TICKET, RISK))
    verdict = judge(rules, [sub("bob", "abort", notes="no")], DIRECTORY, None)
    assert verdict.state == "aborted"


# -- who decided ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quorum", "people", "deciding"),
    [
        ((), ["alice"], "alice"),
        ((("trading-desk", 2),), ["alice", "bob"], "bob"),
        ((("trading-desk", 2),), ["bob", "alice"], "alice"),
        ((("trading-desk", 1), ("dba", 1)), ["carol", "alice"], "alice"),
    ],
)
def test_deciding_is_the_last_approver(
    quorum: tuple[tuple[str, int], ...], people: list[str], deciding: str
) -> None:
    verdict = judge(
        request(quorum=quorum), [sub(p, notes=f"by {p}") for p in people], DIRECTORY, None
    )
    assert verdict.state == "approved"
    assert verdict.deciding is not None
    assert verdict.deciding.person.username == deciding
    assert verdict.deciding.submission.notes == f"by {deciding}"


def test_waiting_has_no_deciding_person() -> None:
    verdict = judge(request(quorum=(("trading-desk", 2),)), [sub("alice")], DIRECTORY, None)
    assert verdict.deciding is None
