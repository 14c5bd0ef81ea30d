"""Issue #19, "Newcomer and CI correctness": the approval rules users hit, and the smaller ones.

Each test is one observed break: the seed workflow in CI upgraded the database and only then
found that nobody could approve; ``prevent-self-approval`` with a starter the people file does
not know refused every proceed and waited silently to the timeout; the prompt collected a
decision from someone who may not give one; and a list of smaller ones (hints that do not work,
exit codes that say the wrong thing, a plan that hides what the run will do, a sign-in that
forgets where the user was going...). Real git, ssh-keygen, bash steps and loopback servers; the
``runner`` commands run in this process (``cli_in``: exit code, stdout and stderr as a process
gives them) but for ``runner server``, whose process says where it listens.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import socket
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers.cli import cli_in
from helpers.paths import ROOT
from helpers.run_helpers import RUNNER, Workspace
from helpers.server_helpers import people_directory

from runner.approvals.identity import parse_directory
from runner.approvals.prompt import PromptSource
from runner.approvals.request import FieldSpec, Interruption
from runner.errors import ApprovalError
from runner.options import RunOptions

PEOPLE = """\
people:
  - username: alice
    ci-logins: [alice-gh]
  - username: bob
    ci-logins: [bobc]
  - username: carol
teams:
  trading-desk: [alice, bob]
"""

#: the seed workflow's shape: a database upgrade, then the traders' check by prompt only
SEED_LIKE = """\
name: Seed-like
approvals:
  trust:
    people: people.yml
  prompt: {}
steps:
  - id: upgrade-database
    name: Upgrade the database
    run: touch "$RUNNER_WORKSPACE/upgraded"
  - id: notify-traders
    name: Ensure traders are aware of the deployment
    manual:
      teams: [trading-desk]
      timeout-minutes: 1440
  - id: deploy
    name: Deploy
    run: echo deploy
"""


def seed_like(workspace: Workspace, text: str = SEED_LIKE) -> Path:
    workspace.write(PEOPLE, "people.yml")
    return workspace.write(text)


# -- the preflight: nothing runs when a manual step could not be decided here ------------------


def test_ci_run_of_a_prompt_only_step_fails_before_the_database_is_upgraded(
    workspace: Workspace,
) -> None:
    """In CI (CI=true, no terminal) the seed workflow upgraded the production database, then
    failed at the traders' check with `no approval source can ask`."""
    path = seed_like(workspace)
    done = workspace.run(path, env={"CI": "true", "GITHUB_ACTIONS": "true"})
    assert done.code == 1, done.out + done.err
    assert not (workspace.root / "upgraded").exists()  # nothing ran
    assert not (workspace.state_dir / "runs" / "run-1").exists()  # nothing recorded
    assert (
        "  step 'Ensure traders are aware of the deployment': no approval source can ask here "
        "(prompt: cannot ask in CI ($CI is set))\n"
        "    fix: configure `approvals.file` (signed approval files) or `approvals.server` for "
        "CI, or run on a terminal as one of the approvers\n"
    ) in done.err
    # one ::error annotation per step, pointing at the step
    errors = [line for line in done.out.splitlines() if line.startswith("::error")]
    assert len(errors) == 1, done.out
    assert errors[0].startswith(
        f"::error title=Ensure traders are aware of the deployment,file={path},line=10,col=5::"
    )


def test_a_manual_step_that_only_runs_after_an_abort_is_checked_too(workspace: Workspace) -> None:
    """`if: failure()` steps run only on the other branch: they may run, so they are checked."""
    path = seed_like(
        workspace,
        SEED_LIKE.replace("  prompt: {}\n", "  prompt: {}\n  file: {path: approvals}\n").replace(
            "      timeout-minutes: 1440\n",
            "      timeout-minutes: 1440\n      sources: [file]\n",
        )
        + "  - id: rollback-check\n"
        "    name: Confirm the rollback\n"
        "    if: failure()\n"
        "    manual:\n"
        "      sources: [prompt]\n",
    )
    done = workspace.run(path, "--insecure-local-trust", env={"CI": "true"})
    assert done.code == 1, done.out + done.err
    assert "step 'Confirm the rollback': no approval source can ask here" in done.err
    assert not (workspace.root / "upgraded").exists()


