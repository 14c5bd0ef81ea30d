"""The approval server's test fixtures (re-exported by ``tests/server/conftest.py``): a real
store on SQLite and on PostgreSQL, and a real uvicorn serving the API on a free loopback port (in
a thread), with people imported and tokens issued. Nothing of the server is faked.

PostgreSQL comes from ``RUNNER_TEST_POSTGRES_URL`` (``.ci/postgres.sh`` starts one); each test
module gets a fresh database of its own, dropped afterwards, and each test starts from empty
tables. Without the variable, or when the server cannot be reached, the PostgreSQL cases skip.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
import uvicorn
from sqlalchemy import text

from helpers.server_e2e import make_workspace
from helpers.stub import Reply, Seen, Stub, stub_server
from runner.approvals.identity import Directory, parse_directory
from runner.server.app import create_app
from runner.server.storage import Store, make_engine, migrate

PG_ENV = "RUNNER_TEST_POSTGRES_URL"

# alice and bob are the trading desk (as in approvals/people.yml); bob and carol are the DBAs;
# dave is in the file but in no team
PEOPLE_YML = """\
people:
  - id: u-alice
    username: alice
    display-name: Alice Martin
    email: alice@example.com
    ssh-principals: [alice@example.com]
    ci-logins: [alice-gh]
  - id: u-bob
    username: bob
    display-name: Bob Chen
    email: bob@example.com
    ci-logins: [bobc]
  - id: u-carol
    username: carol
    display-name: Carol Diaz
    email: carol@example.com
  - id: u-dave
    username: dave
    display-name: Dave Outsider
    email: dave@example.com
teams:
  trading-desk: [alice, bob]
  dba: [bob, carol]
