"""End to end: `runner server` in a subprocess on a SQLite file, `runner run` in a subprocess
waiting at a manual step with the ``server`` source, approvers using `runner approval`.

The run continues with outputs naming the approver; a detached run resumes from the server's copy
on an empty state folder; a server killed and restarted mid-wait loses nothing; a broken server
(a stub answering 500, garbage, or slowly) never makes the run proceed; the token is never
printed.

The tests that leave the server running share one (``shared_world``: a workspace and a run id of
their own on the module's server); those that kill or stop it start their own (``world``).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers.cli import cli
from helpers.clock import FakeClock, real_now
from helpers.server_e2e import ID, World, finish, make_world, step
from helpers.waiting import Output

from runner.cli.main import main

if TYPE_CHECKING:
    from helpers.stub import Reply, Seen, Stub

    StubFactory = Callable[[Callable[[Seen], Reply]], Stub]


#: what the runner prints after the first look at its request, just before its long-poll
WAITING = "⏸ Gate Check: Waiting for trading-desk (0/1)"


@pytest.fixture
def offline_world(tmp_path: Path) -> World:
    """The world without its server running: for runs against a stub standing in for it."""
    return make_world(tmp_path)


def test_run_waits_and_proceeds_when_a_team_member_approves(
    shared_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = shared_world
    world.workflow(world.server.url)
    run = world.start_run()
    world.wait_for_interruption(run)
    world.approve(monkeypatch, "alice", "desk told")
    code, out, err = finish(run)
    assert code == 0, out + err
    assert "decided-by=Alice Martin" in out
    assert "notes=desk told" in out
    record = world.record()
    assert (record["status"], record["exit_code"]) == ("success", 0)
    gate = step(record, "gate")
    assert gate["outputs"]["responsible-user-username"] == "alice"
    assert gate["octopus"]["Manual.ResponsibleUser.DisplayName"] == "Alice Martin"
    decisions = gate["approval"]["decisions"]
    assert [(d["source"], d["result"], d["username"], d["notes"]) for d in decisions] == [
        ("server", "proceed", "alice", "desk told")
    ]
    assert decisions[0]["evidence"]["server"] == world.server.url
    assert step(record, "after")["status"] == "success"
    assert world.api("GET", f"/interruptions/{world.interruption}").json()["state"] == "approved"
    # the server's copy of the record says it finished: resuming it elsewhere runs nothing
    copy = world.api("GET", f"/runs/{world.run_id}").json()
    assert (copy["status"], copy["exit_code"]) == ("success", 0)
    again = world.resume("ELSEWHERE")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already finished" in again.stdout + again.stderr
    assert "decided-by=" not in again.stdout
    world.assert_token_hidden(out, err, again.stdout, again.stderr)


def test_only_the_team_decides(shared_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """bob is in the trading desk; the CLI refuses a second person once someone is responsible."""
    world = shared_world
    asked = world.interruption
    world.workflow(world.server.url)
    with world.running() as run:
        world.wait_for_interruption(run)
        monkeypatch.setenv("RUNNER_APPROVER_TOKEN", world.approver_tokens["alice"])
        assert cli("approval", "assign", asked, "--server", world.server.url)[0] == 0
        monkeypatch.setenv("RUNNER_APPROVER_TOKEN", world.approver_tokens["bob"])
        assert main(["approval", "proceed", asked, "--server", world.server.url]) != 0
        assert main(["approval", "assign", asked, "--server", world.server.url]) != 0
        assert cli("approval", "assign", asked, "--server", world.server.url, "--reassign")[0] == 0
        assert cli(
            "approval", "abort", asked, "--server", world.server.url, "--notes", "window open"
        ) == (0, f"abort: {asked} is now aborted\n")
        code, out, err = finish(run)
    assert code == 3, out + err
    gate = step(world.record(), "gate")
    assert [(d["source"], d["result"], d["username"]) for d in gate["approval"]["decisions"]] == [
        ("server", "abort", "bob")
    ]
    world.assert_token_hidden(out, err)


def test_detached_run_resumes_from_the_server_on_an_empty_state_folder(
    shared_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = shared_world
    world.workflow(world.server.url)
    code, out, err = finish(world.start_run("--detach-on-wait"))
    assert code == 75, out + err
    assert world.record()["status"] == "waiting"
    copy = world.api("GET", f"/runs/{world.run_id}").json()
    assert (copy["run_id"], copy["status"]) == (world.run_id, "waiting")
    world.approve(monkeypatch, "alice", "after hours")
    resumed = world.resume("EMPTY")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "decided-by=Alice Martin" in resumed.stdout
    assert "notes=after hours" in resumed.stdout
    record = world.record("EMPTY")
    assert record["status"] == "success"
    decisions = step(record, "gate")["approval"]["decisions"]
    assert [(d["source"], d["username"]) for d in decisions] == [("server", "alice")]
    # the first state folder still holds the detached run only
    assert world.record("S")["status"] == "waiting"
    world.assert_token_hidden(out, err, resumed.stdout, resumed.stderr)


def test_server_killed_and_restarted_mid_wait(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.workflow(world.server.url)
    with world.running() as run:
        output = Output(run)
        world.wait_for_interruption(run)
        output.wait_for(WAITING)  # the runner goes into its long-poll now
        world.server.kill()
        # the outage lasts a moment the runner must wait through (a window, not a check of
        # timing: the run must still be there after it)
        time.sleep(1.0)
        assert run.poll() is None  # still waiting: a failure is never a decision
        world.server.start()  # same database file, same port
        world.wait_for_interruption()
        world.approve(monkeypatch, "alice", "after the restart")
        code, out, err = output.finish()
    assert code == 0, out + err
    assert "decided-by=Alice Martin" in out
    decisions = step(world.record(), "gate")["approval"]["decisions"]
    assert [(d["source"], d["username"], d["notes"]) for d in decisions] == [
        ("server", "alice", "after the restart")
    ]
    world.assert_token_hidden(out, err)


def test_server_stopped_with_sigterm_mid_wait_stops_quickly_and_the_run_goes_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiting runner's long-poll does not hold the server's shutdown (a deploy of the server
    must not hang for a minute), and the runner takes the dropped poll as no answer."""
    world.workflow(world.server.url)
    with world.running() as run:
        output = Output(run)
        world.wait_for_interruption(run)
        output.wait_for(WAITING)  # the runner goes into its long-poll now
        assert world.server.process is not None
        started = time.monotonic()
        world.server.process.send_signal(signal.SIGTERM)
        world.server.process.wait(30)
        # not the 20 s the runner's long-poll lasts (the server closes it after 2 s); a loaded
        # machine took 6 s to stop a server at this point, so the bound leaves room for that
        assert time.monotonic() - started < 12.0
        assert run.poll() is None  # still waiting: a failure is never a decision
        world.server.start()
        world.approve(monkeypatch, "alice", "after the stop")
        code, out, err = output.finish()
    assert code == 0, out + err
    assert "decided-by=Alice Martin" in out


