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

import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from helpers.cli import cli, cli_in
from helpers.clock import FakeClock, fake_time, real_now
from helpers.paths import ROOT
from helpers.waiting import Output

from runner.cli.main import main

if TYPE_CHECKING:
    from helpers.stub import Reply, Seen, Stub

    StubFactory = Callable[[Callable[[Seen], Reply]], Stub]


RUNNER = str(Path(sys.executable).with_name("runner"))
ID = "r1--gate"
#: what the runner prints after the first look at its request, just before its long-poll
WAITING = "⏸ Gate Check: Waiting for trading-desk (0/1)"
WAIT = 30.0  # seconds: the bound on every wait below
HOST_VARIABLES_TO_DROP = (
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "JENKINS_URL",
    "TF_BUILD",
    "RUNNER_ACTOR",
    "GITHUB_TRIGGERING_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "GITHUB_RUN_ID",
    "CI_JOB_ID",
    "RUNNER_STATE_DIR",
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "RUNNER_SERVER_TOKEN",
    "RUNNER_APPROVER_TOKEN",
    "RUNNER_SERVER_URL",
    "RUNNER_SERVER_DATABASE",
    "GITHUB_OUTPUT",
)

WORKFLOW = """\
name: Server end to end
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: {url}
    token-env: RUNNER_SERVER_TOKEN
steps:
  - id: gate
    name: Gate Check
    manual:
      instructions: Tell the trading desk, then proceed.
      teams: [trading-desk]
      timeout-minutes: {timeout}
  - id: after
    name: After
    run: |
      echo "decided-by=#{{Octopus.Action[Gate Check].Output.Manual.ResponsibleUser.DisplayName}}"
      echo "notes=${{{{ steps.gate.outputs.notes }}}}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HOST_VARIABLES_TO_DROP}
    env.update(NO_COLOR="1", RUNNER_ACTOR="ci-bot", **extra)
    return env


@dataclass
class ServerProcess:
    """`runner server` on a SQLite file and a fixed port; killed and started again at will."""

    database: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [RUNNER, "server", "--database", self.database, "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=host_env(),
            )
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class World:
    root: Path
    server: ServerProcess
    runner_token: str
    approver_tokens: dict[str, str]
    #: the run's id: tests sharing a server each have their own
    run_id: str = "r1"

    @property
    def interruption(self) -> str:
        """The id of the run's question at its gate."""
        return f"{self.run_id}--gate"

    def workflow(self, url: str, timeout: float = 2) -> None:
        (self.root / "deploy.yml").write_text(WORKFLOW.format(url=url, timeout=timeout))

    def start_run(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                RUNNER,
                "run",
                "deploy.yml",
                "--env",
                "production",
                "--run-id",
                self.run_id,
                "--state-dir",
                "S",
                *args,
            ],
            cwd=self.root,
            env=host_env(RUNNER_SERVER_TOKEN=self.runner_token),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @contextlib.contextmanager
    def running(self, *args: str) -> Iterator[subprocess.Popen[str]]:
        """A run started in the background, killed at the end if a failed check left it going."""
        run = self.start_run(*args)
        try:
            yield run
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()

    def run_here(
        self, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
    ) -> subprocess.CompletedProcess[str]:
        """:meth:`start_run` to its end in this process, on ``clock``: the step's timeout,
        the source's retries and its backoff pass at once."""
        fake_time(monkeypatch, clock)
        argv = ("run", "deploy.yml", "--env", "production", "--run-id", self.run_id)
        argv += ("--state-dir", "S")
        environ = host_env(RUNNER_SERVER_TOKEN=self.runner_token)
        return cli_in(monkeypatch, self.root, environ, *argv)

    def resume(self, state: str) -> subprocess.CompletedProcess[str]:
        """``runner resume`` with the record fetched from the server into folder ``state``."""
        return subprocess.run(
            [RUNNER, "resume", self.run_id, "--state-dir", state, "--server", self.server.url],
            cwd=self.root,
            env=host_env(RUNNER_SERVER_TOKEN=self.runner_token),
            capture_output=True,
            text=True,
            timeout=WAIT,
        )

    def api(self, method: str, path: str, who: str = "alice", **kwargs: Any) -> Any:
        return requests.request(
            method,
            self.server.url + "/api/v1" + path,
            timeout=10,
            headers={"Authorization": f"Bearer {self.approver_tokens[who]}"},
            **kwargs,
        )

    def wait_for_interruption(self, run: subprocess.Popen[str] | None = None) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            with contextlib.suppress(requests.RequestException):
                answer = self.api("GET", "/interruptions", params={"pending": "true"})
                if answer.status_code == 200 and self.pending(answer.json()) == [self.interruption]:
                    return
            if run is not None and run.poll() is not None:
                out, err = run.communicate()
                raise AssertionError(f"the run ended ({run.returncode}):\n{out}\n{err}")
            if time.monotonic() > deadline:
                raise AssertionError("the interruption did not appear on the server")
            time.sleep(0.05)

    def pending(self, views: list[dict[str, Any]]) -> list[str]:
        """The ids of this run's questions among ``views`` (a shared server holds others')."""
        return [v["id"] for v in views if v["run_id"] == self.run_id]

    def approve(
        self, monkeypatch: pytest.MonkeyPatch, who: str = "alice", notes: str = "desk told"
    ) -> None:
        """`runner approval assign` then `proceed`, as the person at a terminal runs them."""
        monkeypatch.setenv("RUNNER_APPROVER_TOKEN", self.approver_tokens[who])
        asked, url = self.interruption, self.server.url
        assert cli("approval", "assign", asked, "--server", url) == (
            0,
            f"you are responsible for {asked}\n",
        )
        assert cli("approval", "proceed", asked, "--server", url, "--notes", notes) == (
            0,
            f"proceed: {asked} is now approved\n",
        )

    def record(self, state: str = "S") -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.root / state / "runs" / self.run_id / "record.json").read_text()
        )
        return data

    def assert_token_hidden(self, *texts: str) -> None:
        """No token in the run's output, nor in any file of the workspace but the database."""
        tokens = [self.runner_token, *self.approver_tokens.values()]
        for text in texts:
            for token in tokens:
                assert token not in text
        for path in self.root.rglob("*"):
            if path.is_file() and path.suffix not in (".db", ".db-wal", ".db-shm"):
                content = path.read_bytes()
                for token in tokens:
                    assert token.encode() not in content, path