def test_an_unquoted_substitution_refuses_the_run_instead_of_running_without_it(
    workspace: Workspace,
) -> None:
    """`run: ./migrate --password #{DbPassword}` ran `./migrate --password`: YAML took
    ` #{DbPassword}` for a comment. Octopus users write `#{}` unquoted; the run is refused
    before any step, at the comment, in the workflow and in an action."""
    workspace.write("touch migrated\n", "migrate")
    path = workspace.write(
        "name: newcomer\n"
        "variables:\n"
        "  DbPassword: {value: pw, secret: true}\n"
        "steps:\n"
        "  - id: first\n"
        "    name: First\n"
        "    run: touch started\n"
        "  - id: migrate\n"
        "    name: Migrate\n"
        "    run: sh migrate --password #{DbPassword}\n"
    )
    done = workspace.run(path)
    assert done.code == 2, done.out + done.err
    assert f"{path}:10:32: `#{{DbPassword}}` is a YAML comment here, not a substitution" in done.err
    assert not (workspace.root / "started").exists()
    assert not (workspace.root / "migrated").exists()
    assert not (workspace.state_dir / "runs" / "run-1").exists()
    workspace.action(
        "greet",
        "name: greet\nruns:\n  using: composite\n  steps:\n"
        "    - run: echo hello #{Name}\n      shell: bash\n",
    )
    path.write_text(
        path.read_text().replace(" #{DbPassword}", "")
        + ("  - id: greet\n    name: Greet\n    uses: ./actions/greet\n")
    )
    done = workspace.run(path)
    assert done.code == 2, done.out + done.err
    assert "action.yml:5:23: `#{Name}` is a YAML comment here" in done.err
    assert not (workspace.root / "started").exists()


def test_each_step_error_is_annotated_once_in_github(workspace: Workspace) -> None:
    """A step that cannot start reported its error as `::error`, and its failure once more."""
    path = workspace.write(
        "name: One error\nsteps:\n  - id: a\n    name: A\n"
        '    shell: "no-such-shell-here {0}"\n    run: echo hi\n'
    )
    done = workspace.run(path, env={"GITHUB_ACTIONS": "true"})
    assert done.code == 1
    errors = [line for line in done.out.splitlines() if line.startswith("::error")]
    assert errors == [
        f"::error title=A,file={path},line=3,col=5::shell 'no-such-shell-here' is not "
        "installed on this machine"
    ]


UNKNOWN_STARTER = """\
name: Self-approval
approvals:
  trust:
    people: people.yml
    allowed-signers: allowed_signers
  file: {path: approvals}
steps:
  - id: build
    name: Build
    run: touch "$RUNNER_WORKSPACE/built"
  - id: gate
    name: Gate
    manual:
      teams: [trading-desk]
      prevent-self-approval: true
      timeout-minutes: 1440
"""


def test_a_starter_missing_from_the_people_file_is_refused_at_the_start(
    workspace: Workspace,
) -> None:
    """docs/approvals.md said "nobody is excluded"; the code refused every proceed ("self-
    approval cannot be ruled out") and the run waited silently for 24 hours."""
    workspace.write("", "allowed_signers")
    path = seed_like(workspace, UNKNOWN_STARTER)
    done = workspace.run(path, "--insecure-local-trust", env={"RUNNER_ACTOR": "octocat"})
    assert done.code == 1, done.out + done.err
    assert not (workspace.root / "built").exists()
    assert not (workspace.state_dir / "runs" / "run-1").exists()
    assert (
        "  step 'Gate': it prevents self-approval, but the run is started by 'octocat', who is "
        "not in people.yml: self-approval could not be ruled out, so every approval would be "
        "refused\n"
        "    fix: add 'octocat' to the `ci-logins` of that person in people.yml, or set "
        "RUNNER_ACTOR to their username there\n"
    ) in done.err
    # known by a CI login: the run starts (and detaches at the gate)
    known = workspace.run(
        path, "--insecure-local-trust", "--detach-on-wait", env={"RUNNER_ACTOR": "bobc"}
    )
    assert known.code == 75, known.out + known.err


