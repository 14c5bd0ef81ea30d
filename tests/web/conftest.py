"""Fixtures for the approvers' web page: a real ``runner server`` subprocess (SQLite in a temporary
folder, people imported, tokens issued) on a free loopback port, real ``runner run`` processes
that wait on it, and a real headless Chromium driven by Playwright.

Chromium is ``$RUNNER_TEST_CHROMIUM`` or ``/usr/bin/chromium``; without it, or without the
``playwright`` package, the browser tests skip with a message saying so (the HTTP-level tests still
run). Playwright's own browser download is never used.

Waits are bounded polls, never sleeps standing in for assertions. The test modules get everything
through fixtures (``server``, ``make_server``, ``start_run``, ``sign_in``, ``wait_until``) and
methods of what these return, and import this module only for type annotations: ``conftest`` is
not a unique module name when several test folders have one.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.net import free_port, listening
from helpers.waiting import wait_for

from runner.approvals.identity import parse_directory
from runner.cli.server import open_store

ROOT = Path(__file__).resolve().parents[2]
RUNNER = str(Path(sys.executable).with_name("runner"))
WAIT_SECONDS = 30.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# the project's approvals/people.yml (alice and bob are the trading desk, bob is a DBA), plus
# carol, who is in no team that the tests' manual steps name
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
    ssh-principals: [bob@example.com]
    ci-logins: [bobc]
  - id: u-carol
    username: carol
    display-name: Carol Diaz
    email: carol@example.com
teams:
  trading-desk: [alice, bob]
  dba: [bob, carol]
"""
APPROVERS = ("alice", "bob", "carol")


