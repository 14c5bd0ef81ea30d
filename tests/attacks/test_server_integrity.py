"""Every way a deployment proceeded without a valid approval through the approval server (issue
#17), found by an outside attack on loopback, each now refused:

- a decision replayed across environments (a staging run's, or one an attacker registered ahead
  of a real run under its id) answered a production run;
- a run record on the server was rewritten by another runner token, or a finished gate rewritten;
- the server's deployment lock was "already mine" for any process naming the same run id, was
  freed by the holder's record (which anyone could write), and a killed holder blocked forever;
- a 60 MB body was stored, a catastrophic field pattern stalled the server inside a write
  transaction, a cross-origin ``POST /login`` signed a victim in, and ``Retry-After: 300`` kept a
  runner waiting far past its step's deadline.

Real servers on loopback (uvicorn in a thread, ``runner server`` where a subprocess matters), real
``runner`` processes, real HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import server_helpers
from helpers.cli import cli, cli_in
from helpers.clock import FakeClock, fake_time, real_now
from helpers.people import ALICE_DESK
from helpers.server_helpers import Seen, people_directory, serving

from runner.approvals.request import Interruption
from runner.approvals.server_client import ServerClient
from runner.approvals.server_source import ServerSource
from runner.errors import ApprovalError
from runner.model import Approvals
from runner.model import ServerSource as ServerConfig
from runner.options import RunOptions
from runner.server.audit import verify_chain
from runner.server.storage import Store, make_engine, migrate

RUNNER = str(Path(sys.executable).with_name("runner"))
WAIT = 30.0  # the hang guard of every wait below

stub = server_helpers.stub


@dataclass
class World:
    url: str
    store: Store
    tokens: dict[str, str]
    root: Path

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", WAIT)
        return requests.request(method, f"{self.url}/api/v1{path}", headers=headers, **kwargs)

    def approve(self, interruption_id: str, who: str = "alice") -> None:
        answer = self.call(who, "PUT", f"/interruptions/{interruption_id}/responsible", json={})
        assert answer.status_code == 200, answer.text
        answer = self.call(
            who, "POST", f"/interruptions/{interruption_id}/submit", json={"result": "proceed"}
        )
        assert answer.status_code == 200, answer.text

    def source(self, token: str = "runner") -> ServerSource:
        approvals = Approvals(server=ServerConfig(url=self.url))
        return ServerSource(
            environ={"RUNNER_SERVER_TOKEN": self.tokens[token]},
            approvals=approvals,
            workspace=self.root,
            directory=people_directory(),
            options=RunOptions(),
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = make_engine(f"sqlite:///{tmp_path / 'server.db'}")
    migrate(engine)
    store = Store(engine)
    store.import_directory(people_directory())
    tokens = {
        "runner": store.issue_token("runner", label="ci"),
        "other-runner": store.issue_token("runner", label="another pipeline"),
        "admin": store.issue_token("admin", label="admin"),
        "alice": store.issue_token("approver", "alice", label="alice"),
    }
    try:
        with serving(store) as url:
            yield World(url, store, tokens, tmp_path)
    finally:
        engine.dispose()


def request_(run_id: str = "gh-777-1", **changes: Any) -> Interruption:
    return Interruption.from_dict(body_(run_id, **changes))


def body_(run_id: str = "gh-777-1", **changes: Any) -> dict[str, Any]:
    """An interruption as the runner sends it."""
    body: dict[str, Any] = {
        "id": f"{run_id}--gate",
        "run_id": run_id,
        "step_id": "gate",
        "step_name": "Gate",
        "title": "Gate",
        "instructions": "Tell the desk, then proceed.",
        "teams": ["trading-desk"],
        "quorum": [],
        "fields": [],
        "created": "2030-01-01T12:00:00.000Z",
        "deadline": None,
        "environment": "production",
        "workflow": "Deploy the web shop",
        "digest": "d" * 64,
        "commit": "c" * 40,
        "inputs": {"version": "1.4.2"},
        "following_steps": ["Deploy"],
        "started_by": "ci-bot",
        "prevent_self_approval": False,
        "sources": ["server"],
        "run_started": "2030-01-01T12:00:00.000Z",
    }
    body.update(changes)
    return body


# -- replay across environments --------------------------------------------------------------


def test_a_staging_approval_does_not_answer_a_production_run_with_the_same_id(
    world: World,
) -> None:
    staging = request_(environment="staging", instructions="Staging only, harmless.")
    source = world.source()
    source.register(staging)
    world.approve(staging.id)
    source.poll(staging)  # the registration's own view: nothing yet
    assert [s.result for s in source.poll(staging)] == ["proceed"]  # staging: approved

    production = request_()
    answer = world.call("runner", "POST", "/interruptions", json=production.to_dict())
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "request_differs"
    assert "environment" in answer.json()["error"]["message"]
    elsewhere = world.source()
    with pytest.raises(ApprovalError, match="start this run with another --run-id"):
        elsewhere.register(production)
    # and polling anyway finds nothing that counts
    with pytest.raises(ApprovalError, match="its decisions do not count here"):
        elsewhere.poll(production)


def test_an_interruption_registered_ahead_of_a_run_does_not_approve_it(world: World) -> None:
    """A runner token registers gh-777-1's gate first (staging, harmless instructions); an
    approver approves it; the real production run with that id must not proceed."""
    bait = request_(environment="staging", instructions="Just a staging smoke test.")
    answer = world.call("other-runner", "POST", "/interruptions", json=bait.to_dict())
    assert answer.status_code == 201, answer.text
    world.approve(bait.id)
    real = world.source()
    with pytest.raises(ApprovalError):
        real.register(request_())
    with pytest.raises(ApprovalError, match="its decisions do not count here"):
        real.poll(request_())


def test_the_runner_refuses_a_server_answer_about_another_request(
    stub: Callable[..., Any], tmp_path: Path
) -> None:
    """Whatever the server says (an old server, a proxy, a restored backup), the runner counts
    decisions only for an interruption whose stored request is its own, field by field."""
    staging = request_(environment="staging")
    approved = {
        "id": staging.id,
        "run_id": staging.run_id,
        "step_id": "gate",
        "request": staging.to_dict(),
        "state": "approved",
        "responsible": None,
        "version": 3,
        "created": "",
        "updated": "",
        "submissions": [
            {
                "id": 1,
                "username": "alice",
                "person_id": "u-alice",
                "result": "proceed",
                "notes": "",
                "fields": {},
                "at": "2030-01-01T12:00:00.000Z",
            }
        ],
    }

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        status = 201 if seen.method == "POST" else 200
        return status, {"Content-Type": "application/json"}, json.dumps(approved).encode()

    server = stub(answer)
    source = ServerSource(
        client=ServerClient(server.url, "rnr_x_y", sleep=lambda seconds: None),
        environ={},
        approvals=Approvals(server=ServerConfig(url=server.url)),
        workspace=tmp_path,
        directory=people_directory(),
        options=RunOptions(),
    )
    with pytest.raises(ApprovalError, match="differs in: environment"):
        source.register(request_())
    for _ in range(2):
        with pytest.raises(ApprovalError, match="its decisions do not count here"):
            source.poll(request_())


# -- run records -----------------------------------------------------------------------------


def record(status: str = "waiting", gate: str = "waiting") -> dict[str, Any]:
    return {
        "run_id": "r9",
        "workflow_path": "deploy.yml",
        "workflow_name": "Deploy",
        "digest": "d" * 64,
        "environment": "production",
        "started_at": "2030-01-01T12:00:00.000Z",
        "status": status,
        "steps": [
            {"id": "build", "status": "success"},
            {"id": "gate", "status": gate},
            {"id": "deploy", "status": "pending"},
        ],
    }


def test_a_run_record_cannot_be_rewritten_by_another_runner_token(world: World) -> None:
    assert world.call("runner", "PUT", "/runs/r9", json=record()).status_code == 200
    forged = record(gate="success")
    answer = world.call("other-runner", "PUT", "/runs/r9", json=forged)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "not_owner"
    assert world.call("runner", "GET", "/runs/r9").json() == record()


def test_finished_steps_of_a_run_record_are_append_only(world: World) -> None:
    assert world.call("runner", "PUT", "/runs/r9", json=record(gate="failure")).status_code == 200
    answer = world.call("runner", "PUT", "/runs/r9", json=record(gate="success"))
    assert answer.status_code == 409, answer.text
    assert "step 'gate' has finished" in answer.json()["error"]["message"]
    # going on is fine: a pending step finishes
    done = record(gate="failure")
    done["steps"][2]["status"] = "skipped"
    assert world.call("runner", "PUT", "/runs/r9", json=done).status_code == 200


def test_the_api_gives_a_runner_the_stored_request_and_its_decision_rows(world: World) -> None:
    """What `runner resume` re-verifies a server gate against (ServerClient.interruption)."""
    asked = request_()
    world.source().register(asked)
    world.approve(asked.id)
    client = ServerClient(world.url, world.tokens["runner"])
    view = client.interruption(asked.id)
    assert view["request"] == json.loads(json.dumps(asked.to_dict()))
    assert [(s["username"], s["result"]) for s in view["submissions"]] == [("alice", "proceed")]


# -- locks -----------------------------------------------------------------------------------


def lock(owner: str, run_id: str = "same-1", **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "owner": owner, **extra}


def test_a_second_process_with_the_same_run_id_does_not_get_the_lock(world: World) -> None:
    first = world.call("runner", "POST", "/locks/k", json=lock("machine-one-" + "1" * 20))
    assert first.json()["taken"] is True
    second = world.call("runner", "POST", "/locks/k", json=lock("machine-two-" + "2" * 20))
    assert second.json()["taken"] is False, second.text
    assert second.json()["run_id"] == "same-1"


def test_a_lock_is_not_freed_by_a_record_anyone_writes(world: World) -> None:
    holder = lock("holder-" + "h" * 30, run_id="r-holder")
    assert world.call("runner", "POST", "/locks/k", json=holder).json()["taken"] is True
    world.call(
        "other-runner", "PUT", "/runs/r-holder", json={"run_id": "r-holder", "status": "success"}
    )
    other = world.call("other-runner", "POST", "/locks/k", json=lock("x" * 32, run_id="r-other"))
    assert other.json()["taken"] is False, other.text
    # nor released by anyone but its owner
    release = world.call("other-runner", "POST", "/locks/k/release", json={"owner": "x" * 32})
    assert release.json()["released"] is False
    again = world.call("other-runner", "POST", "/locks/k", json=lock("x" * 32, run_id="r-other"))
    assert again.json()["taken"] is False


def test_an_admin_lists_and_breaks_locks_and_the_audit_chain_records_it(
    world: World, tmp_path: Path
) -> None:
    world.call("runner", "POST", "/locks/k", json=lock("o" * 32))
    database = f"sqlite:///{tmp_path / 'server.db'}"
    code, out = cli("server", "--database", database, "locks", "list")
    assert code == 0 and "k  run same-1" in out and "held" in out, out
    code, out = cli(
        "server", "--database", database, "locks", "break", "k", "--reason", "host gone"
    )
    assert code == 0 and "broke the lock k of run same-1" in out, out
    entries = world.store.audit_entries()
    assert verify_chain(entries) == []
    assert (entries[-1]["kind"], entries[-1]["data"]["reason"]) == ("lock-broken", "host gone")
    assert world.call("admin", "GET", "/locks").json() == []


WORKFLOW = """\
name: Integrity
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: {url}
steps:
  - id: gate
    name: Gate
    manual:
      instructions: Proceed?
      teams: [trading-desk]
      timeout-minutes: {timeout}
  - id: deploy
    name: Deploy
    run: echo deployed