def test_plan_shows_the_unknown_starter_as_an_error(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.write("", "allowed_signers")
    path = seed_like(workspace, UNKNOWN_STARTER)
    done = cli_in(
        monkeypatch,
        workspace.root,
        workspace.environ({"RUNNER_ACTOR": "octocat"}),
        *("plan", str(path), "--env", "production", "--insecure-local-trust"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "            ERROR: it prevents self-approval, but the run is started by 'octocat', "
        "who is not in people.yml"
    ) in done.stdout
    assert "            fix: add 'octocat' to the `ci-logins`" in done.stdout
    assert done.stdout.endswith(
        "Outcome: fails before the first step: manual steps cannot be decided here "
        "(a run would exit 1)\n"
    )


# -- the prompt asks nothing of someone who may not answer -------------------------------------


def gate_request(**changes: Any) -> Interruption:
    values: dict[str, Any] = {
        "id": "run-1--gate",
        "run_id": "run-1",
        "step_id": "gate",
        "step_name": "Gate",
        "title": "Tell the traders",
        "instructions": "",
        "teams": ("trading-desk",),
        "quorum": (),
        "fields": (FieldSpec("ticket", "string", required=True),),
        "created": "2030-01-01T00:00:00Z",
        "deadline": None,
        "environment": "production",
        "workflow": "Deploy",
        "digest": "0" * 64,
        "commit": None,
        "inputs": {},
        "following_steps": (),
        "started_by": "bobc",
        "prevent_self_approval": True,
        "sources": ("prompt",),
    }
    values.update(changes)
    return Interruption(**values)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ("carol", "you (carol) are not in team trading-desk"),
        ("mallory", "you (mallory) are not in the people file"),
        ("bob", "you (bob) started this run, and it prevents self-approval"),
    ],
)
def test_the_prompt_says_up_front_who_may_answer_and_reads_nothing(user: str, why: str) -> None:
    """The prompt let a non-approver type a decision, notes and fields, then refused them and
    hung to the timeout."""
    typed = FakeTerminal("p\nnotes\nCHG-1\n")
    out = io.StringIO()
    source = PromptSource(
        environ={},
        stdin=typed,
        stdout=out,
        user=user,
        directory=parse_directory(PEOPLE.encode(), "people.yml"),
    )
    with pytest.raises(ApprovalError) as caught:
        source.register(gate_request())
    assert caught.value.message == (
        f"{why}, so the prompt will not ask; trading-desk (alice, bob) may answer"
    )
    time.sleep(0.05)  # a question thread, had one started, would have read by now
    assert typed.tell() == 0
    assert out.getvalue() == ""


# -- runner approval new --out elsewhere -------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_git_hint_of_approval_new_works_from_where_it_was_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    for repo in (here, elsewhere):
        repo.mkdir()
        git(repo, "init", "-q")
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    request = gate_request(prevent_self_approval=False, fields=())
    (here / "request.json").write_text(json.dumps(request.to_dict()))
    done = cli_in(
        monkeypatch,
        here,
        os.environ,
        *("approval", "new", "--request", "request.json", "--decision", "proceed"),
        *("--key", str(key), "--principal", "alice@example.com", "--out", "../elsewhere/approvals"),
    )
    assert done.returncode == 0, done.stderr
    hint = done.stdout.splitlines()[-1]
    assert hint.startswith("now: ")
    add = hint.removeprefix("now: ").split(" && ")[0]
    # as the user would paste it, where it was printed
    pasted = subprocess.run(shlex.split(add), cwd=here, capture_output=True, text=True)
    assert pasted.returncode == 0, pasted.stderr
    staged = git(elsewhere, "diff", "--cached", "--name-only").split()
    assert staged == [
        "approvals/run-1/gate.alice@example.com.json",
        "approvals/run-1/gate.alice@example.com.json.sig",
    ]


# -- the approval server: hints, fields, who decided, exit codes -------------------------------


