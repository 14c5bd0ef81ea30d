"""The runner's ``server`` source and its client, in process, against a real server on loopback
(and a stub standing in for a broken one): register, long-poll, decisions as submissions,
re-registering, retries; a failure is never a decision and never shows the token."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from msgspec.structs import replace
from sqlalchemy import delete

from runner.approvals import server_source
from runner.approvals.identity import Directory
from runner.approvals.quorum import judge
from runner.approvals.request import Interruption
from runner.approvals.server_client import ServerAnswer, ServerClient
from runner.approvals.server_source import ServerSource, client_for
from runner.errors import ApprovalError
from runner.model import Approvals
from runner.model import ServerSource as ServerConfig
from runner.options import RunOptions
from runner.server import tables as t

if TYPE_CHECKING:
    from helpers.server_helpers import Served
    from helpers.stub import Reply, Seen, Stub

    StubFactory = Callable[[Callable[[Seen], Reply]], Stub]

RequestFactory = Callable[..., dict[str, Any]]
ID = "r1--gate"


class Sleeps:
    """The client's sleep, recorded (and shortened) so that backoff is seen, not waited."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        time.sleep(min(seconds, 0.01))


def make_source(
    url: str,
    token: str,
    tmp_path: Path,
    *,
    attempts: int = 2,
    sleeps: Sleeps | None = None,
    directory: Directory | None = None,
) -> ServerSource:
    approvals = Approvals(server=ServerConfig(url, "RUNNER_SERVER_TOKEN"))
    client = ServerClient(url, token, attempts=attempts, sleep=sleeps or Sleeps())
    return ServerSource(
        environ={"RUNNER_SERVER_TOKEN": token},
        approvals=approvals,
        workspace=tmp_path,
        directory=directory or Directory(),
        options=RunOptions(),
        client=client,
    )


@pytest.fixture(autouse=True)
def short_long_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_source, "LONG_POLL_SECONDS", 1.0)


@pytest.fixture
def request_(make_request: RequestFactory) -> Interruption:
    return Interruption.from_dict(make_request())


def test_register_creates_the_interruption_once(
    server: Served, request_: Interruption, tmp_path: Path
) -> None:
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(request_)
    source.register(request_)
    make_source(server.url, server.tokens["runner"], tmp_path).register(request_)
    views = server.store.list_interruptions(pending=False, run=None)
    assert [(v["id"], v["state"], v["request"]) for v in views] == [
        (ID, "waiting", json.loads(json.dumps(request_.to_dict())))
    ]
    assert source.etag == '"1"'


def test_poll_without_a_decision_waits_and_finds_nothing(
    server: Served, request_: Interruption, tmp_path: Path
) -> None:
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(request_)
    assert source.poll(request_) == []  # the first poll answers from the registration
    start = time.monotonic()
    assert source.poll(request_) == []  # then it long-polls: 304 after the wait
    assert 0.9 <= time.monotonic() - start < 4.0


def test_a_decision_on_the_server_becomes_a_submission(
    server: Served, request_: Interruption, tmp_path: Path, people: Directory
) -> None:
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(request_)
    assert source.poll(request_) == []
    assert server.assign("alice", ID).status_code == 200
    assert server.submit("alice", ID, notes="desk told").status_code == 200
    found = source.poll(request_)
    assert len(found) == 1
    submission = found[0]
    assert (
        submission.source,
        submission.result,
        submission.who,
        submission.who_kind,
        submission.notes,
        submission.fields,
    ) == ("server", "proceed", "alice", "username", "desk told", {})
    sub_id = server.store.get(ID)["submissions"][0]["id"]
    assert submission.key == f"server:{ID}:{sub_id}"
    assert submission.evidence == {"server": server.url, "interruption": ID, "submission": sub_id}
    assert submission.submitted_at.endswith("Z")
    assert source.etag == '"3"'
    # the runner's own judging agrees with the server
    verdict = judge(request_, found, people, None)
    assert verdict.state == "approved"
    assert verdict.deciding is not None and verdict.deciding.person.display_name == "Alice Martin"


def test_the_long_poll_wakes_up_on_a_decision(
    server: Served, request_: Interruption, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_source, "LONG_POLL_SECONDS", 5.0)
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(request_)
    source.poll(request_)
    assert server.assign("bob", ID).status_code == 200
    source.poll(request_)  # sees the assignment (version 2) at once

    def later() -> None:
        time.sleep(0.3)
        server.submit("bob", ID, "abort", notes="window open")

    thread = threading.Thread(target=later)
    start = time.monotonic()
    thread.start()
    found = source.poll(request_)
    thread.join()
    assert time.monotonic() - start < 4.0
    assert [(s.result, s.who, s.notes) for s in found] == [("abort", "bob", "window open")]