"""


def host_env(**extra: str) -> dict[str, str]:
    drop = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "GITHUB_RUN_ID", "CI_JOB_ID", "RUNNER_STATE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("RUNNER_")}
    env.update(NO_COLOR="1", RUNNER_ACTOR="ci-bot", **extra)
    return env


def workspace(root: Path, url: str, timeout: float = 5) -> Path:
    ws = root / "ws"
    (ws / ".git").mkdir(parents=True, exist_ok=True)
    (ws / "approvals").mkdir(exist_ok=True)
    (ws / "approvals" / "people.yml").write_text(ALICE_DESK)
    (ws / "deploy.yml").write_text(WORKFLOW.format(url=url, timeout=timeout))
    return ws


def start(ws: Path, token: str, run_id: str, state: str, *args: str, **env: str) -> Any:
    return subprocess.Popen(
        [
            RUNNER,
            "run",
            "deploy.yml",
            "--env",
            "production",
            "--run-id",
            run_id,
            "--state-dir",
            state,
            *args,
        ],
        cwd=ws,
        env=host_env(RUNNER_SERVER_TOKEN=token, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_pending(world: World, interruption_id: str, run: Any) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        answer = world.call("alice", "GET", "/interruptions", params={"pending": "true"})
        if interruption_id in [v["id"] for v in answer.json()]:
            return
        if run.poll() is not None:
            raise AssertionError(f"the run ended ({run.returncode}):\n{run.communicate()[0]}")
        assert time.monotonic() < deadline, "the interruption did not appear"
        time.sleep(0.05)


def test_two_machines_with_the_same_run_id_do_not_both_deploy(world: World) -> None:
    ws = workspace(world.root, world.url)
    one = start(ws, world.tokens["runner"], "same-1", "machine-one")
    try:
        wait_for_pending(world, "same-1--gate", one)
        two = start(ws, world.tokens["runner"], "same-1", "machine-two")
        out, _ = two.communicate(timeout=WAIT)
        assert two.returncode == 5, out
        assert "deployed" not in out
        world.approve("same-1--gate")
        out, _ = one.communicate(timeout=WAIT)
        assert one.returncode == 0, out
    finally:
        for run in (one,):
            if run.poll() is None:
                run.kill()
                run.communicate()


def test_a_killed_holder_does_not_block_the_environment_forever(world: World) -> None:
    ws = workspace(world.root, world.url)
    one = start(ws, world.tokens["runner"], "killed-1", "one", RUNNER_SERVER_LOCK_LEASE="1")
    two = None
    try:
        wait_for_pending(world, "killed-1--gate", one)
        one.send_signal(signal.SIGKILL)
        one.communicate(timeout=WAIT)
        two = start(ws, world.tokens["runner"], "next-1", "two", "--wait-for-lock")
        # its lease runs out within a second: the next run takes the lock and reaches its gate
        wait_for_pending(world, "next-1--gate", two)
        kinds = [
            e["data"].get("expired", {}).get("run_id")
            for e in world.store.audit_entries()
            if e["kind"] == "lock-taken"
        ]
        assert kinds == [None, "killed-1"]
    finally:
        for run in (one, two):
            if run is not None and run.poll() is None:
                run.kill()
                run.communicate()


def test_a_detached_block_deployments_lock_goes_to_its_own_resume_only(world: World) -> None:
    ws = workspace(world.root, world.url)
    text = (ws / "deploy.yml").read_text()
    (ws / "deploy.yml").write_text(
        text.replace("      teams:", "      block-deployments: true\n      teams:")
    )
    first = start(ws, world.tokens["runner"], "held-1", "one", "--detach-on-wait")
    out, _ = first.communicate(timeout=WAIT)
    assert first.returncode == 75, out
    [held] = world.call("admin", "GET", "/locks").json()
    assert (held["run_id"], held["detached"]) == ("held-1", True)
    # another run is refused while the first is detached; so is the same run id from a pipeline
    # with another token
    other = start(ws, world.tokens["runner"], "other-1", "two")
    out, _ = other.communicate(timeout=WAIT)
    assert other.returncode == 5 and "detached at a block-deployments step" in out, out
    world.approve("held-1--gate")
    stranger = subprocess.run(
        [RUNNER, "resume", "held-1", "--state-dir", "elsewhere", "--server", world.url],
        cwd=ws,
        env=host_env(RUNNER_SERVER_TOKEN=world.tokens["other-runner"]),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert stranger.returncode == 5, stranger.stdout + stranger.stderr
    assert "deployed" not in stranger.stdout
    # its own resume, on an empty machine, through the token that started it, takes it over
    resumed = subprocess.run(
        [RUNNER, "resume", "held-1", "--state-dir", "empty", "--server", world.url],
        cwd=ws,
        env=host_env(RUNNER_SERVER_TOKEN=world.tokens["runner"]),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "deployed" in resumed.stdout
    assert world.call("admin", "GET", "/locks").json() == []
    kinds = [e["kind"] for e in world.store.audit_entries() if e["kind"].startswith("lock-")]
    assert kinds == ["lock-taken", "lock-handed-over", "lock-released"]


# -- server robustness -----------------------------------------------------------------------


def test_huge_bodies_are_refused_with_413(world: World) -> None:
    huge = request_(instructions="x" * (8 * 1024 * 1024)).to_dict()
    answer = world.call("runner", "POST", "/interruptions", json=huge)
    assert answer.status_code == 413, answer.text[:200]
    assert answer.json()["error"]["code"] == "too_large"
    big_record = {**record(), "env": {"X": "y" * (8 * 1024 * 1024)}}
    answer = world.call("runner", "PUT", "/runs/r9", json=big_record)
    assert answer.status_code == 413, answer.text[:200]
    # a field over its own limit, in a body under the limit: 422 saying which
    long = request_(instructions="x" * (100 * 1024)).to_dict()
    answer = world.call("runner", "POST", "/interruptions", json=long)
    assert answer.status_code == 422, answer.text[:200]
    assert "`instructions` is over" in answer.json()["error"]["message"]
    for name in ("following_steps", "skipped"):  # a 200,000-character step id was kept
        answer = world.call(
            "runner", "POST", "/interruptions", json=body_(**{name: ["s" * 200_000]})
        )
        assert answer.status_code == 422, answer.text[:200]
        assert f"`{name}` must be at most" in answer.json()["error"]["message"]
    assert world.store.list_interruptions(pending=False, run=None) == []


def test_a_catastrophic_field_pattern_does_not_stall_the_server(world: World) -> None:
    asked = request_(
        fields=[{"name": "ticket", "type": "string", "pattern": "^(a+)+$", "required": True}]
    )
    world.source().register(asked)
    world.call("alice", "PUT", f"/interruptions/{asked.id}/responsible", json={})
    started = time.monotonic()
    # Python's re needs minutes for this; the hang guard is far below that
    answer = world.call(
        "alice",
        "POST",
        f"/interruptions/{asked.id}/submit",
        json={"result": "proceed", "fields": {"ticket": "a" * 32 + "!"}},
        timeout=5,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "bad_fields"
    assert time.monotonic() - started < 5
    good = world.call(
        "alice",
        "POST",
        f"/interruptions/{asked.id}/submit",
        json={"result": "proceed", "fields": {"ticket": "aaaa"}},
    )
    assert good.status_code == 200 and good.json()["state"] == "approved", good.text


def test_patterns_beyond_linear_time_matching_are_refused_when_registered(world: World) -> None:
    asked = body_(fields=[{"name": "t", "type": "string", "pattern": r"^(a)\1$"}])
    answer = world.call("runner", "POST", "/interruptions", json=asked)
    assert answer.status_code == 422, answer.text
    assert "RE2 syntax" in answer.json()["error"]["message"]


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """uvicorn serving ``app`` in a thread on a free loopback port."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def test_a_cross_origin_login_is_refused(world: World) -> None:
    """An attacker's page posting its own approver token to /login would sign the victim in as
    the attacker (whose decisions the victim then makes unknowingly)."""
    from runner.server.web import create_full_app

    attacker = world.tokens["alice"]
    with serve(create_full_app(world.store)) as url:
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Referer": "http://evil.example/page"},
        ):
            answer = requests.post(
                f"{url}/login",
                data={"token": attacker},
                headers=headers,
                allow_redirects=False,
                timeout=WAIT,
            )
            assert answer.status_code == 403, (headers, answer.status_code)
            assert "set-cookie" not in answer.headers, headers
            assert answer.json()["error"]["code"] == "cross_origin"
        own = requests.post(
            f"{url}/login",
            data={"token": attacker},
            headers={"Origin": url},
            allow_redirects=False,
            timeout=WAIT,
        )
        assert own.status_code == 303 and "runner_session" in own.headers["set-cookie"]


