"""Composite actions (``uses: ./actions/NAME``): inputs, outputs, nesting, and the project's own
``http-check`` and ``webhook`` actions against real loopback HTTP servers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers.run_helpers import Workspace, wait_until_killed

from runner.steps import composite

GREET = """
name: Greet
inputs:
  who:
    description: whom to greet
    required: true
  greeting:
    default: Hello
  punctuation:
    default: "!"
outputs:
  message:
    value: ${{ steps.say.outputs.message }}
  shouted:
    value: ${{ steps.shout.outputs.text }}
  fixed:
    value: "from ${{ inputs.who }}"
runs:
  using: composite
  steps:
    - id: say
      shell: bash
      env:
        WHO: ${{ inputs.who }}
        GREETING: ${{ inputs.greeting }}
        PUNCT: ${{ inputs.punctuation }}
      run: |
        echo "$GREETING, $WHO$PUNCT"
        echo "message=$GREETING, $WHO$PUNCT" >> "$GITHUB_OUTPUT"
    - id: shout
      shell: bash
      env:
        MESSAGE: ${{ steps.say.outputs.message }}
      run: echo "text=$(echo "$MESSAGE" | tr a-z A-Z)" >> "$GITHUB_OUTPUT"
"""


def test_inputs_defaults_and_outputs(workspace: Workspace) -> None:
    workspace.action("greet", GREET)
    result = workspace.run(
        """
        name: composite
        steps:
          - id: hello
            name: Hello
            uses: ./actions/greet
            with:
              who: "#{Octopus.Environment.Name}"
          - id: custom
            name: Custom
            uses: ./actions/greet
            with:
              who: world
              greeting: Goodbye
              punctuation: "?"
          - id: use
            name: Use
            env:
              MESSAGE: ${{ steps.hello.outputs.message }}
              SHOUTED: ${{ steps.custom.outputs.shouted }}
            run: echo "used [$MESSAGE] [$SHOUTED]"
        """
    )
    assert result.code == 0, result.out
    assert result.step("hello").outputs == {
        "message": "Hello, staging!",
        "shouted": "HELLO, STAGING!",
        "fixed": "from staging",
    }
    assert result.step("custom").outputs == {
        "message": "Goodbye, world?",
        "shouted": "GOODBYE, WORLD?",
        "fixed": "from world",
    }
    lines = result.lines()
    assert "  Hello, staging!" in lines
    assert "  used [Hello, staging!] [GOODBYE, WORLD?]" in lines


@pytest.mark.parametrize("given", ["{}", "{greeting: Hi}", '{who: ""}'])
def test_missing_required_input_fails_the_step(workspace: Workspace, given: str) -> None:
    workspace.action("greet", GREET)
    result = workspace.run(
        f"""
        name: composite
        steps:
          - id: hello
            name: Hello
            uses: ./actions/greet
            with: {given}
          - id: after
            name: After
            run: echo after
        """
    )
    assert result.code == 1
    hello = result.step("hello")
    assert (hello.status, hello.outcome, hello.conclusion) == ("failure",) * 3
    assert hello.error == "Input required and not supplied: who"
    assert result.step("after").status == "skipped"
    assert "  error: Input required and not supplied: who" in result.lines()


def test_unexpected_input_is_a_warning(workspace: Workspace) -> None:
    workspace.action("greet", GREET)
    result = workspace.run(
        """
        name: composite
        steps:
          - id: hello
            name: Hello
            uses: ./actions/greet
            with:
              who: you
              volume: loud
              colour: red
        """
    )
    assert result.code == 0, result.out
    assert (
        "  warning: Unexpected input(s) 'colour', 'volume', valid inputs are "
        "['who', 'greeting', 'punctuation']"
    ) in result.lines()
    assert result.step("hello").outputs["message"] == "Hello, you!"


def test_nested_local_actions(workspace: Workspace) -> None:
    workspace.action("greet", GREET)
    workspace.action(
        "outer",
        """
        name: Outer
        inputs:
          name:
            required: true
        outputs:
          greeting:
            value: ${{ steps.inner.outputs.message }}
          where:
            value: ${{ steps.where.outputs.path }}
        runs:
          using: composite
          steps:
            - id: inner
              uses: ./actions/greet
              with:
                who: ${{ inputs.name }}
                greeting: Welcome
            - id: where
              shell: bash
              run: echo "path=$(basename "$GITHUB_ACTION_PATH")" >> "$GITHUB_OUTPUT"
            - id: skipped
              if: failure()
              shell: bash
              run: echo "not reached"
        """,
    )
    result = workspace.run(
        """
        name: nested
        steps:
          - id: outer
            name: Outer
            uses: ./actions/outer
            with:
              name: nest
        """
    )
    assert result.code == 0, result.out
    assert result.step("outer").outputs == {"greeting": "Welcome, nest!", "where": "outer"}
    assert "  Welcome, nest!" in result.lines()
    assert "  not reached" not in result.lines()


def test_failing_nested_step(workspace: Workspace) -> None:
    workspace.action(
        "flaky",
        """
        name: Flaky
        outputs:
          seen:
            value: ${{ steps.second.outcome }}/${{ steps.second.conclusion }}
        runs:
          using: composite
          steps:
            - id: first
              name: Tolerated
              shell: bash
              continue-on-error: true
              run: exit 2
            - id: second
              name: Breaks
              shell: bash
              run: exit 3
            - id: skipped
              shell: bash
              run: echo "not reached"
            - id: cleanup
              if: always()
              shell: bash
              run: echo "cleanup in action"
        """,
    )
    result = workspace.run(
        """
        name: nested failure
        steps:
          - id: flaky
            name: Flaky
            uses: ./actions/flaky
        """
    )
    assert result.code == 1
    flaky = result.step("flaky")
    assert (flaky.outcome, flaky.exit_code, flaky.error) == ("failure", 3, "Breaks: exit code 3")
    assert flaky.outputs == {"seen": "failure/failure"}
    lines = result.lines()
    assert "  cleanup in action" in lines
    assert "  not reached" not in lines


def test_actions_nesting_too_deep(workspace: Workspace) -> None:
    # a chain of distinct actions (an action that uses itself is refused when the workflow loads)
    for n in range(12):
        workspace.action(
            f"a{n}",
            f"""
            name: A{n}
            runs:
              using: composite
              steps:
                - uses: ./actions/a{n + 1}
            """
            if n < 11
            else """
            name: Last
            runs:
              using: composite
              steps:
                - run: echo deep
                  shell: bash
            """,
        )
    result = workspace.run(
        """
        name: deep
        steps:
          - id: deep
            name: Deep
            uses: ./actions/a0
        """
    )
    # refused when the workflow is checked, before anything runs (a run refused the step)
    assert result.code == 2
    assert "actions/a9/action.yml:5:7: actions nest more than 10 deep here" in result.err


# -- the project's actions against loopback servers -------------------------------------------


class Server:
    """A loopback HTTP server in a thread that answers from a table and records requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str]] = {}
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "body": self.rfile.read(length).decode() if length else "",
                    }
                )
                status, body = server.routes.get(self.path, (404, "not found"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server()
    yield httpd
    httpd.close()


HTTP_CHECK = """
name: check
variables:
  Url: "{url}"
steps:
  - id: check
    name: Check the homepage
    uses: ./actions/http-check
    with:
      url: "#{{Url}}"
      expect-text: {text}
      timeout-seconds: "1"
      interval-seconds: "0.2"
"""


def test_http_check_healthy(workspace: Workspace, server: Server) -> None:
    workspace.copy_action("http-check")
    server.routes["/"] = (200, "<h1>Web shop 1.4.2</h1>")
    result = workspace.run(HTTP_CHECK.format(url=server.url + "/", text="Web shop 1.4.2"))
    assert result.code == 0, result.out
    check = result.step("check")
    assert check.outcome == "success"
    assert check.outputs == {"status": "200", "attempts": "1"}
    assert f"  {server.url}/ answered 200 after 1 attempt(s)" in result.lines()
    assert [r["method"] for r in server.requests] == ["GET"]


@pytest.mark.parametrize(
    ("route", "text", "status", "detail"),
    [
        ((404, "gone"), "anything", "404", "status 404"),
        (
            (200, "<h1>Web shop 1.4.1</h1>"),
            "Web shop 1.4.2",
            "200",
            "body does not contain 'Web shop 1.4.2'",
        ),
    ],
    ids=["404", "wrong-text"],
)
def test_http_check_unhealthy(
    workspace: Workspace,
    server: Server,
    route: tuple[int, str],
    text: str,
    status: str,
    detail: str,
) -> None:
    workspace.copy_action("http-check")
    server.routes["/health"] = route
    url = server.url + "/health"
    result = workspace.run(HTTP_CHECK.format(url=url, text=text))
    assert result.code == 1
    check = result.step("check")
    assert (check.outcome, check.conclusion, check.exit_code) == ("failure", "failure", 1)
    assert check.error == "check: exit code 1"
    assert check.outputs["status"] == status
    attempts = int(check.outputs["attempts"])
    assert attempts >= 2
    assert len(server.requests) == attempts
    lines = result.lines()
    assert f"  attempt 1: {url}: {detail}" in lines
    assert f"  error: {url} did not become healthy: {detail}" in lines


def test_http_check_without_server(workspace: Workspace, server: Server) -> None:
    workspace.copy_action("http-check")
    url = server.url + "/"
    server.close()
    result = workspace.run(HTTP_CHECK.format(url=url, text="x"))
    assert result.code == 1
    assert result.step("check").outputs["status"] == "0"
    assert any(
        line.startswith(f"  error: {url} did not become healthy: no answer (")
        for line in result.lines()
    )


WEBHOOK = """
name: notify
variables:
  ChatWebhook:
    value: "{url}"
    secret: true
steps:
  - id: post
    name: Tell the team
    uses: ./actions/webhook
    with:
      url: "#{{ChatWebhook}}"
      text: >-
        Deployed ${{{{ deployment.workflow }}}} to #{{Octopus.Environment.Name}} "quoted" ✓
"""


def test_webhook_posts_json(workspace: Workspace, server: Server) -> None:
    workspace.copy_action("webhook")
    server.routes["/hooks/abc-secret-path"] = (200, "ok")
    url = server.url + "/hooks/abc-secret-path"
    result = workspace.run(WEBHOOK.format(url=url))
    assert result.code == 0, result.out
    assert result.step("post").outputs == {"status": "200"}
    assert server.requests == [
        {
            "method": "POST",
            "path": "/hooks/abc-secret-path",
            "content_type": "application/json",
            "body": server.requests[0]["body"],
        }
    ]
    assert json.loads(server.requests[0]["body"]) == {
        "text": 'Deployed notify to staging "quoted" ✓'
    }
    assert "  webhook answered 200" in result.lines()
    assert url not in result.out
    assert url not in result.record_text


def test_webhook_error_status_fails(workspace: Workspace, server: Server) -> None:
    workspace.copy_action("webhook")
    server.routes["/hook"] = (500, "boom")
    result = workspace.run(WEBHOOK.format(url=server.url + "/hook"))
    assert result.code == 1
    post = result.step("post")
    assert (post.outcome, post.outputs) == ("failure", {"status": "500"})
    assert "  webhook answered 500" in result.lines()
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("url", "said"),
    [
        # the variable unset in this environment: `#{}` leaves it as written
        (
            "#{Unset}",
            "webhook: `url` is not an http(s) URL (it holds an unresolved `#{...}`: is the "
            "variable set for this environment?)",
        ),
        ("http://127.0.0.1:9/hook", "webhook: the receiver could not be reached: "),
    ],
    ids=["unresolved", "unreachable"],
)
def test_webhook_that_cannot_post_says_why_in_one_line(
    workspace: Workspace, url: str, said: str
) -> None:
    """It printed a Python traceback (`ValueError: unknown url type: '#{ChatWebhook}'`)."""
    workspace.copy_action("webhook")
    result = workspace.run(WEBHOOK.format(url=url).replace("    secret: true\n", ""))
    assert result.code == 1, result.out
    assert "Traceback" not in result.out
    assert any(line.strip().startswith(said) for line in result.lines()), result.out


SLOW_ACTION = """
name: Slow
runs:
  using: composite
  steps:
    - id: first
      shell: bash
      run: |
        sleep 0.5
        echo "first done"
    - id: slow
      shell: bash
      run: |
        sleep 30 &
        echo $! > "{pid_file}"
        echo "slow started"
        sleep 30
    - id: always
      if: always()
      shell: bash
      run: echo "the action's clean-up ran"
"""


def test_timeout_minutes_of_a_uses_step_counts_for_all_of_its_actions_steps(
    workspace: Workspace,
) -> None:
    """GitHub applies a step's ``timeout-minutes`` to a ``uses:`` step too; it was accepted
    and ignored, so an action that hung held the deployment for ever. The action's scripts
    share the step's time (the second gets what the first left), and once it has passed no
    more of the action runs, ``always()`` included; the workflow's next steps go on as after
    any failed step."""
    pid_file = workspace.root / "grandchild.pid"
    workspace.action("slow", SLOW_ACTION.format(pid_file=pid_file))
    result = workspace.run(
        """
        name: timeout
        steps:
          - id: slow
            name: Slow action
            uses: ./actions/slow
            timeout-minutes: 0.02
          - id: after
            name: After
            if: always()
            run: echo "after ran"
        """
    )
    wait_until_killed(pid_file, "the action's grandchild")
    assert result.code == 1, result.out
    slow = result.step("slow")
    assert (slow.outcome, slow.conclusion) == ("failure", "failure")
    assert slow.error == "slow: timed out after 0.02 minutes"
    lines = result.lines()
    assert "  first done" in lines and "  slow started" in lines
    assert "  the action's clean-up ran" not in lines
    assert "  after ran" in lines
    assert "(slow: timed out after 0.02 minutes)" in result.out


def test_a_uses_step_stopped_at_its_deadline_is_not_held_by_continue_on_error(
    workspace: Workspace,
) -> None:
    workspace.action("two", TWO)
    result = workspace.run(TIMED_TWO)
    assert result.code == 1, result.out
    two = result.step("two")
    assert (two.outcome, two.conclusion) == ("failure", "failure")
    assert two.error == "long: timed out after 0.01 minutes"
    assert "  long started" in result.lines()
    assert "  next ran" not in result.lines()


def test_a_uses_step_whose_time_ran_out_starts_no_more_of_its_action(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script that ended just at the deadline: the next one does not start at all."""

    def passed_already(minutes: float | None) -> composite.Deadline | None:
        return None if minutes is None else composite.Deadline(minutes, time.monotonic() - 1)

    monkeypatch.setattr(composite.Deadline, "of", staticmethod(passed_already))
    workspace.action("two", TWO)
    result = workspace.run(TIMED_TWO)
    assert result.code == 1, result.out
    two = result.step("two")
    assert two.outcome == "failure"
    assert two.error == "timed out after 0.01 minutes"
    assert "  long started" not in result.lines()
    assert "  next ran" not in result.lines()


TWO = """
name: Two
runs:
  using: composite
  steps:
    - id: long
      shell: bash
      run: |
        echo "long started"
        sleep 5
      continue-on-error: true
    - id: next
      shell: bash
      run: echo "next ran"
"""

TIMED_TWO = """
name: timeout
steps:
  - id: two
    name: Two
    uses: ./actions/two
    timeout-minutes: 0.01
"""
