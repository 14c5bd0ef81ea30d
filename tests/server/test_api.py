"""The HTTP API on a real server on loopback (SQLite and PostgreSQL): authentication and token
kinds, the rules of deciding with their stable error codes, long-polls, runs."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from helpers.cli import cli
from helpers.server_helpers import Served, serving
from sqlalchemy import select

from runner.approvals.request import Interruption
from runner.server import interruptions
from runner.server import tables as t

RequestFactory = Callable[..., dict[str, Any]]
ExpectError = Callable[[requests.Response, int, str], None]
ID = "r1--gate"


def database_of(server: Served) -> str:
    return server.store.engine.url.render_as_string(hide_password=False)


def test_health_needs_no_token(server: Served) -> None:
    answer = server.call(None, "GET", "/health")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


# -- tokens -----------------------------------------------------------------------------------


def test_no_token(server: Served, expect_error: ExpectError) -> None:
    expect_error(server.call(None, "GET", "/interruptions"), 401, "unauthenticated")
    expect_error(server.call(None, "POST", "/interruptions", json={}), 401, "unauthenticated")
    answer = server.call(
        None, "GET", "/interruptions", headers={"Authorization": f"Basic {server.tokens['alice']}"}
    )
    expect_error(answer, 401, "unauthenticated")


def test_unknown_token(server: Served, expect_error: ExpectError) -> None:
    expect_error(server.call(None, "GET", "/interruptions", token="rnr_x_y"), 401, "bad_token")
    expect_error(
        server.call(None, "GET", "/interruptions", token=server.tokens["alice"] + "x"),
        401,
        "bad_token",
    )


def test_token_issued_by_the_cli_is_shown_once_and_stored_hashed(
    server: Served, expect_error: ExpectError
) -> None:
    database = database_of(server)
    code, out = cli(
        "server",
        "--database",
        database,
        "tokens",
        "issue",
        "--kind",
        "approver",
        "--user",
        "carol",
        "--label",
        "carol's laptop",
    )
    assert code == 0
    token = out.strip()
    assert token.startswith("rnr_") and "\n" not in token
    token_id = token.split("_")[1]
    with server.store.engine.connect() as c:
        row = c.execute(select(t.tokens).where(t.tokens.c.id == token_id)).one()
    assert row.hash != token
    assert token not in repr(tuple(row))
    # the listing shows the id, never the token
    code, listing = cli("server", "--database", database, "tokens", "list")
    assert code == 0
    assert token_id in listing and "carol's laptop" in listing
    assert token not in listing and row.hash not in listing
    # it works until revoked
    assert server.call(None, "GET", "/interruptions", token=token).status_code == 200
    code, out = cli("server", "--database", database, "tokens", "revoke", token_id)
    assert (code, out) == (0, f"revoked {token_id}\n")
    expect_error(server.call(None, "GET", "/interruptions", token=token), 401, "bad_token")
    # the others' tokens still work
    assert server.call("alice", "GET", "/interruptions").status_code == 200


def test_revoked_token(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    caller = server.store.authenticate(server.tokens["runner"])
    assert caller is not None
    assert server.store.revoke_token(caller.token_id)
    expect_error(
        server.call("runner", "POST", "/interruptions", json=make_request()), 401, "bad_token"
    )
    expect_error(server.call("runner", "GET", f"/interruptions/{ID}"), 401, "bad_token")


def test_runner_token_cannot_decide(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    expect_error(server.assign("runner", ID), 403, "forbidden")
    expect_error(server.submit("runner", ID), 403, "forbidden")
    expect_error(server.call("runner", "GET", "/interruptions"), 403, "forbidden")
    # an admin token is no person either
    expect_error(server.assign("admin", ID), 403, "forbidden")
    expect_error(server.submit("admin", ID), 403, "forbidden")
    assert server.store.get(ID)["version"] == 1


def test_approver_token_cannot_act_as_the_runner(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    expect_error(
        server.call("alice", "POST", "/interruptions", json=make_request()), 403, "forbidden"
    )
    expect_error(server.call("alice", "PUT", "/runs/r1", json={"run_id": "r1"}), 403, "forbidden")
    lock = {"run_id": "r1", "owner": "o" * 32}
    expect_error(server.call("alice", "POST", "/locks/k", json=lock), 403, "forbidden")
    expect_error(
        server.call("alice", "POST", "/locks/k/release", json={"owner": "o" * 32}),
        403,
        "forbidden",
    )
    expect_error(server.call("runner", "GET", "/locks"), 403, "forbidden")
    expect_error(
        server.call("runner", "POST", "/locks/k/break", json={"reason": "x"}), 403, "forbidden"
    )
    server.create(make_request())
    expect_error(
        server.call("alice", "POST", f"/interruptions/{ID}/cancel", json={}), 403, "forbidden"
    )
    assert server.store.list_interruptions(pending=False, run=None)[0]["state"] == "waiting"
    assert server.store.list_runs() == []


# -- creating and reading ---------------------------------------------------------------------


def test_create_is_idempotent_for_the_same_run_and_step(
    server: Served, make_request: RequestFactory
) -> None:
    first = server.call("runner", "POST", "/interruptions", json=make_request())
    again = server.call("runner", "POST", "/interruptions", json=make_request())
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert first.json()["id"] == ID and first.json()["state"] == "waiting"
    # a restarted runner with a new id for the same run and step finds the same one
    renamed = server.create(make_request(id="r1--gate-restarted"))
    assert renamed == first.json()
    assert [v["id"] for v in server.call("alice", "GET", "/interruptions").json()] == [ID]


def test_read_and_list(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    server.create(make_request(run_id="r2", id="r2--gate"))
    answer = server.call("runner", "GET", f"/interruptions/{ID}")
    assert answer.status_code == 200
    assert answer.headers["ETag"] == '"1"'
    body = answer.json()
    assert set(body) == {
        "id",
        "run_id",
        "step_id",
        "request",
        "state",
        "responsible",
        "version",
        "created",
        "updated",
        "submissions",
    }
    assert body["request"] == make_request()
    assert body["created"].endswith("Z")
    expect_error(server.call("runner", "GET", "/interruptions/nope"), 404, "not_found")
    assert server.assign("alice", ID).status_code == 200
    assert server.submit("alice", ID).status_code == 200
    pending = server.call("bob", "GET", "/interruptions", params={"pending": "true"}).json()
    assert [v["id"] for v in pending] == ["r2--gate"]
    only = server.call("bob", "GET", "/interruptions", params={"run": "r1"}).json()
    assert [(v["id"], v["state"]) for v in only] == [(ID, "approved")]


# -- deciding ---------------------------------------------------------------------------------


def test_assign_and_proceed(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    answer = server.assign("alice", ID)
    assert answer.status_code == 200
    assert (answer.json()["responsible"], answer.json()["version"]) == ("alice", 2)
    expect_error(server.assign("bob", ID), 409, "responsible_taken")
    answer = server.submit("alice", ID, notes="desk told")
    assert answer.status_code == 200
    view = answer.json()
    assert (view["state"], view["responsible"], view["version"]) == ("approved", None, 3)
    assert [(s["username"], s["result"], s["notes"]) for s in view["submissions"]] == [
        ("alice", "proceed", "desk told")
    ]
    expect_error(server.submit("alice", ID), 409, "decided")
    expect_error(server.assign("bob", ID, reassign=True), 409, "decided")


def test_reassign(server: Served, make_request: RequestFactory) -> None:
    server.create(make_request())
    assert server.assign("alice", ID).status_code == 200
    answer = server.assign("bob", ID, reassign=True)
    assert (answer.status_code, answer.json()["responsible"]) == (200, "bob")


def test_submit_by_a_person_not_responsible(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    expect_error(server.submit("bob", ID), 403, "not_responsible")
    assert server.assign("alice", ID).status_code == 200
    answer = server.submit("bob", ID)
    expect_error(answer, 403, "not_responsible")
    assert "alice has it" in answer.json()["error"]["message"]
    assert server.store.get(ID)["submissions"] == []


def test_assign_by_a_person_outside_the_team(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    answer = server.assign("dave", ID)
    expect_error(answer, 403, "not_in_team")
    assert answer.json()["error"]["message"] == "dave is not in team trading-desk"
    expect_error(server.assign("dave", ID, reassign=True), 403, "not_in_team")
    assert server.store.get(ID)["responsible"] is None


def test_submit_by_a_person_no_longer_in_the_team(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    assert server.assign("bob", ID).status_code == 200
    server.store.set_team("trading-desk", ["alice"])
    expect_error(server.submit("bob", ID), 403, "not_in_team")
    assert server.store.get(ID)["state"] == "waiting"


def test_submit_by_a_person_outside_the_team(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    assert server.assign("alice", ID).status_code == 200
    expect_error(server.submit("dave", ID), 403, "not_in_team")


def test_self_approval_refused(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    # alice started the run as her CI login alice-gh
    server.create(make_request(started_by="alice-gh", prevent_self_approval=True))
    assert server.assign("alice", ID).status_code == 200
    answer = server.submit("alice", ID)
    expect_error(answer, 403, "self_approval")
    assert answer.json()["error"]["message"] == "alice started this run and may not approve it"
    assert server.store.get(ID)["submissions"] == []
    assert server.assign("bob", ID, reassign=True).status_code == 200
    assert server.submit("bob", ID).json()["state"] == "approved"


def test_self_approval_allowed_without_the_rule(
    server: Served, make_request: RequestFactory
) -> None:
    server.create(make_request(started_by="alice-gh", prevent_self_approval=False))
    assert server.assign("alice", ID).status_code == 200
    assert server.submit("alice", ID).json()["state"] == "approved"


def test_abort_without_notes(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    assert server.assign("alice", ID).status_code == 200
    expect_error(server.submit("alice", ID, "abort"), 422, "notes_required")
    expect_error(server.submit("alice", ID, "abort", notes=" \n "), 422, "notes_required")
    answer = server.submit("alice", ID, "abort", notes="trading window open")
    assert (answer.status_code, answer.json()["state"]) == (200, "aborted")


def test_bad_fields(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    ticket = {
        "name": "ticket",
        "type": "string",
        "label": "Change ticket",
        "required": True,
        "pattern": "^CHG-[0-9]+$",
        "options": [],
    }
    env = {
        "name": "window",
        "type": "choice",
        "label": "",
        "required": False,
        "pattern": None,
        "options": ["am", "pm"],
    }
    server.create(make_request(fields=[ticket, env]))
    assert server.assign("alice", ID).status_code == 200
    for fields in (
        {},
        {"ticket": "CHG-x"},
        {"ticket": "CHG-1", "window": "night"},
        {"ticket": "CHG-1", "other": "1"},
    ):
        expect_error(server.submit("alice", ID, fields=fields), 422, "bad_fields")
    assert server.store.get(ID)["submissions"] == []
    # an abort needs no fields
    answer = server.submit("alice", ID, "abort", notes="no ticket yet", fields={})
    assert (answer.status_code, answer.json()["state"]) == (200, "aborted")


def test_good_fields_are_kept(server: Served, make_request: RequestFactory) -> None:
    ticket = {
        "name": "ticket",
        "type": "string",
        "label": "",
        "required": True,
        "pattern": "^CHG-[0-9]+$",
        "options": [],
    }
    server.create(make_request(fields=[ticket]))
    assert server.assign("alice", ID).status_code == 200
    view = server.submit("alice", ID, fields={"ticket": "CHG-42"}).json()
    assert view["state"] == "approved"
    assert view["submissions"][0]["fields"] == {"ticket": "CHG-42"}


def test_quorum_across_two_people(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request(teams=[], quorum=[["dba", 2]]))
    assert server.assign("bob", ID).status_code == 200
    view = server.submit("bob", ID, notes="first").json()
    assert (view["state"], view["responsible"]) == ("waiting", None)
    # the same person again is not a second approver
    assert server.assign("bob", ID).status_code == 200
    expect_error(server.submit("bob", ID, notes="second time"), 409, "already_counted")
    # someone outside the quorum's team may decide (no teams) but does not count toward it
    assert server.assign("alice", ID, reassign=True).status_code == 200
    assert server.submit("alice", ID).json()["state"] == "waiting"
    assert server.assign("carol", ID).status_code == 200
    view = server.submit("carol", ID, notes="second").json()
    assert view["state"] == "approved"
    assert [s["username"] for s in view["submissions"]] == ["bob", "alice", "carol"]


def test_any_abort_aborts_the_quorum(server: Served, make_request: RequestFactory) -> None:
    server.create(make_request(teams=["dba"], quorum=[["dba", 2]]))
    assert server.assign("bob", ID).status_code == 200
    assert server.submit("bob", ID).json()["state"] == "waiting"
    assert server.assign("carol", ID).status_code == 200
    view = server.submit("carol", ID, "abort", notes="not tonight").json()
    assert view["state"] == "aborted"
    assert [(s["username"], s["result"]) for s in view["submissions"]] == [
        ("bob", "proceed"),
        ("carol", "abort"),
    ]


def test_cancel_by_the_runner(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    server.create(make_request())
    answer = server.call(
        "runner", "POST", f"/interruptions/{ID}/cancel", json={"reason": "timed-out"}
    )
    assert (answer.status_code, answer.json()["state"]) == (200, "timed-out")
    expect_error(server.assign("alice", ID), 409, "decided")


def test_another_runner_token_cannot_cancel(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    """Attack pass: any runner token cancelled any run's interruption; approvers then got 409
    `decided` for ever."""
    server.create(make_request())
    other = server.store.issue_token("runner", label="another team")
    answer = server.call(
        None, "POST", f"/interruptions/{ID}/cancel", token=other, json={"reason": "timed-out"}
    )
    expect_error(answer, 403, "not_owner")
    assert server.assign("alice", ID).status_code == 200
    answer = server.call("admin", "POST", f"/interruptions/{ID}/cancel", json={})
    assert (answer.status_code, answer.json()["state"]) == (200, "cancelled")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("title", "\ud800", "half of a character"),
        ("inputs", {"v\udfff": "1"}, "half of a character"),
        ("instructions", ["x"], "Expected `str`, got `array` - at `$.instructions`"),
        ("inputs", "x", "Expected `object`, got `str` - at `$.inputs`"),
        ("fields", [{"name": "f", "type": 3}], "Expected `str`, got `int` - at `$.fields[0].type`"),
    ],
)
def test_a_request_no_page_could_show_is_refused_before_it_is_stored(
    server: Served,
    make_request: RequestFactory,
    expect_error: ExpectError,
    name: str,
    value: Any,
    says: str,
) -> None:
    """Attack pass: a title "\\ud800" (valid JSON) was stored, the create answered 500 after
    the commit, and every listing holding it answered 500 from then on; a list for
    `instructions` or a string for `inputs` was stored and its page answered 500."""
    answer = server.call("runner", "POST", "/interruptions", json=make_request(**{name: value}))
    expect_error(answer, 422, "bad_request")
    assert says in answer.json()["error"]["message"]
    assert server.store.list_interruptions(pending=False, run=None) == []
    assert server.call("alice", "GET", "/interruptions").status_code == 200


def test_a_request_with_a_number_json_cannot_write_is_refused(
    server: Served, make_request: RequestFactory, expect_error: ExpectError
) -> None:
    body = json.dumps(make_request(inputs={"n": float("nan")}))
    answer = server.call(
        "runner",
        "POST",
        "/interruptions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    expect_error(answer, 422, "bad_request")
    assert "NaN or Infinity" in answer.json()["error"]["message"]
    assert server.store.list_interruptions(pending=False, run=None) == []


def test_one_row_kept_before_the_checks_does_not_break_the_listing(
    server: Served, make_request: RequestFactory
) -> None:
    """A row stored before the server refused such requests is shown mended, and the others
    with it, instead of a 500 for everyone."""
    if server.store.postgres:
        pytest.skip("PostgreSQL's JSON type refuses a lone surrogate and NaN by itself")
    server.create(make_request())
    deep: list[Any] = []
    inner = deep
    for _ in range(200):
        inner.append([])
        inner = inner[0]
    kept = make_request(
        run_id="old", id="old--gate", title="\ud800", inputs={"n": float("nan"), "d": deep}
    )
    with server.store.tx() as c:
        interruptions.insert_waiting(c, Interruption.from_dict(kept), datetime.now(UTC), "t")
    answer = server.call("alice", "GET", "/interruptions")
    assert answer.status_code == 200, answer.text
    shown = {v["id"]: v["request"] for v in answer.json()}
    assert shown[ID]["title"] == "Gate Check"
    assert shown["old--gate"]["title"] == "\ufffd"
    assert shown["old--gate"]["inputs"]["n"] is None
    assert "(nested too deeply to show)" in json.dumps(shown["old--gate"]["inputs"]["d"])
    assert server.call("alice", "GET", "/interruptions/old--gate").status_code == 200


def raw_post(
    server: Served, path: str, body: bytes, headers: list[tuple[str, str]]
) -> tuple[int, Any]:
    """POST ``body`` with exactly these headers (repeated ones too), and the answer."""
    split = urlsplit(server.url)
    connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=30)
    try:
        connection.putrequest("POST", "/api/v1" + path)
        connection.putheader("Authorization", f"Bearer {server.tokens['runner']}")
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def deep_request(make_request: RequestFactory, depth: int = 990) -> str:
    """A request whose `inputs` nest ``depth`` levels deep, as JSON text."""
    text = json.dumps(make_request(inputs={"v": "@@"}))
    return text.replace('"@@"', "[" * depth + "]" * depth)


def test_two_content_types_are_refused_before_the_body_is_judged(
    server: Served, make_request: RequestFactory
) -> None:
    """Attack pass: the depth check read the last Content-Type (text/plain: not JSON, not
    checked), FastAPI the first (JSON: parsed and stored 900 levels deep); every listing then
    answered 500."""
    body = deep_request(make_request).encode()
    headers = [("Content-Type", "application/json"), ("Content-Type", "text/plain")]
    status, answer = raw_post(server, "/interruptions", body, headers)
    assert status == 400, answer
    assert answer == {
        "error": {
            "code": "bad_request",
            "message": "the request has more than one Content-Type header",
        }
    }
    assert server.store.list_interruptions(pending=False, run=None) == []
    assert server.call("alice", "GET", "/interruptions").status_code == 200


@pytest.mark.parametrize(
    ("encoding", "content_type"),
    [
        ("utf-8", "application/json"),
        ("utf-16", "application/json"),
        ("utf-32-le", "application/json"),
        ("utf-8", "application/merge-patch+json"),
        ("utf-8", "Application/JSON ; charset=utf-8"),
    ],
)
def test_deep_json_is_refused_in_the_apis_shape_however_it_is_sent(
    server: Served, make_request: RequestFactory, encoding: str, content_type: str
) -> None:
    """The depth was checked on UTF-8 text only: the same body in UTF-16, which FastAPI's
    json.loads reads too, reached its parser (RecursionError: FastAPI's own error shape)."""
    body = deep_request(make_request).encode(encoding)
    status, answer = raw_post(server, "/interruptions", body, [("Content-Type", content_type)])
    assert status == 422, answer
    assert answer["error"]["code"] == "bad_request"
    assert "nested more than 64 levels deep" in answer["error"]["message"]
    assert server.store.list_interruptions(pending=False, run=None) == []


def test_what_the_framework_refuses_is_in_the_apis_error_shape(
    server: Served, expect_error: ExpectError
) -> None:
    expect_error(server.call("runner", "GET", "/no-such-route"), 404, "not_found")
    status, answer = raw_post(
        server, "/interruptions", b"\xff\xfe{", [("Content-Type", "application/json")]
    )
    assert (status, set(answer)) == (400, {"error"}), answer
    assert answer["error"]["code"] == "bad_request"


def test_malformed_bodies_get_the_stable_error_shape(
    server: Served, make_request: RequestFactory
) -> None:
    server.create(make_request())
    assert server.assign("alice", ID).status_code == 200
    answers = [
        server.call("alice", "POST", f"/interruptions/{ID}/submit", json={"result": "maybe"}),
        server.call("runner", "POST", "/interruptions", json={"id": "x"}),
        server.call("runner", "GET", f"/interruptions/{ID}", params={"wait": "999"}),
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert set(answer.json()) == {"error"}, answer.text


# -- long-polls -------------------------------------------------------------------------------


def long_poll(
    server: Served, etag: str, wait: float, interruption: str = ID
) -> tuple[requests.Response, float]:
    """The runner's long-poll of an interruption it has seen at ``etag``, and how long it took."""
    start = time.monotonic()
    answer = server.call(
        "runner",
        "GET",
        f"/interruptions/{interruption}",
        params={"wait": wait},
        headers={"If-None-Match": etag},
    )
    return answer, time.monotonic() - start


def test_long_poll_wakes_up_on_a_submit(
    server: Served, make_request: RequestFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.create(make_request())
    parked = server.parked(monkeypatch)
    assert server.assign("alice", ID).status_code == 200
    current = server.call("runner", "GET", f"/interruptions/{ID}")
    etag = current.headers["ETag"]
    assert etag == '"2"'
    submitted: list[requests.Response] = []

    def later() -> None:
        assert parked.wait(30), "the long-poll never waited"
        submitted.append(server.submit("alice", ID, notes="now"))

    thread = threading.Thread(target=later)
    thread.start()
    answer, elapsed = long_poll(server, etag, 5)
    thread.join()
    assert submitted[0].status_code == 200
    assert answer.status_code == 200
    assert answer.headers["ETag"] == '"3"'
    body = answer.json()
    assert (body["version"], body["state"]) == (3, "approved")
    assert [s["notes"] for s in body["submissions"]] == ["now"]
    # it waited for the submit (written once the poll was held), then woke up: well before
    # the 5 s
    assert elapsed < 4.0, elapsed


def test_long_poll_returns_304_when_nothing_changed(
    server: Served, make_request: RequestFactory
) -> None:
    server.create(make_request())
    answer, elapsed = long_poll(server, '"1"', 1)
    assert answer.status_code == 304
    assert answer.headers["ETag"] == '"1"'
    assert answer.content == b""
    assert 0.9 <= elapsed < 4.0, elapsed
    # a weak validator is the same version
    weak, _ = long_poll(server, 'W/"1"', 0)
    assert weak.status_code == 304


def test_long_poll_with_a_stale_etag_answers_at_once(
    server: Served, make_request: RequestFactory
) -> None:
    server.create(make_request())
    assert server.assign("alice", ID).status_code == 200
    answer, elapsed = long_poll(server, '"1"', 5)
    assert elapsed < 4.0, elapsed  # not the 5 s a held poll would take
    assert (answer.status_code, answer.json()["version"], answer.headers["ETag"]) == (200, 2, '"2"')


def test_long_poll_of_an_unknown_interruption(server: Served, expect_error: ExpectError) -> None:
    answer, _ = long_poll(server, '"1"', 5, interruption="nope")
    expect_error(answer, 404, "not_found")


# -- runs and locks ---------------------------------------------------------------------------


def test_runs(server: Served, expect_error: ExpectError) -> None:
    record = {"run_id": "r1", "status": "waiting", "steps": []}
    answer = server.call("runner", "PUT", "/runs/r1", json=record)
    assert (answer.status_code, answer.json()) == (200, {"run_id": "r1"})
    assert server.call("runner", "GET", "/runs/r1").json() == record
    expect_error(server.call("runner", "GET", "/runs/r2"), 404, "not_found")
    expect_error(server.call("runner", "PUT", "/runs/r2", json=record), 422, "bad_request")
    expect_error(
        server.call(
            "runner",
            "PUT",
            "/runs/r1",
            data=b"not json",
            headers={"Content-Type": "application/json"},
        ),
        422,
        "bad_request",
    )
    expect_error(server.call("runner", "PUT", "/runs/r1", json=[1, 2]), 422, "bad_request")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"steps": 5}, "Expected `array`, got `int` - at `$.steps`"),
        ({"steps": [1]}, "Expected `object`, got `int` - at `$.steps[0]`"),
        ({"steps": [{"name": ["x"]}]}, "Expected `str`, got `array` - at `$.steps[0].name`"),
        ({"started_by": "x"}, "Expected `object`, got `str` - at `$.started_by`"),
        ({"status": None}, "Expected `str`, got `null` - at `$.status`"),
    ],
)
def test_a_run_record_of_another_shape_is_refused(
    server: Served, expect_error: ExpectError, change: dict[str, Any], says: str
) -> None:
    """Attack pass: a record with `steps` not a list (or no `started_by`) was kept, and its
    page answered a bare 500."""
    record = {"run_id": "r1", "status": "waiting", "started_by": {"username": "x"}, "steps": []}
    answer = server.call("runner", "PUT", "/runs/r1", json={**record, **change})
    expect_error(answer, 422, "bad_request")
    assert says in answer.json()["error"]["message"]
    expect_error(server.call("runner", "GET", "/runs/r1"), 404, "not_found")


