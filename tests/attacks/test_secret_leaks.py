"""Secrets sought everywhere a run leaves text, for a run gated on the approval server.

Four secrets, none of them spelled in the workflow (so that even the generated scripts may be
searched): a secret variable from the environment, a secret input, an Octopus output set with
``-sensitive``, and a value hidden with ``::add-mask::``. The manual step's instructions use
them too. After an approver proceeds through the API, none appears in clear
-- nor base64-, URL- or JSON-encoded -- in the log, any file under the state folder, the job
summary, ``runner runs show`` (text and JSON), or any API answer about the run.

(``tests/engine/test_run_secrets.py`` covers the log, record and summary of script-only runs in
each log format; this adds the manual step, the server, ``runs show`` and every state file.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import pytest
import requests
from helpers.environ import host_env
from helpers.server_helpers import decide_while_running, serving, workspace_store

RUNNER = str(Path(sys.executable).with_name("runner"))
SECRETS = {
    "variable": "var-S3cret-from-env-81f2",
    "input": "input-S3cret-77c1/+=",
    "sensitive": "sensitive-S3cret-4be0",
    "masked": "masked-S3cret-9d13",
}

WORKFLOW = """\
name: Secret leaks
environments: [production]
inputs:
  token:
    secret: true
    required: true
variables:
  ApiKey:
    from-env: TEST_API_KEY
    secret: true
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: {url}
    token-env: RUNNER_SERVER_TOKEN
steps:
  - id: make
    name: Make
    env:
      KEY: "#{{ApiKey}}"
      TOKEN: ${{{{ inputs.token }}}}
    run: |
      echo "::add-mask::$TEST_MASKED"
      echo "masked: $TEST_MASKED"
      set_octopusvariable "Generated" "$TEST_SENSITIVE" -sensitive
      echo "key=$KEY token=$TOKEN sensitive=$TEST_SENSITIVE"
      echo "upper=#{{ApiKey | ToUpper}} part=#{{ApiKey | Substring 12}}"
      echo "b64: $(printf %s "$KEY" | base64)"
      echo "out=$KEY" >> "$GITHUB_OUTPUT"
      echo "## used $KEY and $TOKEN and $TEST_MASKED" >> "$GITHUB_STEP_SUMMARY"
  - id: gate
    name: Gate
    manual:
      title: "Approve the release"
      instructions: "Key #{{ApiKey}}, token ${{{{ inputs.token }}}}, generated \
#{{Octopus.Action[Make].Output.Generated}}, masked $TEST_MASKED, upper #{{ApiKey | ToUpper}}"
      teams: [trading-desk]
      timeout-minutes: 2
      fields:
        - name: ticket
          label: "Ticket"
          type: string
  - id: after
    name: After
    run: |
      echo "after: $GENERATED $APPROVED"
    env:
      GENERATED: "#{{Octopus.Action[Make].Output.Generated}}"
      APPROVED: ${{{{ steps.gate.outputs.approved }}}}