def poll_until(
    condition: Callable[[], Any],
    what: str,
    seconds: float = WAIT_SECONDS,
    process: subprocess.Popen[bytes] | None = None,
) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``seconds``, or at once if
    ``process`` exits first."""
    return wait_for(condition, seconds, what, process=process)


def clean_environment() -> dict[str, str]:
    """The environment of the subprocesses, without CI variables or server settings that would
    change who started a run or which server is used."""
    drop = ("RUNNER_", "GITHUB_", "GITLAB_", "CI")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(drop) or k == "RUNNER_TEST_CHROMIUM"
    }
    env.update(
        NO_COLOR="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@e",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@e",
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


def interruption(run_id: str, step_id: str = "gate", **overrides: Any) -> dict[str, Any]:
    """A complete interruption request as a runner sends it."""
    request: dict[str, Any] = {
        "id": f"{run_id}--{step_id}",
        "run_id": run_id,
        "step_id": step_id,
        "step_name": "Approve release",
        "title": "Approve release",
        "instructions": "Tell the **trading desk**.",
        "teams": ["trading-desk"],
        "quorum": [],
        "fields": [],
        "created": "2030-01-01T00:00:00Z",
        "deadline": None,
        "environment": "production",
        "workflow": "Web test",
        "digest": "0" * 64,
        "commit": None,
        "inputs": {"version": "1.4.2"},
        "following_steps": ["Deploy"],
        "started_by": "ci-bot",
        "prevent_self_approval": False,
        "sources": ["server"],
        "run_started": "2030-01-01T00:00:00Z",
    }
    request.update(overrides)
    return request


@dataclass
class Server:
    """A ``runner server`` subprocess and what the tests need to talk to it."""

    url: str
    database: str
    process: subprocess.Popen[bytes]
    log: Path
    runner_token: str
    tokens: dict[str, str]  # username -> approver token
    store: Any = field(repr=False)

    def api(
        self, method: str, path: str, *, who: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Call the JSON API as an approver (``who``) or, by default, as the runner."""
        token = self.tokens[who] if who else self.runner_token
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return httpx.request(
            method, f"{self.url}/api/v1{path}", timeout=15, headers=headers, **kwargs
        )

    def create(self, run_id: str, **overrides: Any) -> dict[str, Any]:
        """Create an interruption as a runner would (see ``interruption`` for the defaults)."""
        answer = self.api("POST", "/interruptions", json=interruption(run_id, **overrides))
        assert answer.status_code == 201, answer.text
        view: dict[str, Any] = answer.json()
        return view

    def get(self, interruption_id: str) -> dict[str, Any]:
        answer = self.api("GET", f"/interruptions/{interruption_id}", who="alice")
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view

    def assign(self, who: str, interruption_id: str) -> httpx.Response:
        return self.api(
            "PUT",
            f"/interruptions/{interruption_id}/responsible",
            who=who,
            json={"reassign": False},
        )

    def submit(
        self,
        who: str,
        interruption_id: str,
        result: str = "proceed",
        notes: str = "",
        fields: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.api(
            "POST",
            f"/interruptions/{interruption_id}/submit",
            who=who,
            json={"result": result, "notes": notes, "fields": fields or {}},
        )

    def session(self, who: str) -> Session:
        """A signed-in web session (cookies kept by an httpx client) for ``who``."""
        client = httpx.Client(base_url=self.url, timeout=15, follow_redirects=False)
        answer = client.post("/login", data={"token": self.tokens[who]})
        assert answer.status_code == 303, answer.text
        return Session(client, who)

    def token_id(self, who: str) -> str:
        return self.tokens[who].split("_")[1]

    def revoke(self, who: str) -> None:
        assert self.store.revoke_token(self.token_id(who))


@dataclass
class Session:
    client: httpx.Client
    who: str

    def page(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def csrf(self, path: str = "/") -> str:
        """The CSRF token the session's forms carry."""
        answer = self.client.get(path)
        assert answer.status_code == 200, answer.text
        return self.csrf_of(answer.text)

    @staticmethod
    def csrf_of(page: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found, "the page has no form with a CSRF token"
        return html.unescape(found.group(1))

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.client.post(path, data=data)

    def close(self) -> None:
        self.client.close()


def _start(
    database: str, webhook: str | None, log: Path, public_url: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``runner server`` listening on a free port, and its URL. A port taken by another
    process between ``free_port`` and the server's bind makes it exit: another port, then."""
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [RUNNER, "server", "--database", database, "--port", str(port)]
        if webhook:
            argv += ["--webhook", webhook]
        if public_url:
            argv += ["--public-url", public_url]
        with log.open("ab") as out:
            since = out.tell()
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=clean_environment()
            )
        deadline = time.monotonic() + WAIT_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            if listening(log, url, since) and _healthy(url):
                return process, url
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
            break
    pytest.fail(f"the server did not start:\n{log.read_text()}")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running_server(
    folder: Path, *, webhook: str | None = None, public_url: str | None = None
) -> Iterator[Server]:
    """Start ``runner server`` on a free port with people imported and tokens issued."""
    folder.mkdir(parents=True, exist_ok=True)
    database = f"sqlite:///{folder / 'server.db'}"
    store = open_store(database)
    people = folder / "people.yml"
    people.write_text(PEOPLE_YML)
    store.import_directory(parse_directory(PEOPLE_YML.encode(), str(people)))
    runner_token = store.issue_token("runner", label="web tests")
    tokens = {name: store.issue_token("approver", name) for name in APPROVERS}
    log = folder / "server.log"
    process, url = _start(database, webhook, log, public_url)
    server = Server(url, database, process, log, runner_token, tokens, store)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        store.engine.dispose()


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(condition, what, seconds=30)``: a bounded poll."""
    return poll_until


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a server of the test's own, e.g. with ``webhook=URL`` or ``public_url=URL``;
    stopped after the test."""
    with ExitStack() as stack:
        count = iter(range(1000))

        def make(*, webhook: str | None = None, public_url: str | None = None) -> Server:
            folder = tmp_path / f"server-{next(count)}"
            return stack.enter_context(
                running_server(folder, webhook=webhook, public_url=public_url)
            )

        yield make


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a test module; tests use run ids of their own."""
    with running_server(tmp_path_factory.mktemp("server")) as served:
        yield served


# -- real runs ---------------------------------------------------------------------------------

WORKFLOW = """\
name: Web test
environments: [production]
approvals:
  trust: {{people: approvals/people.yml}}
  server: {{url: "{url}", token-env: RUNNER_SERVER_TOKEN}}
steps:
  - id: gate
    name: Approve release
    manual:
      instructions: |
        Tell the **trading desk** before release ${{{{ inputs.version }}}}.
      teams: [trading-desk]
      fields:
        - name: ticket
          label: Change ticket
          type: string
          pattern: "^CHG-[0-9]+$"
          required: true
  - id: after
    name: After
    run: echo "approved by $WHO, notes $NOTES, ticket $TICKET"
    env:
      WHO: "#{{Octopus.Action[Approve release].Output.Manual.ResponsibleUser.DisplayName}}"
      NOTES: ${{{{ steps.gate.outputs.notes }}}}
      TICKET: ${{{{ steps.gate.outputs.ticket }}}}
inputs:
  version: {{type: string, default: "1.4.2"}}
"""


@dataclass
class Run:
    """A ``runner run`` subprocess waiting at the manual step ``gate``."""

    process: subprocess.Popen[bytes]
    repo: Path
    run_id: str
    output: Path

    @property
    def interruption_id(self) -> str:
        return f"{self.run_id}--gate"

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def finish(self, seconds: float = WAIT_SECONDS) -> int:
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not finish within {seconds} s:\n{self.text()}")

    def record(self) -> dict[str, Any]:
        import json

        path = self.repo / "S" / "runs" / self.run_id / "record.json"
        found: dict[str, Any] = json.loads(path.read_text())
        return found


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[[Server, str], Run]]:
    """Start a real run in a fresh git repository and wait until it waits on the server."""
    started: list[Run] = []

    def start(server: Server, run_id: str) -> Run:
        repo = tmp_path / f"repo-{run_id}"
        repo.mkdir()
        shutil.copytree(ROOT / "actions", repo / "actions")
        (repo / "approvals").mkdir()
        (repo / "approvals" / "people.yml").write_text(PEOPLE_YML)
        (repo / "deploy.yml").write_text(WORKFLOW.format(url=server.url))
        env = clean_environment()
        if shutil.which("git"):
            for argv in (
                ["git", "init", "-q"],
                ["git", "add", "."],
                ["git", "commit", "-qm", "deploy"],
            ):
                subprocess.run(argv, cwd=repo, env=env, check=True, capture_output=True)
        env["RUNNER_SERVER_TOKEN"] = server.runner_token
        output = tmp_path / f"run-{run_id}.out"
        with output.open("wb") as out:
            process = subprocess.Popen(
                [
                    RUNNER,
                    "run",
                    "deploy.yml",
                    "--env",
                    "production",
                    "--state-dir",
                    "S",
                    "--run-id",
                    run_id,
                ],
                cwd=repo,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        run = Run(process, repo, run_id, output)
        started.append(run)
        poll_until(
            lambda: (
                server.api("GET", f"/interruptions/{run.interruption_id}", who="alice").status_code
                == 200
            ),
            "interruption on the server",
            process=process,
        )
        poll_until(
            lambda: "Waiting for trading-desk" in run.text(), "waiting line", process=process
        )
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.terminate()
            try:
                run.process.wait(10)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()


# -- the browser -------------------------------------------------------------------------------


def chromium_path() -> str:
    return os.environ.get("RUNNER_TEST_CHROMIUM") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's, through Playwright's ``executable_path``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"browser tests need the playwright package ({exc})")
    executable = chromium_path()
    if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        pytest.skip(
            f"browser tests need Chromium: none at {executable} (set "
            "$RUNNER_TEST_CHROMIUM, or apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Approver:
    """One signed-in browser context, and the dialogs (alert, confirm...) any page opened."""

    context: Any
    page: Any
    who: str
    dialogs: list[str] = field(default_factory=list)

    def goto(self, server: Server, path: str) -> Any:
        return self.page.goto(f"{server.url}{path}")


@pytest.fixture
def sign_in(browser: Any) -> Iterator[Callable[[Server, str], Approver]]:
    """Open a fresh browser context and sign in there with the person's approver token."""
    opened: list[Approver] = []

    def open_as(server: Server, who: str) -> Approver:
        context = browser.new_context()
        context.set_default_timeout(15_000)
        page = context.new_page()
        approver = Approver(context, page, who)
        page.on(
            "dialog", lambda dialog: (approver.dialogs.append(dialog.message), dialog.dismiss())
        )
        opened.append(approver)
        page.goto(f"{server.url}/")
        assert page.url.endswith("/login")
        page.fill("input[name=token]", server.tokens[who])
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{server.url}/")
        return approver

    yield open_as
    for approver in opened:
        approver.context.close()