"""

APPROVERS = ("alice", "bob", "carol", "dave")
TABLES = (
    "people",
    "team_members",
    "tokens",
    "web_sessions",
    "interruptions",
    "submissions",
    "runs",
    "locks",
    "audit",
)


def people_directory() -> Directory:
    return parse_directory(PEOPLE_YML.encode(), "people.yml")


# -- PostgreSQL --------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def people() -> Directory:
    """The people and teams of PEOPLE_YML, as the runner reads them."""
    return people_directory()


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL to create test databases in; skip when there is none."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need ${PG_ENV} (start one with .ci/postgres.sh)")
    try:
        psycopg.connect(url, connect_timeout=3, autocommit=True).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL at ${PG_ENV} is unreachable: {str(exc).strip()}")
    return url


@contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty database with a random name; dropped on the way out."""
    name = f"runner_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """An empty PostgreSQL database for one test (no schema in it)."""
    with fresh_postgres(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_module_url(postgres_admin_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database for one test module."""
    with fresh_postgres(postgres_admin_url) as url:
        engine = make_engine(url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        yield url


# -- the store ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for the module: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'server.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        return url
    return str(request.getfixturevalue("postgres_module_url"))


@pytest.fixture(scope="module")
def module_store(database_url: str) -> Iterator[Store]:
    engine = make_engine(database_url)
    try:
        yield Store(engine)
    finally:
        engine.dispose()


def wipe(store: Store) -> None:
    """Every table empty again, numbering from 1 again."""
    with store.tx() as c:
        if store.postgres:
            c.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(TABLES):
                c.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def store(module_store: Store) -> Store:
    """A Store on each database, emptied, with the people and teams of PEOPLE_YML imported."""
    wipe(module_store)
    module_store.import_directory(people_directory())
    return module_store


@pytest.fixture
def make_request() -> Callable[..., dict[str, Any]]:
    """An interruption as the runner sends it (``Interruption.to_dict()``), with overrides."""

    def build(run_id: str = "r1", step_id: str = "gate", **overrides: Any) -> dict[str, Any]:
        request: dict[str, Any] = {
            "id": f"{run_id}--{step_id}",
            "run_id": run_id,
            "step_id": step_id,
            "step_name": "Gate Check",
            "title": "Gate Check",
            "instructions": "Tell the desk, then proceed.",
            "teams": ["trading-desk"],
            "quorum": [],
            "fields": [],
            "created": "2030-01-01T12:00:00Z",
            "deadline": None,
            "environment": "production",
            "workflow": "Deploy the web shop",
            "digest": "d" * 64,
            "commit": None,
            "inputs": {"version": "1.4.2"},
            "following_steps": ["Deploy"],
            "started_by": "ci-bot",
            "prevent_self_approval": False,
            "sources": ["server"],
            "run_started": "2030-01-01T12:00:00Z",
        }
        request.update(overrides)
        return request

    return build


# -- a real server on loopback ----------------------------------------------------------------


@dataclass
class Served:
    """The API of a running server, and tokens for the runner, an admin and each approver."""

    url: str
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)

    def parked(self, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
        """An event set once the server holds a long-poll (it read the version and waits for a
        change): a test writes then, instead of sleeping a while and hoping the poll waits."""
        changes = APPS[self.url].state.changes
        held = threading.Event()
        saw = changes.saw

        def noting(interruption_id: str, version: int) -> None:
            saw(interruption_id, version)
            held.set()

        monkeypatch.setattr(changes, "saw", noting)
        return held

    def call(
        self,
        who: str | None,
        method: str,
        path: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        chosen = token if token is not None else (self.tokens[who] if who else None)
        if chosen is not None:
            headers["Authorization"] = f"Bearer {chosen}"
        return requests.request(
            method, self.url + "/api/v1" + path, headers=headers, timeout=timeout, **kwargs
        )

    def create(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = self.call("runner", "POST", "/interruptions", json=request)
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def assign(self, who: str, interruption_id: str, reassign: bool = False) -> requests.Response:
        return self.call(
            who, "PUT", f"/interruptions/{interruption_id}/responsible", json={"reassign": reassign}
        )

    def submit(
        self,
        who: str,
        interruption_id: str,
        result: str = "proceed",
        notes: str = "",
        fields: dict[str, str] | None = None,
    ) -> requests.Response:
        return self.call(
            who,
            "POST",
            f"/interruptions/{interruption_id}/submit",
            json={"result": result, "notes": notes, "fields": fields or {}},
        )


def error_code(answer: requests.Response) -> str:
    body = answer.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return str(body["error"]["code"])


@pytest.fixture
def expect_error() -> Callable[[requests.Response, int, str], None]:
    """Assert an answer is the stable error shape with this status and code."""

    def check(answer: requests.Response, status: int, code: str) -> None:
        assert answer.status_code == status, answer.text
        assert error_code(answer) == code, answer.text

    return check


@contextmanager
def workspace_store(root: Path) -> Iterator[Store]:
    """A workspace at ``root`` (:func:`make_workspace`: the project's people file) and, beside
    it, a server database on SQLite with those people imported; disposed on the way out."""
    make_workspace(root)
    engine = make_engine(f"sqlite:///{root.parent / 'server.db'}")
    try:
        migrate(engine)
        store = Store(engine)
        people = (root / "approvals" / "people.yml").read_bytes()
        store.import_directory(parse_directory(people, "people.yml"))
        yield store
    finally:
        engine.dispose()


#: the app behind each URL :func:`serving` serves, for a test to see what the server holds
APPS: dict[str, Any] = {}


def decide_while_running(
    run: subprocess.Popen[str],
    url: str,
    token: str,
    interruption_id: str,
    decision: dict[str, Any],
    *,
    wait: float = 60.0,
) -> tuple[str, str, str]:
    """Wait until the server holds ``interruption_id`` (``run``, a ``runner run`` started with
    ``stdout`` and ``stderr`` piped, still going), take it with the approver ``token`` and
    submit ``decision``, then let the run end: the interruption as the approver saw it (JSON
    text), the run's output and its errors. The run is killed if anything fails."""
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{url}/api/v1/interruptions/{interruption_id}"
    try:
        deadline = time.monotonic() + wait
        while not (seen := requests.get(base, headers=headers)).ok:
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, f"{interruption_id} did not appear"
            time.sleep(0.1)
        assert requests.put(base + "/responsible", json={}, headers=headers).ok
        answer = requests.post(base + "/submit", json=decision, headers=headers)
        assert answer.ok, answer.text
        out, err = run.communicate(timeout=wait)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    return seen.text, out, err


@contextmanager
def serving(store: Store, **app_options: Any) -> Iterator[str]:
    """uvicorn serving the API of ``store`` in a thread, on a socket bound before it starts
    (``app_options`` go to :func:`create_app`)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    app = create_app(store, **app_options)
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
        limit_concurrency=1000,
        backlog=256,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}"
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    APPS[url] = app
    try:
        yield url
    finally:
        APPS.pop(url, None)
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="module")
def module_url(module_store: Store) -> Iterator[str]:
    with serving(module_store) as url:
        yield url


@pytest.fixture
def server(store: Store, module_url: str) -> Served:
    """A real server on loopback, on each database, with tokens for runner, admin and people."""
    served = Served(module_url, store)
    served.tokens["runner"] = store.issue_token("runner", label="test runner")
    served.tokens["admin"] = store.issue_token("admin", label="test admin")
    for name in APPROVERS:
        served.tokens[name] = store.issue_token("approver", name, label=f"test {name}")
    return served


# -- a broken server, for fault injection ------------------------------------------------------

__all__ = ["Reply", "Seen", "Stub"]


@pytest.fixture
def stub() -> Iterator[Callable[[Callable[[Seen], Reply]], Stub]]:
    with contextlib.ExitStack() as stack:

        def start(answer: Callable[[Seen], Reply]) -> Stub:
            return stack.enter_context(stub_server(answer))

        yield start
