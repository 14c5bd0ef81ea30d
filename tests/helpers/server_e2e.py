"""`runner server` in a subprocess on a SQLite file, and the workspace of a `runner run` that
waits on it with the ``server`` source: the world of ``tests/server/test_server_e2e.py``, also
used by the guided-failure, cancel and record-tampering tests.

Fixtures (``tests/server/conftest.py`` re-exports them): ``world``, a server of the test's own
(for tests that kill or stop it); ``module_world``, one server per test module; and
``shared_world``, the module's server with a workspace and run id of the test's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers import environ
from helpers.cli import cli, cli_in
from helpers.clock import FakeClock, fake_time
from helpers.net import free_port, listening
from helpers.paths import ROOT

RUNNER = str(Path(sys.executable).with_name("runner"))
ID = "r1--gate"
WAIT = 30.0  # seconds: the bound on every wait below

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


def host_env(**extra: str) -> dict[str, str]:
    """The runner's environment: no CI variables, started by ``ci-bot``."""
    return environ.host_env(RUNNER_ACTOR="ci-bot", **extra)


@dataclass
class ServerProcess:
    """`runner server` on a SQLite file and a fixed port; killed and started again at will."""

    database: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    #: further options of `runner server`
    options: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            since = log.tell()
            self.process = subprocess.Popen(
                [
                    RUNNER,
                    "server",
                    "--database",
                    self.database,
                    "--port",
                    str(self.port),
                    *self.options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=host_env(),
            )
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if (
                    listening(self.log, self.url, since)
                    and requests.get(self.url + "/api/v1/health", timeout=1).status_code == 200
                ):
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

    def resume(self, state: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``runner resume`` with the record fetched from the server into folder ``state``."""
        argv = [RUNNER, "resume", self.run_id, "--state-dir", state, "--server", self.server.url]
        return subprocess.run(
            [*argv, *args],
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


@contextlib.contextmanager
def started(tmp_path: Path) -> Iterator[World]:
    """:func:`make_world` with its server running; stopped on the way out."""
    made = make_world(tmp_path)
    made.server.start()
    try:
        yield made
    finally:
        made.server.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A server of the test's own: for tests that kill or stop it."""
    with started(tmp_path) as made:
        yield made


@pytest.fixture(scope="module")
def module_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One server for the module's tests that leave it running (its start is a second of CPU
    and of waiting)."""
    with started(tmp_path_factory.mktemp("server-e2e")) as made:
        yield made


_RUN_NUMBERS = itertools.count(1)


@pytest.fixture
def shared_world(module_world: World, tmp_path: Path) -> World:
    """The module's server, with a workspace of the test's own and a run id no other test of
    the module uses (so no interruption, record or run of another test is in its way)."""
    root = make_workspace(tmp_path / "ws")
    return dataclasses.replace(module_world, root=root, run_id=f"s{next(_RUN_NUMBERS)}")
