"""The Store on SQLite and PostgreSQL: people and teams, tokens (hashed), interruptions
(idempotent on run and step), responsibility, the rules of a submission, runs and locks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from runner.approvals.identity import Person
from runner.server import tables as t
from runner.server.app import status_of
from runner.server.audit import verify_chain
from runner.server.errors import ServerError
from runner.server.storage import Caller, Store

RequestFactory = Callable[..., dict[str, Any]]
RUNNER = Caller("runner", "tok-runner", None)
OTHER_RUNNER = Caller("runner", "tok-other", None)


def person(store: Store, username: str) -> Person:
    found = store.directory().by_username(username)
    assert found is not None
    return found


def refused(status: int, code: str) -> Any:
    """pytest.raises for a ServerError, checked for status and code afterwards."""

    class Check:
        message = ""

        def __enter__(self) -> Check:
            self.raises = pytest.raises(ServerError)
            self.info = self.raises.__enter__()
            return self

        def __exit__(self, *exc: Any) -> bool:
            handled = self.raises.__exit__(*exc)
            error = self.info.value
            assert (status_of(error), error.code) == (status, code), error.message
            self.message = error.message
            return bool(handled)

    return Check()


# -- people, teams, tokens --------------------------------------------------------------------


def test_import_people_and_teams(store: Store) -> None:
    directory = store.directory()
    assert [p.username for p in directory.people] == ["alice", "bob", "carol", "dave"]
    alice = person(store, "alice")
    assert (alice.id, alice.display_name, alice.email, alice.ci_logins, alice.ssh_principals) == (
        "u-alice",
        "Alice Martin",
        "alice@example.com",
        ("alice-gh",),
        ("alice@example.com",),
    )
    assert directory.members("trading-desk") == {"alice", "bob"}
    assert directory.members("dba") == {"bob", "carol"}
    assert directory.teams_of(person(store, "dave")) == []


def test_set_team_replaces_members_and_refuses_unknown_people(store: Store) -> None:
    store.set_team("trading-desk", ["carol"])
    assert store.directory().members("trading-desk") == {"carol"}
    with refused(404, "unknown_person"):
        store.set_team("trading-desk", ["nobody"])
    assert store.directory().members("trading-desk") == {"carol"}


def test_token_is_returned_once_and_only_its_hash_stored(store: Store) -> None:
    token = store.issue_token("approver", "alice", label="alice laptop")
    with store.engine.connect() as c:
        rows = [dict(r._mapping) for r in c.execute(select(t.tokens))]
    assert len(rows) == 1
    row = rows[0]
    assert row["hash"] != token
    assert row["hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in row.values())
    assert token.startswith(f"rnr_{row['id']}_")
    assert (row["kind"], row["person_id"], row["revoked"]) == ("approver", "u-alice", False)
    # and the listing shows no secret either
    listed = store.list_tokens()
    assert [set(x) for x in listed] == [{"id", "kind", "person_id", "label", "created", "revoked"}]
    assert token not in repr(listed) and row["hash"] not in repr(listed)


def test_authenticate_and_revoke(store: Store) -> None:
    token = store.issue_token("approver", "bob")
    caller = store.authenticate(token)
    assert caller is not None
    assert caller.kind == "approver"
    assert caller.person is not None and caller.person.username == "bob"
    assert store.authenticate(token + "x") is None
    assert store.revoke_token(caller.token_id) is True
    assert store.authenticate(token) is None
    assert store.revoke_token("no-such-id") is False


def test_token_kinds(store: Store) -> None:
    runner = store.authenticate(store.issue_token("runner"))
    assert runner is not None and (runner.kind, runner.person) == ("runner", None)
    with refused(404, "unknown_person"):
        store.issue_token("approver", "nobody")
    with refused(400, "bad_kind"):
        store.issue_token("superuser")


# -- interruptions ----------------------------------------------------------------------------


def test_create_is_idempotent_on_run_and_step(store: Store, make_request: RequestFactory) -> None:
    first = store.create_interruption(make_request(), RUNNER)
    assert (first["id"], first["state"], first["responsible"], first["version"]) == (
        "r1--gate",
        "waiting",
        None,
        1,
    )
    assert first["submissions"] == []
    again = store.create_interruption(make_request(), RUNNER)
    assert again == first
    # the same run and step under another id is still the same interruption
    other_id = store.create_interruption(make_request(id="something-else"), RUNNER)
    assert other_id["id"] == "r1--gate"
    # another step, or another run, is a new one
    assert (
        store.create_interruption(make_request(step_id="gate2", id="r1--gate2"), RUNNER)["id"]
        == "r1--gate2"
    )
    assert (
        store.create_interruption(make_request(run_id="r2", id="r2--gate"), RUNNER)["id"]
        == "r2--gate"
    )
    with store.engine.connect() as c:
        assert c.execute(
            select(t.interruptions.c.id).order_by(t.interruptions.c.id)
        ).scalars().all() == ["r1--gate", "r1--gate2", "r2--gate"]
    assert [e["kind"] for e in store.audit_entries()].count("created") == 3


def test_create_refuses_what_is_not_an_interruption(
    store: Store, make_request: RequestFactory
) -> None:
    with refused(422, "bad_request"):
        store.create_interruption({"id": "x", "run_id": "r", "step_id": "s", "bogus": 1}, RUNNER)


def test_take_responsibility(store: Store, make_request: RequestFactory) -> None:
    store.create_interruption(make_request(), RUNNER)
    view = store.take_responsibility("r1--gate", person(store, "alice"), reassign=False)
    assert (view["responsible"], view["version"]) == ("alice", 2)
    # taking it again yourself is fine
    assert (
        store.take_responsibility("r1--gate", person(store, "alice"), False)["responsible"]
        == "alice"
    )
    with refused(409, "responsible_taken"):
        store.take_responsibility("r1--gate", person(store, "bob"), reassign=False)
    view = store.take_responsibility("r1--gate", person(store, "bob"), reassign=True)
    assert view["responsible"] == "bob"
    with refused(403, "not_in_team"):
        store.take_responsibility("r1--gate", person(store, "dave"), reassign=True)
    with refused(404, "not_found"):
        store.take_responsibility("nope", person(store, "alice"), False)
    kinds = [(e["kind"], e["data"]) for e in store.audit_entries() if e["interruption_id"]]
    assert kinds[1:] == [
        ("assigned", {"from": None, "to": "alice"}),
        ("assigned", {"from": "alice", "to": "alice"}),
        ("reassigned", {"from": "alice", "to": "bob"}),
    ]


def test_submit_needs_responsibility(store: Store, make_request: RequestFactory) -> None:
    store.create_interruption(make_request(), RUNNER)
    with refused(403, "not_responsible"):
        store.submit("r1--gate", person(store, "alice"), "proceed", "", {})
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    with refused(403, "not_responsible"):
        store.submit("r1--gate", person(store, "bob"), "proceed", "", {})
    view = store.submit("r1--gate", person(store, "alice"), "proceed", "go", {})
    assert (view["state"], view["responsible"]) == ("approved", None)
    assert [(s["username"], s["result"], s["notes"]) for s in view["submissions"]] == [
        ("alice", "proceed", "go")
    ]
    with refused(409, "decided"):
        store.take_responsibility("r1--gate", person(store, "bob"), False)
    with refused(409, "decided"):
        store.submit("r1--gate", person(store, "alice"), "proceed", "", {})


def test_submit_outside_the_team_after_membership_was_revoked(
    store: Store, make_request: RequestFactory
) -> None:
    store.create_interruption(make_request(), RUNNER)
    store.take_responsibility("r1--gate", person(store, "bob"), False)
    store.set_team("trading-desk", ["alice"])
    with refused(403, "not_in_team"):
        store.submit("r1--gate", person(store, "bob"), "proceed", "", {})
    assert store.get("r1--gate")["state"] == "waiting"


def test_self_approval_refused(store: Store, make_request: RequestFactory) -> None:
    # alice started the run (as her CI login) and the step prevents self-approval
    store.create_interruption(
        make_request(started_by="alice-gh", prevent_self_approval=True), RUNNER
    )
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    with refused(403, "self_approval"):
        store.submit("r1--gate", person(store, "alice"), "proceed", "", {})
    store.take_responsibility("r1--gate", person(store, "bob"), True)
    assert store.submit("r1--gate", person(store, "bob"), "proceed", "", {})["state"] == "approved"


def test_self_approval_by_an_unknown_starter_is_refused_as_the_runner_refuses_it(
    store: Store, make_request: RequestFactory
) -> None:
    """The server stores what ``quorum.judge`` accepts and nothing else: a proceed on a run whose
    starter is not in the people file cannot rule out self-approval, so it is refused with the
    runner's own reason (it was stored, counted by no one, and the step waited on)."""
    store.create_interruption(
        make_request(started_by="mallory-gh", prevent_self_approval=True), RUNNER
    )
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    with refused(403, "self_approval") as check:
        store.submit("r1--gate", person(store, "alice"), "proceed", "", {})
    assert check.message == (
        "the run was started by 'mallory-gh', who is not in the people file, so self-approval "
        "cannot be ruled out"
    )
    view = store.get("r1--gate")
    assert (view["state"], view["submissions"], view["responsible"]) == ("waiting", [], "alice")
    # an abort is still heard
    view = store.submit("r1--gate", person(store, "alice"), "abort", "wrong starter", {})
    assert view["state"] == "aborted"