# -- a broken server ----------------------------------------------------------------------------

VIEW = {
    "id": ID,
    "run_id": "r1",
    "step_id": "gate",
    "request": {},
    "state": "waiting",
    "responsible": None,
    "version": 1,
    "created": "",
    "updated": "",
    "submissions": [],
}
PROCEED = [
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
JSON = {"Content-Type": "application/json"}


def broken(mode: str, clock: FakeClock) -> Callable[[Seen], Reply]:
    """A server that registers the interruption and takes the run's record and lock, then
    answers every long-poll badly (late, on the run's ``clock``, in mode ``slow``)."""
    view = dict(VIEW)

    def answer(seen: Seen) -> Reply:
        path = seen.path.split("?")[0]
        if seen.method == "PUT" and path == "/api/v1/runs/r1":
            return 200, JSON, b'{"run_id": "r1"}'
        if path.startswith("/api/v1/locks/"):
            return 200, JSON, b'{"taken": true, "run_id": "r1"}'
        if seen.method == "POST" and path == "/api/v1/interruptions":
            view["request"] = json.loads(seen.body)  # kept as the runner asked it
            return 201, JSON, json.dumps(view).encode()
        if seen.method == "POST" and path.endswith("/cancel"):
            return 200, JSON, json.dumps({**view, "state": "timed-out"}).encode()
        if mode == "error-500":
            # a 500 whose body looks like a decision: still an error, never a decision
            return 500, JSON, json.dumps({**view, "version": 2, "submissions": PROCEED}).encode()
        if mode == "garbage":
            return 200, JSON, b"<html>proceed</html>"
        clock.advance(2.0)  # slow: an answer comes, late, and says nothing changed
        return 304, {"ETag": '"1"'}, b""

    return answer


@pytest.mark.parametrize("mode", ["error-500", "garbage", "slow"])
def test_a_broken_server_never_makes_the_run_proceed(
    offline_world: World, stub: StubFactory, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    world = offline_world
    clock = FakeClock(real_now())
    server = stub(broken(mode, clock))
    world.workflow(server.url, timeout=0.05)
    done = world.run_here(monkeypatch, clock)
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 4, out + err
    record = world.record()
    assert (record["status"], record["exit_code"]) == ("timed-out", 4)
    gate = step(record, "gate")
    assert gate["approval"]["state"] == "timed-out"
    assert gate["approval"]["decisions"] == []
    assert gate["approval"]["submissions"] == []
    assert gate["outputs"]["approved"] == "false"
    assert "decided-by=" not in out
    assert step(record, "after")["status"] != "success"
    polls = [s for s in server.seen if s.method == "GET"]
    assert polls, "the runner never asked"
    assert all(s.headers["Authorization"] == f"Bearer {world.runner_token}" for s in polls)
    cancels = [s for s in server.seen if s.path.endswith("/cancel")]
    assert [json.loads(s.body) for s in cancels] == [{"reason": "timed-out"}]
    if mode != "slow":
        assert "a failure is never a decision" in out + err
    world.assert_token_hidden(out, err)
