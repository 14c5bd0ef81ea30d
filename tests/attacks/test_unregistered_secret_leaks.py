"""Secrets the runner knew of but never registered with the masker (attack pass on secrets).

One run, gated on the approval server, whose first step prints its environment: the server's
runner token and the notify webhook's URL (both read from the environment by the runner, and
handed on to every step), the value of a secret variable scoped to another environment (a
prod job has ``$STAGING_DB_PW`` as well), and a secret input of ``type: number``. None of them
may appear in clear anywhere the run leaves text.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.environ import host_env
from helpers.run_helpers import RUNNER
from helpers.server_helpers import decide_while_running, serving, workspace_store

HOOK_PASSWORD = "S3cretHookPassw0rd"
#: a malformed URL (the port is not a number), as a mistyped CI secret would be
HOOK = f"http://ci:{HOOK_PASSWORD}@127.0.0.1:notaport/hooks/T000"
STAGING = "StagingPassw0rd-3e91"
PROD = "ProdPassw0rd-77a0"
#: a secret input, and an input that is not secret holding it
TOKEN = "rEgistryT0ken-5d2a"
URL = f"https://ci:{TOKEN}@registry.example/v2"
PIN = "0073915"  # a secret number: printed as 73915, given as 0073915

WORKFLOW = """\
name: Unregistered secrets
environments: [production, staging]
inputs:
  pin:
    type: number
    secret: true
  registry-token:
    secret: true
  registry-url: {{}}
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: {url}
    token-env: RUNNER_SERVER_TOKEN
  notify:
    url-env: CHAT_HOOK
variables:
  DbPassword:
    - from-env: STAGING_DB_PW
      environments: [staging]
      secret: true
    - from-env: PROD_DB_PW
      environments: [production]
      secret: true
steps:
  - id: before
    name: Before
    run: |
      env | grep -E '^(CHAT_HOOK|RUNNER_SERVER_TOKEN|STAGING_DB_PW|PROD_DB_PW)=' | sort
      echo "pin=${{{{ inputs.pin }}}} given=$(printf '%07d' ${{{{ inputs.pin }}}})"
  - id: gate
    name: Gate
    manual:
      instructions: go on
"""


@dataclass
class Done:
    root: Path
    token: str
    code: int
    out: str
    err: str
    #: what the approval server answered about the gate, and `runs show --format json`
    interruption: str
    shown: str

    def texts(self) -> dict[str, str]:
        """Every text the run left: its output, each file of the state folder, what the
        server holds of the gate and what `runs show` shows."""
        found = {"stdout": self.out, "stderr": self.err, "server": self.interruption}
        found["runs show"] = self.shown
        for path in (self.root / "S").rglob("*"):
            if path.is_file():
                found[str(path)] = path.read_text(errors="replace")
        return found

    def holding(self, secret: str) -> list[str]:
        return [where for where, text in self.texts().items() if secret in text]


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Done]:
    root = tmp_path_factory.mktemp("unregistered") / "ws"
    with workspace_store(root) as store, serving(store) as url:
        token = store.issue_token("runner", label="leaks")
        alice = store.issue_token("approver", "alice", label="leaks")
        (root / "deploy.yml").write_text(WORKFLOW.format(url=url))
        env = host_env(
            RUNNER_SERVER_TOKEN=token,
            RUNNER_ACTOR="ci-bot",
            CHAT_HOOK=HOOK,
            STAGING_DB_PW=STAGING,
            PROD_DB_PW=PROD,
        )
        argv = [str(RUNNER), "run", "deploy.yml", "--env", "production", "--run-id", "r1"]
        argv += ["--state-dir", "S", "--input", f"pin={PIN}"]
        argv += ["--input", f"registry-token={TOKEN}", "--input", f"registry-url={URL}"]
        run = subprocess.Popen(
            argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        interruption, out, err = decide_while_running(
            run, url, alice, "r1--gate", {"result": "proceed", "notes": "go"}
        )
        shown = subprocess.run(
            [str(RUNNER), "runs", "show", "r1", "--state-dir", "S", "--format", "json"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        yield Done(root, token, run.returncode, out, err, interruption, shown)


def test_the_run_proceeded(done: Done) -> None:
    assert done.code == 0, done.out + done.err


def test_a_secret_number_input_is_masked_as_printed_and_as_given(done: Done) -> None:
    """Only string values of secret inputs were registered: a number printed in clear."""
    assert "pin=*** given=***" in done.out
    assert done.holding("73915") == []


def test_the_runner_token_and_the_webhook_url_are_masked_from_the_first_step(done: Done) -> None:
    """Neither was registered (the URL only once a manual step posted to it): a step before
    the gate that printed its environment showed both."""
    assert "CHAT_HOOK=***" in done.out
    assert "RUNNER_SERVER_TOKEN=***" in done.out
    assert done.holding(done.token) == []
    assert done.holding(HOOK) == []


def test_a_secret_variable_of_another_environment_is_masked(done: Done) -> None:
    """Only the value scoped to the run's environment was registered."""
    assert "PROD_DB_PW=***" in done.out
    assert "STAGING_DB_PW=***" in done.out
    assert done.holding(STAGING) == []


def test_an_input_that_is_not_secret_is_masked_where_it_holds_a_secret(done: Done) -> None:
    """Only inputs declared secret were masked: the URL holding the token was in clear in the
    gate's ``Inputs:`` line, the record, the request file, the events and the server."""
    assert '"registry-url": "https://ci:***@registry.example/v2"' in done.out
    assert "https://ci:***@registry.example/v2" in done.interruption
    assert done.holding(TOKEN) == []


def test_the_webhooks_failure_quotes_no_part_of_its_url(done: Done) -> None:
    """urllib's ``nonnumeric port: 'S3cretHookPassw0rd@127.0.0.1'`` was logged: the masker
    knew the URL whole, not the part the message quoted."""
    assert "notify: webhook failed: the webhook's URL is malformed" in done.out
    assert done.holding(HOOK_PASSWORD) == []