def test_the_long_poll_ends_by_the_deadline(
    server: Served, make_request: RequestFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if server.store.postgres:
        pytest.skip("about the source, not the database: once is enough")
    monkeypatch.setattr(server_source, "LONG_POLL_SECONDS", 3.0)
    deadline = datetime.now(UTC) + timedelta(seconds=0.5)
    request = Interruption.from_dict(
        make_request(deadline=deadline.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    )
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(request)
    source.poll(request)
    start = time.monotonic()
    source.poll(request)
    assert time.monotonic() - start < 2.0


def test_decisions_made_while_no_runner_waited_count_at_once(
    server: Served, request_: Interruption, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A detached run: the decision is on the server before the resumed runner registers."""
    # a poll that waited would wait 5 s: far from the bound below on a loaded machine too
    monkeypatch.setattr(server_source, "LONG_POLL_SECONDS", 5.0)
    make_source(server.url, server.tokens["runner"], tmp_path).register(request_)
    assert server.assign("alice", ID).status_code == 200
    assert server.submit("alice", ID).status_code == 200
    resumed = make_source(server.url, server.tokens["runner"], tmp_path)
    resumed.register(request_)
    start = time.monotonic()
    assert [s.who for s in resumed.poll(request_)] == ["alice"]
    assert time.monotonic() - start < 2.5


def test_a_server_that_lost_the_interruption_gets_it_again(
    server: Served, request_: Interruption, tmp_path: Path
) -> None:
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(request_)
    source.poll(request_)
    with server.store.tx() as c:  # restored from an old backup
        c.execute(delete(t.interruptions))
    assert source.poll(request_) == []
    assert [v["id"] for v in server.store.list_interruptions(pending=True, run=None)] == [ID]


def test_cancel_withdraws_the_request(
    server: Served, request_: Interruption, tmp_path: Path
) -> None:
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(request_)
    source.cancel(request_, "timed-out")
    assert server.store.get(ID)["state"] == "timed-out"
    assert source.instructions(request_) == [
        f"{server.url}/interruptions/{ID}  or  runner approval assign {ID} --server {server.url}"
        f" && runner approval proceed {ID} --server {server.url} --notes ..."
    ]


@pytest.mark.parametrize("reason", ["timed-out", "cancelled"])
def test_an_interruption_ended_on_the_server_fails_the_source(
    server: Served, request_: Interruption, tmp_path: Path, reason: str
) -> None:
    """Attack pass: a run whose interruption was cancelled on the server printed "Waiting..."
    until its deadline, though no one could decide it there any more."""
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(request_)
    assert source.poll(request_) == []
    answer = server.call("admin", "POST", f"/interruptions/{ID}/cancel", json={"reason": reason})
    assert answer.status_code == 200
    expected = (
        f"the approval server's interruption {ID} is {reason} there: approvers can no longer "
        "decide it on the server"
    )
    with pytest.raises(ApprovalError, match=expected):
        source.poll(request_)
    # a resumed run finds it so at once
    resumed = make_source(server.url, server.tokens["runner"], tmp_path)
    resumed.register(request_)
    with pytest.raises(ApprovalError, match=expected):
        resumed.poll(request_)


def test_an_approver_token_cannot_register(
    server: Served, request_: Interruption, tmp_path: Path
) -> None:
    source = make_source(server.url, server.tokens["alice"], tmp_path)
    with pytest.raises(ServerAnswer) as info:
        source.register(request_)
    assert (info.value.status, info.value.code) == (403, "forbidden")
    assert server.tokens["alice"] not in str(info.value)


# -- failures ---------------------------------------------------------------------------------


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_server_that_is_down_is_no_decision(request_: Interruption, tmp_path: Path) -> None:
    token = "rnr_secret_TOKEN-never-shown"
    sleeps = Sleeps()
    source = make_source(closed_port(), token, tmp_path, attempts=3, sleeps=sleeps)
    with pytest.raises(ApprovalError) as info:
        source.register(request_)
    assert "after 3 attempt(s)" in str(info.value)
    assert len(sleeps.calls) == 2  # backoff between the attempts
    for _ in range(2):
        with pytest.raises(ApprovalError) as info:
            source.poll(request_)
        assert token not in str(info.value) and token not in repr(info.value)
    assert source.failures == 2
    # the source backs off between failing polls instead of hammering
    assert sleeps.calls[-3] == 1.0


def view(
    submissions: list[dict[str, Any]], version: int = 1, request: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": ID,
        "run_id": "r1",
        "step_id": "gate",
        "request": request or {},
        "state": "waiting",
        "responsible": None,
        "version": version,
        "created": "",
        "updated": "",
        "submissions": submissions,
    }


ALICE_PROCEEDS = [
    {
        "id": 1,
        "username": "alice",
        "person_id": "u-alice",
        "result": "proceed",
        "notes": "",
        "fields": {},
        "at": "2030-01-01T12:00:00.000Z",
    }
]


@pytest.mark.parametrize(
    "reply",
    [
        (500, {"Content-Type": "application/json"}, json.dumps(view(ALICE_PROCEEDS)).encode()),
        (503, {"Retry-After": "0"}, b"busy"),
        (200, {"Content-Type": "application/json"}, b"<html>not json"),
        (200, {"Content-Type": "application/json"}, b'{"submissions": "proceed"}'),
        (200, {"Content-Type": "application/json"}, b"[1, 2, 3]"),
        (302, {"Location": "http://127.0.0.1:1/"}, b""),
    ],
    ids=[
        "500-with-a-decision-in-its-body",
        "503",
        "not-json",
        "submissions-not-a-list",
        "json-list",
        "redirect",
    ],
)
def test_a_broken_answer_is_no_decision(
    stub: StubFactory, request_: Interruption, tmp_path: Path, reply: Reply
) -> None:
    def answer(seen: Seen) -> Reply:
        if seen.method == "POST":
            registered = view([], request=json.loads(seen.body))
            return 201, {"Content-Type": "application/json"}, json.dumps(registered).encode()
        return reply

    broken = stub(answer)
    source = make_source(broken.url, "rnr_tok_secret", tmp_path)
    source.register(request_)
    assert source.poll(request_) == []
    with pytest.raises(ApprovalError) as info:
        source.poll(request_)
    assert "rnr_tok_secret" not in str(info.value)
    assert source.view == view([], request=json.loads(json.dumps(request_.to_dict())))
    with pytest.raises(ApprovalError):  # and again: it keeps asking, never deciding
        source.poll(request_)
    assert broken.seen[-1].headers["Authorization"] == "Bearer rnr_tok_secret"


# -- the client -------------------------------------------------------------------------------


def test_client_honours_retry_after(stub: StubFactory) -> None:
    answers = iter(
        [
            (503, {"Retry-After": "7"}, b""),
            (429, {"Retry-After": "2.5"}, b""),
            (200, {"Content-Type": "application/json"}, b'{"ok": true}'),
        ]
    )
    sleeps = Sleeps()
    client = ServerClient(stub(lambda seen: next(answers)).url, "t", sleep=sleeps)
    assert client.call("GET", "/health") == {"ok": True}
    assert sleeps.calls == [7.0, 2.5]


def test_client_backs_off_exponentially_without_retry_after(stub: StubFactory) -> None:
    sleeps = Sleeps()
    client = ServerClient(
        stub(lambda seen: (502, {}, b"")).url, "t", attempts=4, base_delay=1.0, sleep=sleeps
    )
    with pytest.raises(ApprovalError) as info:
        client.call("GET", "/health")
    assert "HTTP 502" in str(info.value) and "after 4 attempt(s)" in str(info.value)
    assert len(sleeps.calls) == 3
    for delay, (low, high) in zip(sleeps.calls, [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0)], strict=True):
        assert low <= delay <= high


def test_client_does_not_retry_a_4xx(server: Served) -> None:
    sleeps = Sleeps()
    client = ServerClient(server.url, server.tokens["runner"], sleep=sleeps)
    with pytest.raises(ServerAnswer) as info:
        client.call("PUT", f"/interruptions/{ID}/responsible", json={})
    assert (info.value.status, info.value.code) == (403, "forbidden")
    assert sleeps.calls == []
    assert server.tokens["runner"] not in str(info.value)


def test_client_for_needs_the_token_in_the_environment() -> None:
    approvals = Approvals(server=ServerConfig("http://127.0.0.1:1", "MY_TOKEN"))
    with pytest.raises(ApprovalError) as info:
        client_for(approvals, {})
    assert "$MY_TOKEN" in str(info.value)
    with pytest.raises(ApprovalError):
        client_for(Approvals(), {"RUNNER_SERVER_TOKEN": "x"})
    client = client_for(
        Approvals(server=ServerConfig("http://h:1/")), {"RUNNER_SERVER_TOKEN": "tok"}
    )
    assert client.base == "http://h:1/api/v1"


def test_a_failed_steps_question_is_answered_with_a_choice(
    server: Served, make_request: RequestFactory, tmp_path: Path, people: Directory
) -> None:
    """Guided failure (issue 21): each failed attempt is an interruption of its own on the
    server, and its decision (retry, skip or fail) reaches the runner and judges as one."""
    asked = Interruption.from_dict(
        make_request(
            id="r1--gate@attempt-1",
            kind="guided-failure",
            attempt=1,
            choices=["retry", "skip", "fail"],
            failure={"exit_code": 2, "log_tail": ["boom"]},
        )
    )
    source = make_source(server.url, server.tokens["runner"], tmp_path)
    source.register(asked)
    assert source.poll(asked) == []
    assert server.assign("alice", asked.id).status_code == 200
    assert server.submit("alice", asked.id, "retry", "flaky network").status_code == 200
    found = source.poll(asked)
    assert [(s.result, s.who, s.notes) for s in found] == [("retry", "alice", "flaky network")]
    verdict = judge(asked, found, people, None)
    assert verdict.state == "approved"
    # the next attempt's question is another interruption, undecided
    again = replace(asked, id="r1--gate@attempt-2", attempt=2)
    other = make_source(server.url, server.tokens["runner"], tmp_path)
    other.register(again)
    assert other.poll(again) == []
    assert server.store.get(again.id)["state"] == "waiting"