def serve(app: Any) -> Iterator[str]:
    """uvicorn serving ``app`` in a thread on a loopback socket bound before it starts."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture
def approval_server(tmp_path: Path) -> Iterator[tuple[str, Any, dict[str, str]]]:
    pytest.importorskip("fastapi")
    from runner.server.storage import Store, make_engine, migrate
    from runner.server.web import create_full_app

    engine = make_engine(f"sqlite:///{tmp_path / 'server.db'}")
    migrate(engine)
    store = Store(engine)
    store.import_directory(people_directory())
    tokens = {
        "runner": store.issue_token("runner", label="t"),
        "alice": store.issue_token("approver", "alice", label="t"),
    }
    app = create_full_app(store, secret="s" * 32)
    yield from ((url, store, tokens) for url in serve(app))
    engine.dispose()


def approver_cli(
    monkeypatch: pytest.MonkeyPatch, url: str, token: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """``runner approval ARGS --server URL`` in this process, with ``token``."""
    environ = {**os.environ, "RUNNER_APPROVER_TOKEN": token}
    return cli_in(monkeypatch, Path.cwd(), environ, "approval", *args, "--server", url)


def test_the_server_hint_names_assign_and_the_required_fields(tmp_path: Path) -> None:
    from runner.approvals.server_source import ServerSource
    from runner.model import Approvals
    from runner.model import ServerSource as ServerConfig

    approvals = Approvals(server=ServerConfig(url="https://approvals.example"))
    source = ServerSource(
        environ={},
        approvals=approvals,
        workspace=tmp_path,
        directory=people_directory(),
        options=RunOptions(),
        client=object(),
    )
    [hint] = source.instructions(gate_request())
    assert hint == (
        "https://approvals.example/interruptions/run-1--gate  or  runner approval assign "
        "run-1--gate --server https://approvals.example && runner approval proceed run-1--gate "
        "--server https://approvals.example --field ticket=... --notes ..."
    )


def test_approval_show_lists_the_fields_and_list_all_names_who_decided(
    approval_server: tuple[str, Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, store, tokens = approval_server
    request = gate_request(
        prevent_self_approval=False,
        fields=(FieldSpec("ticket", "string", "Change ticket", True, r"^CHG-[0-9]+$"),),
    ).to_dict()
    runner = store.authenticate(tokens["runner"])
    store.create_interruption(request, runner)
    shown = approver_cli(monkeypatch, url, tokens["alice"], "show", "run-1--gate")
    assert shown.returncode == 0, shown.stderr
    assert "  field ticket (Change ticket): string, required, matching ^CHG-[0-9]+$\n" in (
        shown.stdout
    )
    assert (
        "  to answer: runner approval assign run-1--gate, then runner approval proceed "
        "run-1--gate --field ticket=... --notes ... (or abort --notes ...)\n"
    ) in shown.stdout
    for args in (("assign", "run-1--gate"), ("proceed", "run-1--gate", "--field", "ticket=CHG-1")):
        done = approver_cli(monkeypatch, url, tokens["alice"], *args)
        assert done.returncode == 0, done.stderr
    listed = approver_cli(monkeypatch, url, tokens["alice"], "list", "--all")
    assert "decided by: alice" in listed.stdout, listed.stdout
    assert "responsible: nobody" not in listed.stdout


def test_a_failed_server_request_has_an_exit_code_of_its_own(
    approval_server: tuple[str, Any, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runner approval ... --server` exited 4, "an approval timed out", when the server said
    no or could not be reached."""
    url, _, tokens = approval_server
    for args in (
        ("show", "no-such-run--gate"),
        ("assign", "no-such-run--gate"),
        ("proceed", "no-such-run--gate"),
        ("abort", "no-such-run--gate", "--notes", "no"),
    ):
        done = approver_cli(monkeypatch, url, tokens["alice"], *args)
        assert done.returncode == 6, (args, done.returncode, done.stderr)
        assert done.stderr.startswith("error: "), done.stderr
    refused = approver_cli(monkeypatch, url, "not-a-token", "list")
    assert refused.returncode == 6, refused.stderr


def test_sign_in_returns_to_the_link_that_was_followed(
    approval_server: tuple[str, Any, dict[str, str]],
) -> None:
    url, store, tokens = approval_server
    store.create_interruption(gate_request().to_dict(), store.authenticate(tokens["runner"]))
    browser = requests.Session()
    first = browser.get(f"{url}/interruptions/run-1--gate", allow_redirects=False, timeout=10)
    assert first.status_code == 303
    login = browser.get(url + first.headers["location"], timeout=10)
    assert 'name="next" value="/interruptions/run-1--gate"' in login.text
    signed = browser.post(
        f"{url}/login",
        data={"token": tokens["alice"], "next": "/interruptions/run-1--gate"},
        allow_redirects=False,
        timeout=10,
    )
    assert (signed.status_code, signed.headers["location"]) == (303, "/interruptions/run-1--gate")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "http:/evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil",
    ],
)
def test_sign_in_refuses_an_open_redirect(
    approval_server: tuple[str, Any, dict[str, str]], target: str
) -> None:
    url, _, tokens = approval_server
    signed = requests.post(
        f"{url}/login",
        data={"token": tokens["alice"], "next": target},
        allow_redirects=False,
        timeout=10,
    )
    assert (signed.status_code, signed.headers["location"]) == (303, "/")


# -- runner server: says where it is; its database out of the repository ----------------------


