"""Many clients at once, over real HTTP, on SQLite and PostgreSQL: exactly one of 50 people
taking responsibility wins, an interruption created by racing runners exists once, a decision
is taken once, and the audit chain stays whole."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
import requests
from sqlalchemy import func, select

from runner.approvals.identity import Person
from runner.server import tables as t
from runner.server.audit import verify_chain

if TYPE_CHECKING:
    from helpers.server_helpers import Served

RequestFactory = Callable[..., dict[str, Any]]
ID = "r1--gate"
CROWD = 50


def at_once(count: int, action: Callable[[int], requests.Response]) -> list[requests.Response]:
    """``action(i)`` for i in range(count), each in its own thread, released together."""
    barrier = threading.Barrier(count)

    def run(index: int) -> requests.Response:
        barrier.wait(timeout=30)
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def error_code(answer: requests.Response) -> str:
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return str(body["error"]["code"])


def outcome(answer: requests.Response) -> tuple[int, str]:
    return answer.status_code, "" if answer.status_code < 300 else error_code(answer)


@pytest.fixture
def crowd(server: Served) -> list[str]:
    """50 people in team ``crowd``, each with an approver token of their own."""
    names = [f"p{i:02d}" for i in range(CROWD)]
    for name in names:
        server.store.add_person(Person(f"u-{name}", name, f"Person {name}", f"{name}@x.org"))
    server.store.set_team("crowd", names)
    for name in names:
        server.tokens[name] = server.store.issue_token("approver", name)
    return names


def test_fifty_people_assign_at_once_and_exactly_one_wins(
    server: Served, crowd: list[str], make_request: RequestFactory
) -> None:
    server.create(make_request(teams=["crowd"]))
    answers = at_once(CROWD, lambda i: server.assign(crowd[i], ID))
    counts = Counter(outcome(a) for a in answers)
    assert counts == {(200, ""): 1, (409, "responsible_taken"): CROWD - 1}, counts
    winner = next(crowd[i] for i, a in enumerate(answers) if a.status_code == 200)
    assert answers[crowd.index(winner)].json()["responsible"] == winner
    view = server.store.get(ID)
    assert (view["responsible"], view["version"]) == (winner, 2)
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["error"]["message"].startswith(f"{winner} has taken")
    assigned = [e for e in server.store.audit_entries() if e["kind"] == "assigned"]
    assert [e["actor"] for e in assigned] == [winner]
    assert verify_chain(server.store.audit_entries()) == []
    # and only the winner may decide
    loser = next(name for name in crowd if name != winner)
    assert error_code(server.submit(loser, ID)) == "not_responsible"
    assert server.submit(winner, ID).json()["state"] == "approved"


def test_racing_runners_create_one_interruption(
    server: Served, make_request: RequestFactory
) -> None:
    """A runner retrying (or two runners of one run) create the same interruption at once."""
    answers = at_once(
        20, lambda i: server.call("runner", "POST", "/interruptions", json=make_request())
    )
    assert Counter(a.status_code for a in answers) == {201: 20}, [a.text for a in answers]
    assert {a.json()["id"] for a in answers} == {ID}
    with server.store.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(t.interruptions)).scalar() == 1
    assert [e["kind"] for e in server.store.audit_entries()].count("created") == 1


def test_one_decision_from_a_double_click(server: Served, make_request: RequestFactory) -> None:
    """The responsible person's proceed sent ten times at once counts once."""
    server.create(make_request())
    assert server.assign("alice", ID).status_code == 200
    answers = at_once(10, lambda i: server.submit("alice", ID, notes=f"click {i}"))
    counts = Counter(outcome(a) for a in answers)
    view = server.store.get(ID)
    assert len(view["submissions"]) == 1, view["submissions"]
    assert counts[(200, "")] == 1, counts
    assert set(counts) <= {(200, ""), (403, "not_responsible"), (409, "decided")}, counts
    assert view["state"] == "approved"
    assert [e["kind"] for e in server.store.audit_entries()].count("submitted") == 1


def test_audit_chain_stays_whole_under_concurrent_writes(
    server: Served, make_request: RequestFactory
) -> None:
    runs = 25
    created = at_once(
        runs,
        lambda i: server.call(
            "runner", "POST", "/interruptions", json=make_request(run_id=f"r{i}", id=f"r{i}--gate")
        ),
    )
    assert {a.status_code for a in created} == {201}
    people = ("alice", "bob")
    assigned = at_once(runs, lambda i: server.assign(people[i % 2], f"r{i}--gate"))
    assert {a.status_code for a in assigned} == {200}
    decided = at_once(runs, lambda i: server.submit(people[i % 2], f"r{i}--gate"))
    assert {a.status_code for a in decided} == {200}
    entries = server.store.audit_entries()
    assert Counter(e["kind"] for e in entries)["submitted"] == runs
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert verify_chain(entries) == []