def test_abort_needs_notes_and_result_must_be_known(
    store: Store, make_request: RequestFactory
) -> None:
    store.create_interruption(make_request(), RUNNER)
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    with refused(422, "notes_required"):
        store.submit("r1--gate", person(store, "alice"), "abort", "   ", {})
    with refused(422, "bad_result"):
        store.submit("r1--gate", person(store, "alice"), "maybe", "x", {})
    view = store.submit("r1--gate", person(store, "alice"), "abort", "window open", {})
    assert view["state"] == "aborted"


TICKET = [
    {
        "name": "ticket",
        "type": "string",
        "label": "",
        "required": True,
        "pattern": "^CHG-[0-9]+$",
        "options": [],
    }
]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "field 'ticket' is required"),
        ({"ticket": "nope"}, "field 'ticket' does not match ^CHG-[0-9]+$, got 'nope'"),
        ({"ticket": "CHG-1", "extra": "x"}, "unknown field 'extra'"),
    ],
)
def test_bad_fields(
    store: Store, make_request: RequestFactory, fields: dict[str, str], problem: str
) -> None:
    store.create_interruption(make_request(fields=TICKET), RUNNER)
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    with pytest.raises(ServerError) as info:
        store.submit("r1--gate", person(store, "alice"), "proceed", "", fields)
    assert (status_of(info.value), info.value.code, info.value.message) == (
        422,
        "bad_fields",
        problem,
    )
    view = store.submit("r1--gate", person(store, "alice"), "proceed", "", {"ticket": "CHG-7"})
    assert view["state"] == "approved"
    assert view["submissions"][0]["fields"] == {"ticket": "CHG-7"}