def test_runner_server_says_where_it_listens_and_keeps_its_database_out_of_the_cwd(
    tmp_path: Path,
) -> None:
    pytest.importorskip("uvicorn")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cwd, data = tmp_path / "clone", tmp_path / "data"
    cwd.mkdir()
    proc = subprocess.Popen(
        [str(RUNNER), "server", "--port", str(port)],
        cwd=cwd,
        env={**os.environ, "XDG_DATA_HOME": str(data), "RUNNER_SERVER_DATABASE": ""},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    stream = proc.stderr
    assert stream is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(stream.readline() for _ in range(3)), daemon=True
    )
    try:
        reader.start()
        reader.join(60)  # a hang guard: a server that says nothing fails here, not for ever
    finally:
        proc.terminate()
        proc.wait(30)
    database = data / "runner" / "runner-server.db"
    assert lines == [
        f"runner server: listening on http://127.0.0.1:{port}/\n",
        f"  database: sqlite:///{database}\n",
        "  stop with Ctrl-C (or SIGTERM)\n",
    ]
    assert database.exists()
    assert list(cwd.iterdir()) == []


def test_runner_server_hides_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sqlalchemy")
    database = "postgresql://deploy:hunter2@127.0.0.1:1/x"
    done = cli_in(
        monkeypatch, Path.cwd(), os.environ, "server", "--database", database, "users", "list"
    )
    assert done.returncode == 2, done.stderr
    assert "hunter2" not in done.stderr
    assert done.stderr.startswith("error: cannot open the database postgresql://deploy:***@")


@pytest.mark.parametrize(
    ("database", "said", "hint"),
    [
        # a newcomer's file path: told the URL that means it
        ("x.sqlite", "--database is not a database URL", "--database sqlite:///{cwd}/x.sqlite"),
        # a mistyped URL may hold a password: neither echoed nor guessed at
        ("deploy:hunter2@db/x", "--database is not a database URL", "postgresql://USER@HOST"),
        # a database no installed driver speaks
        ("nosuchdb://h/x", "cannot open the database nosuchdb://h/x: ", "sqlite:///FILE"),
    ],
)
def test_a_database_that_is_no_url_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: str, said: str, hint: str
) -> None:
    pytest.importorskip("sqlalchemy")
    done = cli_in(monkeypatch, tmp_path, os.environ, "server", "--database", database)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {said}"), done.stderr
    assert hint.format(cwd=tmp_path) in done.stderr
    assert "internal error" not in done.stderr and "hunter2" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_server_database_is_ignored_by_git() -> None:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "runner-server.db"], check=False
    )
    assert done.returncode == 0


# -- plan shows what the run will do -----------------------------------------------------------


PLANNED = """\
name: Planned
approvals:
  trust:
    people: people.yml
  prompt: {}
variables:
  Host:
    - value: db.internal
  ConnectionString:
    - value: "Server=#{Host};Database=#{Octopus.Environment.Name}"
steps:
  - id: gate
    name: Gate
    manual:
      teams: [trading-desk]
      instructions: "Connect to #{ConnectionString}, then proceed."
      fields:
        - name: ticket
          type: string
          pattern: "^CHG-[0-9]+$"
          required: true
        - name: risk
          type: choice
          options: [low, high]
"""


