"""SQL injection through every parameter of the approval server's API: ids in paths, ``?run=``,
``?pending=``, ``run_id`` of a lock release, the bearer token, ``If-None-Match``, JSON bodies, and
usernames given when tokens are issued. Every answer is a 4xx (or a 2xx that found nothing), none
is a 5xx, and the database is intact afterwards: same people, tokens and interruptions, and an
audit chain that still verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers.server_helpers import people_directory
from sqlalchemy import func, select

from runner.server import tables as t
from runner.server.app import create_app, status_of
from runner.server.audit import verify_chain
from runner.server.errors import ServerError
from runner.server.storage import Store, make_engine, migrate

PAYLOADS = [
    "' OR '1'='1",
    "r1' OR 1=1 --",
    "r1'; DROP TABLE interruptions; --",
    '" OR ""="',
    "1; DELETE FROM tokens",
    "r1--gate' UNION SELECT hash, kind, id, label, NULL, NULL, NULL, NULL, NULL FROM tokens --",
    "%' OR run_id LIKE '%",
    "r1\\'; --",
    "r1%00",
    "$(id)",
]

REQUEST: dict[str, Any] = {
    "id": "r1--gate",
    "run_id": "r1",
    "step_id": "gate",
    "step_name": "Gate",
    "title": "Gate",
    "instructions": "",
    "teams": ["trading-desk"],
    "quorum": [],
    "fields": [],
    "created": "2030-01-01T12:00:00Z",
    "deadline": None,
    "environment": "production",
    "workflow": "w",
    "digest": "d" * 64,
    "commit": None,
    "inputs": {},
    "following_steps": [],
    "started_by": "ci-bot",
    "prevent_self_approval": False,
    "sources": ["server"],
    "run_started": "2030-01-01T12:00:00Z",
}


@pytest.fixture
def world(tmp_path: Any) -> Iterator[tuple[Store, TestClient, dict[str, str]]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'server.db'}")
    migrate(engine)
    store = Store(engine)
    store.import_directory(people_directory())
    tokens = {
        "runner": store.issue_token("runner", label="t"),
        "alice": store.issue_token("approver", "alice", label="t"),
        "admin": store.issue_token("admin", label="t"),
    }
    runner = store.authenticate(tokens["runner"])
    assert runner is not None
    store.create_interruption(REQUEST, runner)
    store.put_run("r1", {"run_id": "r1"}, runner)
    store.acquire_lock("k1", owner="o" * 32, run_id="r1", caller=runner, lease=3600)
    with TestClient(create_app(store), raise_server_exceptions=False) as client:
        yield store, client, tokens
    engine.dispose()


def snapshot(store: Store) -> dict[str, int]:
    with store.engine.connect() as c:
        return {
            table.name: int(c.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (t.people, t.tokens, t.interruptions, t.submissions, t.runs, t.locks)
        }


def calls(payload: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(token kind, method, path, request keywords) for every parameter, with ``payload``."""
    return [
        ("alice", "GET", f"/interruptions/{payload}", {}),
        ("alice", "GET", "/interruptions", {"params": {"run": payload}}),
        ("alice", "GET", "/interruptions", {"params": {"pending": payload}}),
        ("alice", "GET", "/interruptions/r1--gate", {"headers": {"If-None-Match": payload}}),
        ("alice", "PUT", f"/interruptions/{payload}/responsible", {"json": {}}),
        ("alice", "POST", f"/interruptions/{payload}/submit", {"json": {"result": "proceed"}}),
        ("alice", "POST", "/interruptions/r1--gate/submit", {"json": {"result": payload}}),
        ("runner", "POST", f"/interruptions/{payload}/cancel", {"json": {"reason": "x"}}),
        ("runner", "POST", "/interruptions", {"json": {**REQUEST, "id": payload}}),
        (
            "runner",
            "POST",
            "/interruptions",
            {"json": {**REQUEST, "id": f"{payload}--gate", "run_id": payload}},
        ),
        (
            "runner",
            "POST",
            "/interruptions",
            {"json": {**REQUEST, "id": f"r1--{payload}", "step_id": payload}},
        ),
        ("runner", "GET", f"/runs/{payload}", {}),
        ("runner", "PUT", f"/runs/{payload}", {"json": {"run_id": payload}}),
        ("runner", "POST", f"/locks/{payload}", {"json": {"run_id": "r2", "owner": "p" * 32}}),
        ("runner", "POST", "/locks/k2", {"json": {"run_id": payload, "owner": "p" * 32}}),
        ("runner", "POST", "/locks/k2", {"json": {"run_id": "r2", "owner": payload * 3}}),
        ("runner", "POST", f"/locks/{payload}/release", {"json": {"owner": "o" * 32}}),
        ("runner", "POST", "/locks/k1/release", {"json": {"owner": payload * 3}}),
        ("admin", "POST", f"/locks/{payload}/break", {"json": {"reason": payload}}),
        ("token", "GET", "/interruptions", {}),
    ]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_parameter_is_sql(world: tuple[Store, TestClient, dict[str, str]], payload: str) -> None:
    store, client, tokens = world
    before = snapshot(store)
    for who, method, path, kwargs in calls(payload):
        headers = dict(kwargs.pop("headers", {}))
        token = payload if who == "token" else tokens[who]
        headers["Authorization"] = f"Bearer {token}"
        answer = client.request(method, "/api/v1" + path, headers=headers, **kwargs)
        assert answer.status_code < 500, (method, path, answer.text)
        if answer.status_code < 300 and method == "GET" and path == "/interruptions":
            listed = answer.json()
            # a filter that matched more than it names would be an injection
            assert all(
                v["run_id"] == kwargs.get("params", {}).get("run", v["run_id"]) for v in listed
            )
            if "run" in kwargs.get("params", {}):
                assert listed == [], listed
    after = snapshot(store)
    # only the interruptions, runs and locks a payload legitimately names may have been added
    for table in ("people", "tokens", "submissions"):
        assert after[table] == before[table], (table, before, after)
    assert after["interruptions"] <= before["interruptions"] + 3
    assert store.get("r1--gate")["state"] == "waiting"
    assert verify_chain(store.audit_entries()) == []


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_username_given_when_issuing_a_token_is_not_sql(
    world: tuple[Store, TestClient, dict[str, str]], payload: str
) -> None:
    store, _, _ = world
    before = snapshot(store)
    with pytest.raises(ServerError) as caught:
        store.issue_token("approver", payload, label=payload)
    assert status_of(caught.value) == 404
    assert snapshot(store) == before
    assert verify_chain(store.audit_entries()) == []


def test_an_interruption_id_cannot_be_squatted(
    world: tuple[Store, TestClient, dict[str, str]],
) -> None:
    _, client, tokens = world
    headers = {"Authorization": f"Bearer {tokens['runner']}"}
    squat = {**REQUEST, "id": "victim--gate", "run_id": "squatter", "step_id": "x"}
    assert client.post("/api/v1/interruptions", json=squat, headers=headers).status_code == 201
    victim = {**REQUEST, "id": "victim--gate", "run_id": "victim", "step_id": "gate"}
    answer = client.post("/api/v1/interruptions", json=victim, headers=headers)
    assert answer.status_code < 500, answer.text
    assert answer.json()["run_id"] == "victim"