def test_quorum_of_two_distinct_people(store: Store, make_request: RequestFactory) -> None:
    store.create_interruption(make_request(teams=["dba"], quorum=[["dba", 2]]), RUNNER)
    store.take_responsibility("r1--gate", person(store, "bob"), False)
    view = store.submit("r1--gate", person(store, "bob"), "proceed", "one", {})
    assert (view["state"], view["responsible"]) == ("waiting", None)
    store.take_responsibility("r1--gate", person(store, "bob"), False)
    with refused(409, "already_counted"):
        store.submit("r1--gate", person(store, "bob"), "proceed", "again", {})
    store.take_responsibility("r1--gate", person(store, "carol"), True)
    view = store.submit("r1--gate", person(store, "carol"), "proceed", "two", {})
    assert view["state"] == "approved"
    assert [s["username"] for s in view["submissions"]] == ["bob", "carol"]


def test_any_abort_aborts_a_quorum(store: Store, make_request: RequestFactory) -> None:
    store.create_interruption(make_request(teams=["dba"], quorum=[["dba", 2]]), RUNNER)
    store.take_responsibility("r1--gate", person(store, "bob"), False)
    assert store.submit("r1--gate", person(store, "bob"), "proceed", "", {})["state"] == "waiting"
    store.take_responsibility("r1--gate", person(store, "bob"), False)
    # bob already counted, but an abort is always heard
    view = store.submit("r1--gate", person(store, "bob"), "abort", "changed my mind", {})
    assert view["state"] == "aborted"