"""


def forms(secret: str) -> list[str]:
    return [
        secret,
        # what a #{} filter makes of it (the workflow prints the variable's)
        secret.upper(),
        secret[:12],
        base64.b64encode(secret.encode()).decode(),
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],
    ]


def leaks(text: str) -> list[str]:
    return [
        f"{name} as {form!r}"
        for name, secret in SECRETS.items()
        for form in forms(secret)
        if form in text
    ]


@dataclass
class Done:
    root: Path
    url: str
    tokens: dict[str, str]
    code: int
    out: str
    err: str

    def api(self, path: str, who: str = "alice") -> requests.Response:
        return requests.get(
            self.url + "/api/v1" + path,
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=10,
        )

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [RUNNER, *args, "--state-dir", "S"],
            cwd=self.root,
            capture_output=True,
            text=True,
            env=host_env(),
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Done]:
    root = tmp_path_factory.mktemp("leaks") / "ws"
    with workspace_store(root) as store, serving(store) as url:
        tokens = {
            "runner": store.issue_token("runner", label="leaks"),
            "alice": store.issue_token("approver", "alice", label="leaks"),
        }
        (root / "deploy.yml").write_text(WORKFLOW.format(url=url))
        env = host_env(
            RUNNER_SERVER_TOKEN=tokens["runner"],
            RUNNER_ACTOR="ci-bot",
            TEST_API_KEY=SECRETS["variable"],
            TEST_SENSITIVE=SECRETS["sensitive"],
            TEST_MASKED=SECRETS["masked"],
            GITHUB_STEP_SUMMARY=str(root / "summary.md"),
            GITHUB_ACTIONS="true",
        )
        argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
        argv += ["--state-dir", "S", "--input", f"token={SECRETS['input']}"]
        run = subprocess.Popen(
            argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        decision = {"result": "proceed", "notes": "go", "fields": {"ticket": "CHG-1"}}
        _, out, err = decide_while_running(run, url, tokens["alice"], "r1--gate", decision)
        yield Done(root, url, tokens, run.returncode, out, err)


def test_the_run_proceeded(done: Done) -> None:
    assert done.code == 0, done.out + done.err
    assert "after: *** true" in done.out


def test_no_secret_in_the_log(done: Done) -> None:
    assert leaks(done.out + done.err) == []
    assert "masked: ***" in done.out
    assert "Key ***, token ***, generated ***" in done.out


def test_no_secret_in_any_file_of_the_state_folder(done: Done) -> None:
    state = done.root / "S"
    files = [p for p in state.rglob("*") if p.is_file()]
    assert state / "runs" / "r1" / "record.json" in files
    found = {
        str(p.relative_to(state)): leaks(p.read_bytes().decode("utf-8", "replace")) for p in files
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_no_secret_in_the_job_summary(done: Done) -> None:
    summary = (done.root / "summary.md").read_text()
    assert "## used *** and *** and ***" in summary
    assert leaks(summary) == []


def test_no_secret_in_runs_show(done: Done) -> None:
    text = done.cli("runs", "show", "r1")
    as_json = done.cli("runs", "show", "r1", "--format", "json")
    listed = done.cli("runs", "list", "--format", "json")
    assert leaks(text + as_json + listed) == []


def test_no_secret_in_api_answers(done: Done) -> None:
    answers = [
        done.api("/runs/r1", "runner"),
        done.api("/runs/r1", "alice"),
        done.api("/interruptions/r1--gate"),
        done.api("/interruptions?run=r1"),
    ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert leaks("\n".join(a.text for a in answers)) == []


# -- the manual step's title and field labels ---------------------------------------------------

TITLED = """\
name: Titled
environments: [production]
variables:
  ApiKey:
    from-env: TEST_API_KEY
    secret: true
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: {url}
    token-env: RUNNER_SERVER_TOKEN
steps:
  - id: gate
    name: Gate
    manual:
      title: "Approve with #{{ApiKey}}"
      teams: [trading-desk]
      fields:
        - name: ticket
          label: "Ticket for #{{ApiKey}}"
          type: string
"""

TITLE_LEAK = (
    "BUG: the manual step's `title` and field `label`s are rendered (`#{}` and `${{ }}`) but "
    "not masked (steps/manual.py build_interruption masks only `instructions`), so a secret "
    "used there is written in clear to the job log, record.json, steps/<id>/request.json, the "
    "approval server (GET /interruptions/<id>, the mirrored run record) and `runner runs show`"
)


@pytest.fixture(scope="module")
def titled(done: Done) -> Done:
    """A run whose manual step names the secret variable in its title and a field label; it
    registers on the server and detaches (nobody needs to decide)."""
    (done.root / "titled.yml").write_text(TITLED.format(url=done.url))
    argv = [RUNNER, "run", "titled.yml", "--env", "production", "--run-id", "t1"]
    run = subprocess.run(
        [*argv, "--state-dir", "S", "--detach-on-wait"],
        cwd=done.root,
        env=host_env(
            RUNNER_SERVER_TOKEN=done.tokens["runner"],
            RUNNER_ACTOR="ci-bot",
            TEST_API_KEY=SECRETS["variable"],
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 75, run.stdout + run.stderr
    return Done(done.root, done.url, done.tokens, run.returncode, run.stdout, run.stderr)


def test_a_secret_in_a_manual_title_is_masked_in_the_log(titled: Done) -> None:
    assert leaks(titled.out + titled.err) == []


def test_a_secret_in_a_manual_title_is_masked_in_the_state_folder(titled: Done) -> None:
    folder = titled.root / "S" / "runs" / "t1"
    texts = [p.read_text() for p in folder.rglob("*") if p.is_file()]
    assert leaks("\n".join(texts)) == []


def test_a_secret_in_a_manual_title_is_masked_on_the_server(titled: Done) -> None:
    answers = [titled.api("/interruptions/t1--gate"), titled.api("/runs/t1", "runner")]
    assert all(a.status_code == 200 for a in answers)
    assert leaks("\n".join(a.text for a in answers)) == []


# -- a failed step's question (guided failure, issue 21) ----------------------------------------

GUIDED = """\
name: Guided leaks
environments: [production]
variables:
  ApiKey:
    from-env: TEST_API_KEY
    secret: true
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: {url}
    token-env: RUNNER_SERVER_TOKEN