def test_retry_after_never_keeps_a_run_past_its_step_deadline(
    stub: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server answering every long-poll 503 with ``Retry-After: 300``: the run times out on
    time (a 3 s step here), not after the retries' sleeps (on a fake clock: every pause the run
    takes is counted, none waited out)."""
    registered: dict[str, Any] = {}

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        path = seen.path.split("?")[0]
        json_headers = {"Content-Type": "application/json"}
        if seen.method == "POST" and path == "/api/v1/interruptions":
            registered.update(json.loads(seen.body))
            view = {"id": registered["id"], "request": registered, "version": 1, "submissions": []}
            return 201, json_headers, json.dumps(view).encode()
        if seen.method == "PUT" or "/locks/" in path:
            return 200, json_headers, b'{"taken": true, "run_id": "slow-1", "released": true}'
        return 503, {"Retry-After": "300"}, b"busy"

    server = stub(answer)
    ws = workspace(tmp_path, server.url, timeout=0.05)
    clock = fake_time(monkeypatch, FakeClock(real_now()))
    argv = ("run", "deploy.yml", "--env", "production", "--run-id", "slow-1", "--state-dir", "S")
    done = cli_in(monkeypatch, ws, host_env(RUNNER_SERVER_TOKEN="rnr_tok_x"), *argv)
    out = done.stdout + done.stderr
    assert done.returncode == 4, out
    assert clock.elapsed < 3 + 1, clock.sleeps  # the step's 3 s, no 300 s retry pause
    assert all(pause < 300 for pause in clock.sleeps), clock.sleeps
    assert "deployed" not in out


def test_a_run_resumed_by_a_newer_runner_is_still_its_own_request(world: World) -> None:
    """A review found: a runner that lists the steps after a gate by another rule (this stop's
    leaves out steps `--skip` or the environment leave out) made the run's own interruption,
    registered by the runner before the upgrade, "another request" (409), and failed the gate.
    `following_steps` follows from the fields compared; `skipped` and the rest are compared."""
    registered = request_(following_steps=("Back up", "Deploy"))
    world.source().register(registered)
    resumed = request_(following_steps=("Deploy",))
    answer = world.call("runner", "POST", "/interruptions", json=resumed.to_dict())
    assert answer.status_code in (200, 201), answer.text
    skipping = request_(following_steps=("Deploy",), skipped=("backup",))
    answer = world.call("runner", "POST", "/interruptions", json=skipping.to_dict())
    assert answer.status_code == 409, answer.text
    assert "skipped" in answer.json()["error"]["message"]