def test_cancel(store: Store, make_request: RequestFactory) -> None:
    store.create_interruption(make_request(), RUNNER)
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    view = store.cancel("r1--gate", "timed-out", RUNNER)
    assert (view["state"], view["responsible"]) == ("timed-out", None)
    # cancelling what is no longer waiting changes nothing
    assert store.cancel("r1--gate", "cancelled", RUNNER) == view
    store.create_interruption(make_request(run_id="r2", id="r2--gate"), RUNNER)
    assert store.cancel("r2--gate", "operator", RUNNER)["state"] == "cancelled"


@pytest.mark.parametrize(
    ("notes", "fields", "code"),
    [
        ("n" * 10_001, {}, "too_large"),
        ("", {"ticket": "t" * 1_001}, "too_large"),
        ("", {f"f{n}": "x" for n in range(101)}, "too_large"),
        ("half \udc00", {}, "bad_request"),
        ("", {"ticket": "\ud800"}, "bad_request"),
    ],
)
def test_the_decision_service_keeps_the_submission_limits(
    store: Store, make_request: RequestFactory, notes: str, fields: dict[str, str], code: str
) -> None:
    """The limits were the API's alone: the web form, which calls the service, skipped them."""
    store.create_interruption(make_request(), RUNNER)
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    with refused(422, code):
        store.submit("r1--gate", person(store, "alice"), "proceed", notes, fields)
    assert store.get("r1--gate")["submissions"] == []


def test_only_the_registering_runner_or_an_admin_cancels(
    store: Store, make_request: RequestFactory
) -> None:
    """Attack pass: another team's runner token cancelled a waiting run's interruption, which
    then could never be approved."""
    store.create_interruption(make_request(), RUNNER)
    with refused(403, "not_owner") as check:
        store.cancel("r1--gate", "timed-out", OTHER_RUNNER)
    assert "registered by another runner token" in check.message
    assert store.get("r1--gate")["state"] == "waiting"
    # the same request registered again by the other token changes no owner
    store.create_interruption(make_request(), OTHER_RUNNER)
    with refused(403, "not_owner"):
        store.cancel("r1--gate", "cancelled", OTHER_RUNNER)
    view = store.cancel("r1--gate", "stuck", Caller("admin", "tok-admin", None))
    assert view["state"] == "cancelled"
    assert store.history("r1--gate")[-1]["actor"] == "admin:tok-admin"


def test_versions_count_every_change(store: Store, make_request: RequestFactory) -> None:
    store.create_interruption(make_request(), RUNNER)
    assert store.version("r1--gate") == 1
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    assert store.version("r1--gate") == 2
    with pytest.raises(ServerError):
        store.take_responsibility("r1--gate", person(store, "bob"), False)
    assert store.version("r1--gate") == 2
    store.submit("r1--gate", person(store, "alice"), "proceed", "", {})
    assert store.version("r1--gate") == 3
    assert store.version("nope") is None


def test_list_interruptions(store: Store, make_request: RequestFactory) -> None:
    store.create_interruption(make_request(), RUNNER)
    store.create_interruption(make_request(run_id="r2", id="r2--gate"), RUNNER)
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    store.submit("r1--gate", person(store, "alice"), "proceed", "", {})
    assert [v["id"] for v in store.list_interruptions(pending=False, run=None)] == [
        "r1--gate",
        "r2--gate",
    ]
    assert [v["id"] for v in store.list_interruptions(pending=True, run=None)] == ["r2--gate"]
    assert [v["id"] for v in store.list_interruptions(pending=False, run="r1")] == ["r1--gate"]