guided-failure:
  teams: [trading-desk]
  notify:
    url: {hook}
steps:
  - id: migrate
    name: Migrate
    env:
      KEY: "#{{ApiKey}}"
    run: |
      echo "key=$KEY"
      echo "b64: $(printf %s "$KEY" | base64)"
      echo "::add-mask::$TEST_MASKED"
      echo "masked: $TEST_MASKED"
      echo "{{\\"key\\": \\"$KEY\\"}}"
      exit 7
  - id: after
    name: After
    run: echo "after $KEY"
    env:
      KEY: "#{{ApiKey}}"
"""


class _Hook(BaseHTTPRequestHandler):
    """A chat webhook on loopback: keeps every body it is sent."""

    bodies: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.bodies.append(self.rfile.read(length).decode("utf-8", "replace"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def guided(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Done, list[str]]]:
    """A step that prints secrets (plain, base64, JSON, ``::add-mask::``) and fails: its
    question goes to the server and the chat webhook, alice skips it through the API."""
    root = tmp_path_factory.mktemp("guided-leaks") / "ws"
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        with workspace_store(root) as store, serving(store) as url:
            tokens = {
                "runner": store.issue_token("runner", label="leaks"),
                "alice": store.issue_token("approver", "alice", label="leaks"),
            }
            hook_url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
            (root / "deploy.yml").write_text(GUIDED.format(url=url, hook=hook_url))
            env = host_env(
                RUNNER_SERVER_TOKEN=tokens["runner"],
                RUNNER_ACTOR="ci-bot",
                TEST_API_KEY=SECRETS["variable"],
                TEST_MASKED=SECRETS["masked"],
            )
            argv = [RUNNER, "run", "deploy.yml", "--env", "production", "--run-id", "g1"]
            run = subprocess.Popen(
                [*argv, "--state-dir", "S"],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            decision = {"result": "skip", "notes": "known"}
            _, out, err = decide_while_running(
                run, url, tokens["alice"], "g1--migrate@attempt-1", decision
            )
            deadline = time.monotonic() + 10
            while not _Hook.bodies and time.monotonic() < deadline:
                time.sleep(0.05)  # the announcement is posted in the background
            yield Done(root, url, tokens, run.returncode, out, err), list(_Hook.bodies)
    finally:
        hook.shutdown()


def test_a_failed_steps_question_shows_no_secret_anywhere(
    guided: tuple[Done, list[str]],
) -> None:
    done, posted = guided
    assert done.code == 0, done.out + done.err
    assert "skip by" in done.out and "after ***" in done.out, done.out
    assert any("Step 'Migrate' failed" in body for body in posted), posted
    found = leaks(done.out + done.err) + leaks("\n".join(posted))
    for path in (done.root / "S").rglob("*"):
        if path.is_file():
            found += [f"{path.name}: {leak}" for leak in leaks(path.read_text("utf-8", "replace"))]
    view = done.api("/interruptions/g1--migrate@attempt-1")
    assert view.ok and "key=***" in view.text, view.text  # the tail is there, masked
    found += [f"API: {leak}" for leak in leaks(view.text)]
    found += [f"runs show: {leak}" for leak in leaks(done.cli("runs", "show", "g1"))]
    assert not found, found


SCRIPT_WRITTEN = """\
name: written by the script
variables:
  Dotenv:
    from-env: TEST_DOTENV
    secret: true
  Cut:
    from-env: TEST_CUT
    secret: true
