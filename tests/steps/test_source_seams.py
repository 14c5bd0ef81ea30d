"""The approval sources wait on the engine's clock and sleep (``Run.clock``/``Run.sleep``), not
on their own: a server's retries and backoff, a poll interval and a step's deadline all pass on a
fake clock, so an engine test of a failing server takes no real time, and a real run's backoff
ends at once on cancellation (the engine's sleep is the cancellation's)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import cli_in
from helpers.clock import FakeClock, fake_time
from helpers.engine import run_here
from helpers.paths import ROOT
from helpers.stub import Reply, Seen, Stub, stub_server

from runner.approvals.source import ApprovalSource
from runner.options import RunOptions
from runner.steps import manual

JSON = {"Content-Type": "application/json"}
TOKEN = "seam-runner-token"
WORKFLOW = """\
name: Seams
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
    allowed-signers: approvals/allowed_signers
{sources}
steps:
  - id: gate
    name: Gate Check
    manual:
      teams: [trading-desk]
      timeout-minutes: 2
  - id: after
    name: After
    run: echo after
"""


def failing_server(seen: Seen) -> Reply:
    """Takes the interruption, then answers every poll with an error (a failure is never a
    decision: the run waits on, with backoff, until the step's deadline)."""
    path = seen.path.split("?")[0]
    if seen.method == "POST" and path == "/api/v1/interruptions":
        request = json.loads(seen.body)
        view = {"id": request["id"], "request": request, "version": 1, "submissions": []}
        return 201, JSON, json.dumps(view).encode()
    if seen.method == "POST" and path.endswith("/cancel"):
        return 200, JSON, b"{}"
    return 503, JSON, b'{"error": "down"}'


@pytest.fixture
def server() -> Iterator[Stub]:
    with stub_server(failing_server) as made:
        yield made


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[ApprovalSource]:
    """The sources the manual step builds, kept for the test to look at."""
    made: list[ApprovalSource] = []
    real = manual.source_class

    def keeping(name: str) -> Any:
        def factory(**kwargs: Any) -> ApprovalSource:
            source = real(name)(**kwargs)
            made.append(source)
            # checked at once: a source sleeping for real would make the test wait for
            # hours on a clock that never reaches the deadline
            client = getattr(source, "client", None)
            if client is not None and client.sleep != kwargs.get("sleep"):
                raise AssertionError(f"the {name} source's client does not sleep on the engine's")
            return source

        return factory

    monkeypatch.setattr(manual, "source_class", keeping)
    return made


def workspace(root: Path, sources: str) -> Path:
    (root / ".git").mkdir(parents=True)
    (root / "approvals").mkdir()
    shutil.copy(ROOT / "approvals" / "people.yml", root / "approvals" / "people.yml")
    # nobody's key: no file approval can verify, the step waits until its deadline
    (root / "approvals" / "allowed_signers").write_text("# nobody\n")
    (root / "deploy.yml").write_text(WORKFLOW.format(sources=sources))
    return root


def environ(**extra: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("CI", "GITHUB", "GITLAB"))}
    kept.pop("RUNNER_STATE_DIR", None)
    return {**kept, "NO_COLOR": "1", "RUNNER_ACTOR": "ci-bot", **extra}


def test_a_failing_server_backs_off_on_the_engine_clock_until_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Stub, built: list[ApprovalSource]
) -> None:
    root = workspace(tmp_path / "ws", f"  server:\n    url: {server.url}\n")
    monkeypatch.chdir(root)
    clock = FakeClock(limit=1_000)
    result = run_here(root, environ(RUNNER_SERVER_TOKEN=TOKEN), clock=clock)
    assert result.code == 4, result.log
    gate = result.step("gate")
    assert gate["approval"]["state"] == "timed-out"
    assert gate["approval"]["decisions"] == []
    assert result.step("after")["status"] != "success"
    # the two minutes passed on the fake clock, in the source's own pauses: its backoff between
    # failed polls and its client's retries, not only the waiting loop's
    assert clock.elapsed >= 120
    assert [s for s in clock.sleeps if s > 0], clock.sleeps
    assert sum(clock.sleeps) >= 120
    polls = [s for s in server.seen if s.method == "GET"]
    assert len(polls) >= 2
    cancels = [s for s in server.seen if s.path.endswith("/cancel")]
    assert [json.loads(s.body) for s in cancels] == [{"reason": "timed-out"}]
    (source,) = built
    assert source.client.sleep == clock.sleep  # type: ignore[attr-defined]
    assert source.now == clock.now  # type: ignore[attr-defined]


def test_the_file_source_polls_and_checks_on_the_engine_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: list[ApprovalSource]
) -> None:
    root = workspace(tmp_path / "ws", "  file:\n    poll-seconds: 30\n")
    monkeypatch.chdir(root)
    clock = FakeClock(limit=100)
    # the allowed signers from the workspace itself: no protected ref in this test
    result = run_here(root, environ(), clock=clock, options=RunOptions(insecure_local_trust=True))
    assert result.code == 4, result.log
    assert result.step("gate")["approval"]["state"] == "timed-out"
    # polled every ~30 s (jittered) for the step's two minutes, all on the fake clock
    assert 120 <= clock.elapsed < 160
    assert 3 <= len([s for s in clock.sleeps if s >= 20]) <= 6
    (source,) = built
    assert source.now == clock.now  # type: ignore[attr-defined]


def down_server(seen: Seen) -> Reply:
    """Every request fails: the record's copy and the deployment lock cannot be had."""
    return 503, JSON, b'{"error": "down"}'


def test_the_record_copy_and_the_deployment_lock_retry_on_the_engine_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runner run`` puts its record on the server and takes the server's deployment lock
    before the first step; both clients back off on the run's sleep, so a signal ends the
    backoff at once (the run's sleep is the cancellation's) and here no real time passes."""
    with stub_server(down_server) as server:
        root = workspace(tmp_path / "ws", f"  server:\n    url: {server.url}\n")
        clock = fake_time(monkeypatch, FakeClock(limit=100))
        done = cli_in(
            monkeypatch,
            root,
            environ(RUNNER_SERVER_TOKEN=TOKEN),
            *("run", "deploy.yml", "--env", "production", "--state-dir", "state", "--run-id", "r1"),
        )
    assert done.returncode == 6, done.stderr
    assert "the approval server did not answer properly (HTTP 503) after 3 attempt(s)" in (
        done.stderr
    )
    record = json.loads((root / "state" / "runs" / "r1" / "record.json").read_text())
    assert (record["status"], record["exit_code"]) == ("failure", 6)
    assert all(step["status"] != "success" for step in record["steps"])
    copies = [s for s in server.seen if s.method == "PUT" and "/runs/" in s.path]
    locks = [s for s in server.seen if s.method == "POST" and "/locks/" in s.path]
    # the first record's copy, the lock, then the failed record's copy: three tries each
    assert (len(copies), len(locks)) == (6, 3)
    # two pauses between the three tries of each, jittered around 0.5 s and 1 s, all on the
    # fake clock
    assert len(clock.sleeps) == 6, clock.sleeps
    assert all(0.25 <= pause <= 1.0 for pause in clock.sleeps), clock.sleeps