def step(record: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in record["steps"] if s["id"] == step_id)
    return found


def finish(run: subprocess.Popen[str], timeout: float = WAIT) -> tuple[int, str, str]:
    try:
        out, err = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        out, err = run.communicate()
        raise AssertionError(f"the run did not end in {timeout}s:\n{out}\n{err}") from None
    return run.returncode, out, err


def make_workspace(root: Path) -> Path:
    """A workspace with the people file the server imported."""
    (root / ".git").mkdir(parents=True)
    (root / "approvals").mkdir()
    shutil.copy(ROOT / "approvals" / "people.yml", root / "approvals" / "people.yml")
    return root


def make_world(tmp_path: Path) -> World:
    """The workspace, the server's database with people and tokens; the server not started."""
    root = make_workspace(tmp_path / "ws")
    database = f"sqlite:///{tmp_path / 'server.db'}"
    assert cli(
        "server", "--database", database, "users", "import", str(root / "approvals" / "people.yml")
    ) == (0, "imported 2 people\n")

    def issue(*args: str) -> str:
        code, out = cli("server", "--database", database, "tokens", "issue", *args)
        assert code == 0
        return out.strip()

    return World(
        root,
        ServerProcess(database, free_port(), tmp_path / "server.log"),
        issue("--kind", "runner"),
        {name: issue("--kind", "approver", "--user", name) for name in ("alice", "bob")},
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A server of the test's own: for tests that kill or stop it."""
    made = make_world(tmp_path)
    made.server.start()
    try:
        yield made
    finally:
        made.server.stop()


@pytest.fixture(scope="module")
def module_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One server for the module's tests that leave it running (its start is a second of CPU
    and of waiting)."""
    made = make_world(tmp_path_factory.mktemp("server-e2e"))
    made.server.start()
    try:
        yield made
    finally:
        made.server.stop()


_RUN_NUMBERS = itertools.count(1)


@pytest.fixture
def shared_world(module_world: World, tmp_path: Path) -> World:
    """The module's server, with a workspace of the test's own and a run id no other test of
    the module uses (so no interruption, record or run of another test is in its way)."""
    root = make_workspace(tmp_path / "ws")
    return dataclasses.replace(module_world, root=root, run_id=f"s{next(_RUN_NUMBERS)}")


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
        world.server.process.wait(10)
        assert time.monotonic() - started < 5.0
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