def test_locks(server: Served) -> None:
    one, two = {"run_id": "r1", "owner": "1" * 32}, {"run_id": "r2", "owner": "2" * 32}
    taken = server.call("runner", "POST", "/locks/k", json=one).json()
    assert (taken["taken"], taken["run_id"]) == (True, "r1")
    held = server.call("runner", "POST", "/locks/k", json=two).json()
    assert (held["taken"], held["run_id"]) == (False, "r1")
    release = server.call("runner", "POST", "/locks/k/release", json={"owner": two["owner"]})
    assert release.json() == {"key": "k", "released": False}
    release = server.call("runner", "POST", "/locks/k/release", json={"owner": one["owner"]})
    assert release.json() == {"key": "k", "released": True}
    taken = server.call("runner", "POST", "/locks/k", json=two).json()
    assert (taken["taken"], taken["run_id"]) == (True, "r2")
    listed = server.call("admin", "GET", "/locks").json()
    assert [(x["key"], x["run_id"]) for x in listed] == [("k", "r2")]
    broken = server.call("admin", "POST", "/locks/k/break", json={"reason": "stuck"})
    assert broken.status_code == 200 and broken.json()["run_id"] == "r2"
    assert server.call("admin", "GET", "/locks").json() == []


def test_long_poll_sees_a_write_by_another_replica(
    server: Served, make_request: RequestFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write this process did not make (another replica on the same database) wakes the
    long-poll at the next shared re-read, not at the end of the wait."""
    from runner.server.storage import Caller

    with serving(server.store, reread_seconds=0.2) as url:
        replica = Served(url, server.store, server.tokens)
        replica.create(make_request())
        parked = replica.parked(monkeypatch)

        def later() -> None:
            assert parked.wait(30), "the long-poll never waited"
            # straight to the database, as another replica writes: this server is not told
            replica.store.cancel(ID, "stopped elsewhere", Caller("admin", "replica", None))

        thread = threading.Thread(target=later)
        thread.start()
        answer, elapsed = long_poll(replica, '"1"', 20)
        thread.join()
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "cancelled"
    # woken by a re-read (every 0.2 s), far from the 20 s wait
    assert elapsed < 5.0, elapsed