# -- runs and locks ---------------------------------------------------------------------------


def test_runs(store: Store) -> None:
    record = {"run_id": "r1", "status": "waiting", "steps": [{"id": "gate", "status": "waiting"}]}
    store.put_run("r1", record, RUNNER)
    assert store.get_run("r1") == record
    done = {**record, "status": "success", "steps": [{"id": "gate", "status": "success"}]}
    store.put_run("r1", done, RUNNER)
    assert store.get_run("r1")["status"] == "success"
    assert store.list_runs() == [done]
    store.put_run("r1", done, RUNNER)  # the same again: nothing changes
    with refused(404, "not_found"):
        store.get_run("r2")


def test_a_run_record_is_written_only_by_its_token(store: Store) -> None:
    record = {"run_id": "r1", "status": "waiting", "steps": [{"id": "gate", "status": "waiting"}]}
    store.put_run("r1", record, RUNNER)
    with refused(403, "not_owner"):
        store.put_run("r1", {**record, "status": "success"}, OTHER_RUNNER)
    assert store.get_run("r1") == record


def test_what_a_run_record_settled_stays(store: Store) -> None:
    record = {
        "run_id": "r1",
        "environment": "staging",
        "status": "waiting",
        "steps": [{"id": "build", "status": "success"}, {"id": "gate", "status": "waiting"}],
    }
    store.put_run("r1", record, RUNNER)
    with refused(409, "record_rewritten"):  # a finished step
        store.put_run(
            "r1",
            {**record, "steps": [{"id": "build", "status": "failure"}, record["steps"][1]]},
            RUNNER,
        )
    with refused(409, "record_rewritten"):  # a finished step dropped
        store.put_run("r1", {**record, "steps": [record["steps"][1]]}, RUNNER)
    with refused(409, "record_rewritten"):  # the run's identity
        store.put_run("r1", {**record, "environment": "production"}, RUNNER)
    finished = {
        **record,
        "status": "failure",
        "steps": [record["steps"][0], {"id": "gate", "status": "failure"}],
    }
    store.put_run("r1", finished, RUNNER)
    with refused(409, "record_rewritten"):  # a finished run
        store.put_run("r1", {**finished, "status": "success"}, RUNNER)
    assert store.get_run("r1") == finished


OWNER_A = "a" * 32
OWNER_B = "b" * 32


def test_locks_are_held_by_an_owner_not_a_run_id(store: Store) -> None:
    def take(owner: str, run_id: str, caller: Caller = RUNNER, **kw: Any) -> dict[str, Any]:
        return store.acquire_lock("k", owner=owner, run_id=run_id, caller=caller, lease=60, **kw)

    assert take(OWNER_A, "r1")["taken"] is True
    assert take(OWNER_A, "r1")["taken"] is True  # the holder's heartbeat
    # another process naming the same run is another owner
    held = take(OWNER_B, "r1")
    assert (held["taken"], held["run_id"], held["detached"]) == (False, "r1", False)
    # a finished record does not free it
    store.put_run("r1", {"run_id": "r1", "status": "success"}, RUNNER)
    assert take(OWNER_B, "r2")["taken"] is False
    assert store.release_lock("k", OWNER_B, RUNNER) is False  # not the holder: nothing happens
    assert take(OWNER_B, "r2")["taken"] is False
    assert store.release_lock("k", OWNER_A, RUNNER) is True
    assert take(OWNER_B, "r2")["taken"] is True


def test_a_lock_whose_lease_ran_out_is_taken(store: Store) -> None:
    from datetime import timedelta

    from runner.server import storage

    assert store.acquire_lock("k", owner=OWNER_A, run_id="r1", caller=RUNNER, lease=5)["taken"]
    assert not store.acquire_lock("k", owner=OWNER_B, run_id="r2", caller=RUNNER, lease=5)["taken"]
    with store.tx() as c:  # the holder was killed and renewed nothing: its lease has passed
        c.execute(t.locks.update().values(expires=storage.now() - timedelta(seconds=1)))
    assert store.acquire_lock("k", owner=OWNER_B, run_id="r2", caller=RUNNER, lease=5)["taken"]
    # the old holder's heartbeat now learns it lost it
    assert not store.acquire_lock("k", owner=OWNER_A, run_id="r1", caller=RUNNER, lease=5)["taken"]
    kinds = [e["kind"] for e in store.audit_entries() if e["kind"].startswith("lock")]
    assert kinds == ["lock-taken", "lock-taken"]