def test_plan_shows_instructions_fields_and_expanded_variables(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = seed_like(workspace, PLANNED)
    # alice at the terminal (the OS account, which $LOGNAME cannot claim)
    monkeypatch.setattr("runner.engine.preflight.local_user", lambda: "alice")
    done = cli_in(
        monkeypatch,
        workspace.root,
        workspace.environ({"RUNNER_ACTOR": "bobc"}),
        *("plan", str(path), "--env", "production"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "  ConnectionString = Server=db.internal;Database=production  (unscoped)\n" in done.stdout
    )
    assert (
        "            instructions:\n"
        "              | Connect to Server=db.internal;Database=production, then proceed.\n"
        "            field ticket: string, required, matching ^CHG-[0-9]+$\n"
        "            field risk: choice, optional, one of low/high\n"
    ) in done.stdout


# -- detached and resumed runs -----------------------------------------------------------------


WAITS = """\
name: Waits
approvals:
  trust:
    people: people.yml
    allowed-signers: allowed_signers
  file: {path: approvals}
steps:
  - id: build
    name: Build
    run: sleep 0.3
  - id: gate
    name: Gate
    manual:
      timeout-minutes: 0.01
      on-timeout: proceed
  - id: deploy
    name: Deploy
    run: echo deployed
"""


def test_a_resumed_run_reports_the_whole_run(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resume hint lacked --state-dir; the resumed run reported only its own duration, and
    the GitHub summary dropped the earlier steps' times."""
    workspace.write("", "allowed_signers")
    path = seed_like(workspace, WAITS)
    # resumed "in CI": sealed, as an unsealed record cannot show when the gate began waiting
    env = {"RUNNER_ACTOR": "carol", "RUNNER_RECORD_KEY": "k" * 32}
    detached = workspace.run(path, "--insecure-local-trust", "--detach-on-wait", env=env)
    assert detached.code == 75, detached.out + detached.err
    hint = f"runner resume run-1 --state-dir {workspace.state_dir}"
    assert f"resume it with `{hint}`" in detached.out
    summary = workspace.root / "summary.md"
    deadline = json.loads((workspace.state_dir / "runs/run-1/steps/gate/request.json").read_text())[
        "deadline"
    ]
    wait = datetime.fromisoformat(deadline.replace("Z", "+00:00")) - datetime.now(UTC)
    time.sleep(max(0.0, wait.total_seconds()) + 0.05)  # under a second: the step's timeout
    command, *argv = shlex.split(hint)  # the hint as printed, run in this process
    assert command == "runner"
    resumed = cli_in(
        monkeypatch,
        workspace.root,
        workspace.environ({**env, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}),
        *argv,
        "--insecure-local-trust",
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    took = re.search(r"Run run-1 succeeded in ([0-9.]+)s", resumed.stdout)
    assert took is not None, resumed.stdout
    assert float(took.group(1)) >= 0.3  # the build step ran in the first process
    assert "Steps of run run-1:" in resumed.stdout
    assert re.search(r"  ✓ Build  success  0\.[3-9]s", resumed.stdout), resumed.stdout
    build_row = next(line for line in summary.read_text().splitlines() if "| Build |" in line)
    assert re.search(r"\| 0\.[3-9]s \|", build_row), build_row


# -- the project's own files ------------------------------------------------------------------


def test_schemathesis_is_in_the_dev_extra() -> None:
    """tests/fuzz/test_fuzz_api_schema.py uses it; without it the test skipped for ever."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = project["optional-dependencies"]["dev"]
    assert any(re.match(r"schemathesis\b", requirement) for requirement in dev)


def test_the_readme_tour_activates_the_venv_before_using_runner() -> None:
    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("## A tour") :]
    first_runner = tour.index("runner validate")
    assert ". .venv/bin/activate" in tour[:first_runner]


def test_a_resume_judges_self_approval_for_the_recorded_starter(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by an attack pass on this stop's resume check: it judged the person resuming
    (`root`, in no people file) as the starter and refused every resume of a run `bobc`
    started, though the gate judges the recorded starter."""
    workspace.write("", "allowed_signers")
    path = seed_like(workspace, UNKNOWN_STARTER)
    started = workspace.run(
        path, "--insecure-local-trust", "--detach-on-wait", env={"RUNNER_ACTOR": "bobc"}
    )
    assert started.code == 75, started.out + started.err
    resumed = cli_in(
        monkeypatch,
        workspace.root,
        workspace.environ({"RUNNER_ACTOR": "octocat"}),
        *("resume", "run-1", "--state-dir", str(workspace.state_dir)),
        *("--insecure-local-trust", "--detach-on-wait"),
    )
    said = resumed.stdout + resumed.stderr
    assert resumed.returncode == 75, said
    assert "prevents self-approval, but the run is started by" not in said


SKIPPABLE = """\
name: Skippable
environments: [staging, production]
approvals:
  trust:
    people: people.yml
    allowed-signers: allowed_signers
  file: {path: approvals}
steps:
  - id: gate
    name: Gate
    manual: {}
  - id: backup
    name: Back up the database
    run: echo backed up
  - id: smoke
    name: Smoke test staging
    environments: [staging]
    run: echo smoke
  - id: deploy
    name: Deploy
    run: echo deployed
"""


def test_the_request_lists_only_the_steps_this_run_may_run(workspace: Workspace) -> None:
    """Found by an attack pass: a run started with `--skip backup` asked approvers to approve
    "Then: Back up the database, Deploy"; steps of another environment were listed too."""
    workspace.write("", "allowed_signers")
    path = seed_like(workspace, SKIPPABLE)
    done = workspace.run(
        path,
        "--env",
        "production",
        "--skip",
        "backup",
        "--insecure-local-trust",
        "--detach-on-wait",
        env={"RUNNER_ACTOR": "carol"},
    )
    assert done.code == 75, done.out + done.err
    request = json.loads((workspace.state_dir / "runs/run-1/steps/gate/request.json").read_text())
    assert request["following_steps"] == ["Deploy"]
    assert "Then: Deploy\n" in done.out