steps:
  - id: a
    name: a
    env:
      DOTENV: "#{Dotenv}"
      CUT: "#{Cut}"
    run: |
      printf '%s\\n' "$DOTENV" >> "$RUNNER_ENV"
      printf '%s\\n' "$DOTENV" >> "$RUNNER_OUTPUT"
      printf 'cut %s\\n' "$CUT"
      printf 'X_%s=a\\0b\\n' "$CUT" >> "$RUNNER_ENV"
  - id: b
    name: b
    if: always()
    run: echo "b sees $DB_PASSWORD and $API_KEY"
  - id: c
    name: c
    run: |
      set_octopusvariable Broken "$(printf 'x\\xffy')"
      made="Gen3rated-S3cret-998"; set_octopusvariable DbPass "$made" -sensitive
      echo "made $made"
"""


def test_secrets_a_script_writes_in_pieces_stay_masked(tmp_path: Path) -> None:
    """Found by an attack pass, each in clear in the log, the record and the journal: a dotenv
    secret written to `$RUNNER_ENV` (each value only a part of a registered line), a secret
    holding a character of several bytes cut off (masked one byte at a time, printed as one
    U+FFFD), the NUL refusal naming a variable made of a secret, and a `-sensitive` variable
    after a line of the variables file that does not parse (the masking of all of them
    stopped there)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(SCRIPT_WRITTEN)
    env = host_env(
        TEST_DOTENV="DB_PASSWORD=Sup3rS3cretPw!\nAPI_KEY=ak_live_123456789",
        TEST_CUT=os.fsdecode(b"hunter2-\xe2\x82-xyz77"),
    )
    done = subprocess.run(
        [str(RUNNER), "run", "w.yml", "--env", "e", "--state-dir", "S", "--run-id", "r1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    folder = tmp_path / "S" / "runs" / "r1"
    texts = [done.stdout, done.stderr, *(p.read_text() for p in folder.iterdir() if p.is_file())]
    for secret in ("Sup3rS3cretPw!", "ak_live_123456789", "xyz77", "Gen3rated-S3cret-998"):
        assert not any(secret in text for text in texts), (secret, done.stdout)
    assert "b sees *** and ***" in done.stdout
    assert "made ***" in done.stdout


TRACED = """\
name: traced
steps:
  - id: a
    name: a
    run: |
      token="tok-$(printf %s "$SEED" | sha256sum | cut -c1-20)"
      spaced="$token with 'quotes' and	tab"
      set -x
      set_octopusvariable ApiToken "$token" -sensitive
      set_octopusvariable Spaced "$spaced" -sensitive
      echo "::add-mask::masked-$token"
      echo "$(echo "::add-mask::nested-$token")"
      set +x
      echo "plain $token, $spaced, masked-$token"
"""


@pytest.mark.parametrize("log", ["text", "json", "github"])
def test_a_value_made_secret_under_set_x_is_masked_in_its_own_trace(
    tmp_path: Path, log: str
) -> None:
    """Found by an attack pass: bash traces a command before it runs it, so the line showing
    `set_octopusvariable NAME VALUE -sensitive` or `echo ::add-mask::VALUE` came before the
    value was known to be secret, and printed it in clear in every log format."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "w.yml").write_text(TRACED)
    extra = {"GITHUB_ACTIONS": "true"} if log == "github" else {}
    argv = [RUNNER, "run", "w.yml", "--env", "e", "--state-dir", "S", "--run-id", "r1"]
    if log == "json":
        argv += ["--format", "json"]
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env=host_env(SEED="traced-seed", **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    token = "tok-" + hashlib.sha256(b"traced-seed").hexdigest()[:20]
    folder = tmp_path / "S" / "runs" / "r1"
    texts = [done.stdout, done.stderr, *(p.read_text() for p in folder.iterdir() if p.is_file())]
    assert not any(token in text for text in texts), done.stdout
    assert "set_octopusvariable ApiToken *** -sensitive" in done.stdout