def test_a_detached_lock_goes_only_to_its_own_runs_resume(store: Store) -> None:
    assert store.acquire_lock(
        "k", owner=OWNER_A, run_id="r1", caller=RUNNER, lease=3600, detached=True
    )["taken"]
    # another run, or the same run id through another token: refused
    assert not store.acquire_lock("k", owner=OWNER_B, run_id="r2", caller=RUNNER, lease=60)["taken"]
    assert not store.acquire_lock("k", owner=OWNER_B, run_id="r1", caller=OTHER_RUNNER, lease=60)[
        "taken"
    ]
    # its resume, through the same token
    assert store.acquire_lock("k", owner=OWNER_B, run_id="r1", caller=RUNNER, lease=60)["taken"]
    # now held by a live owner: not handed over again
    assert not store.acquire_lock("k", owner="c" * 32, run_id="r1", caller=RUNNER, lease=60)[
        "taken"
    ]


def test_an_admin_breaks_a_lock_and_the_audit_chain_says_so(store: Store) -> None:
    store.acquire_lock("k", owner=OWNER_A, run_id="r1", caller=RUNNER, lease=60)
    assert [(x["key"], x["run_id"], x["expired"]) for x in store.list_locks()] == [
        ("k", "r1", False)
    ]
    broken = store.break_lock("k", "admin:tok-admin", "the runner machine burned down")
    assert broken is not None and broken["run_id"] == "r1"
    assert store.list_locks() == []
    assert store.break_lock("k", "admin", "again") is None
    entry = store.audit_entries()[-1]
    assert (entry["kind"], entry["actor"], entry["data"]["reason"]) == (
        "lock-broken",
        "admin:tok-admin",
        "the runner machine burned down",
    )
    assert verify_chain(store.audit_entries()) == []


def test_every_change_is_audited_in_one_chain(store: Store, make_request: RequestFactory) -> None:
    token = store.issue_token("approver", "alice")
    caller = store.authenticate(token)
    assert caller is not None
    store.create_interruption(make_request(), RUNNER)
    store.take_responsibility("r1--gate", person(store, "alice"), False)
    store.submit("r1--gate", person(store, "alice"), "proceed", "ok", {})
    store.revoke_token(caller.token_id)
    entries = store.audit_entries()
    assert [e["kind"] for e in entries] == [
        "people-imported",
        "token-issued",
        "created",
        "assigned",
        "submitted",
        "token-revoked",
    ]
    assert [e["seq"] for e in entries] == list(range(1, 7))
    assert entries[4]["data"] == {
        "result": "proceed",
        "notes": "ok",
        "fields": {},
        "state": "approved",
    }
    assert entries[4]["actor"] == "alice"
    assert verify_chain(entries) == []
    assert token not in repr(entries)


def test_web_sessions_end_and_are_pruned(store: Store) -> None:
    store.issue_token("approver", "alice")
    with store.engine.connect() as c:
        token_id = c.execute(select(t.tokens.c.id)).scalar_one()
    first = store.start_web_session(token_id, lifetime=3600)
    second = store.start_web_session(token_id, lifetime=3600)
    assert store.web_session_caller(first) is not None
    store.end_web_session(first)
    assert store.web_session_caller(first) is None
    assert store.web_session_caller(second) is not None
    third = store.start_web_session(token_id, lifetime=3600)

    def ids() -> set[str]:
        with store.engine.connect() as c:
            return set(c.execute(select(t.web_sessions.c.id)).scalars())

    assert ids() == {second, third}  # the signed-out one is gone
    fourth = store.start_web_session(token_id, lifetime=0)
    assert ids() == {fourth}  # sessions older than the lifetime are gone
    assert store.web_session_caller(fourth) is not None
