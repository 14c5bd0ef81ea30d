"""The signed body of a guided-failure decision (issue 21): it binds ``kind`` and ``attempt``; a
manual step's body keeps its exact bytes (no new keys), so its files verify unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from msgspec.structs import replace

from runner.approvals.document import ApprovalBody, check_binding, new_body, parse_body
from runner.approvals.request import GUIDED, Interruption
from runner.errors import VerificationError

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

REQUEST = Interruption(
    id="r1--deploy--attempt-2",
    run_id="r1",
    step_id="deploy",
    step_name="Deploy",
    title="Step 'Deploy' failed",
    instructions="",
    teams=(),
    quorum=(),
    fields=(),
    created="2030-01-01T11:59:00Z",
    deadline=None,
    environment="production",
    workflow="W",
    digest="d" * 64,
    commit=None,
    inputs={},
    following_steps=(),
    started_by="someone",
    prevent_self_approval=False,
    sources=("file",),
    run_started="2030-01-01T11:58:00Z",
    kind=GUIDED,
    attempt=2,
    choices=("retry", "skip", "fail"),
    failure={"exit_code": 1, "log_tail": ["boom"]},
)


def body(request: Interruption, decision: str) -> ApprovalBody:
    return new_body(
        request.to_dict(), decision, "alice@example.com", "", {}, NOW, timedelta(hours=1)
    )


def test_a_manual_body_has_the_bytes_it_always_had() -> None:
    manual = replace(REQUEST, kind="manual", attempt=0, choices=(), failure={})
    raw = body(manual, "proceed").encode()
    assert raw == (
        b'{"approver":"alice@example.com","commit":null,"decision":"proceed",'
        b'"environment":"production","expires_at":"2030-01-01T13:00:00Z","fields":{},'
        b'"format":"runner-approval/v1","issued_at":"2030-01-01T12:00:00Z","notes":"",'
        b'"run_id":"r1","step_id":"deploy","workflow_digest":"' + b"d" * 64 + b'"}\n'
    )
    assert parse_body(raw).kind == "manual"
    check_binding(parse_body(raw), manual, NOW)
    assert "kind" not in manual.to_dict()  # the request keeps its shape too


def test_a_guided_body_binds_its_kind_and_attempt() -> None:
    raw = body(REQUEST, "retry").encode()
    data = json.loads(raw)
    assert (data["kind"], data["attempt"], data["decision"]) == (GUIDED, 2, "retry")
    parsed = parse_body(raw)
    check_binding(parsed, REQUEST, NOW)
    with pytest.raises(
        VerificationError, match="approval is for attempt 2 of step 'deploy', not attempt 3"
    ):
        check_binding(parsed, replace(REQUEST, attempt=3), NOW)
    manual = replace(REQUEST, kind="manual")
    with pytest.raises(VerificationError, match="approval is a guided-failure decision"):
        check_binding(parsed, manual, NOW)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"decision": "proceed"}, "decision 'proceed' is not retry, skip or fail"),
        ({"attempt": None}, "a guided-failure approval needs `attempt`"),
        ({"attempt": 0}, "a guided-failure approval needs `attempt`"),
        ({"attempt": True}, "a guided-failure approval needs `attempt`"),
        ({"kind": "other"}, "`kind` 'other' is neither manual nor guided-failure"),
        ({"kind": "manual", "decision": "retry"}, "a manual step's approval has no `attempt`"),
    ],
)
def test_malformed_guided_bodies_are_refused(changes: dict[str, object], message: str) -> None:
    data = json.loads(body(REQUEST, "retry").encode())
    data.update(changes)
    raw = (json.dumps(data, sort_keys=True) + "\n").encode()
    with pytest.raises(VerificationError, match=message):
        parse_body(raw)


def test_the_request_round_trips_with_its_failure() -> None:
    again = Interruption.from_dict(json.loads(json.dumps(REQUEST.to_dict())))
    assert again == REQUEST
    with pytest.raises(ValueError, match="choices"):
        Interruption.from_dict({**REQUEST.to_dict(), "choices": ["ignore"]})
