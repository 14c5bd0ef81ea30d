"""A real ``runner`` process to cancel with real signals, and the workspaces it waits in: at a
manual step of the ``file`` source (:func:`file_workspace`), and registering its question with an
approval server (:func:`server_workspace`). Used by the cancel tests of ``tests/e2e``."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from helpers import run_helpers
from helpers.environ import host_env
from helpers.people import ALICE_DESK_SIGNING

RUNNER = str(run_helpers.RUNNER)
#: from the signal to the runner's exit, far below every poll interval used here (30 s, and
#: the server's 20 s long-poll) and below GitHub's 7.5 s before it kills the job
EXIT_BOUND = 5.0
#: the bound on every wait for the run to get somewhere (a hang guard, not a measurement)
WAIT = 60.0


STEPS = """\
steps:
  - id: before
    name: Before
    run: echo "before the gate"
  - id: gate
    name: Gate
    manual:
      teams: [trading-desk]
  - id: after
    name: After
    run: echo "after the gate"
  - id: report
    name: Report
    if: always()
    env:
      OUTCOME: >-
        #{if Octopus.Deployment.Error}failed: #{Octopus.Deployment.Error}#{else}succeeded#{/if}
    run: |
      echo "report: $OUTCOME"
"""

FILE_WORKFLOW = (
    """\
name: Cancel while waiting
environments: [production]
approvals:
  trust: {people: people.yml, allowed-signers: allowed_signers}
  file: {path: approvals, poll-seconds: 30}
"""
    + STEPS
)


class Running:
    """A ``runner`` subprocess whose merged output is read as it comes."""

    def __init__(
        self, argv: list[str], cwd: Path, env: Mapping[str, str], stdin: Any = None
    ) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        # chunks, not lines: a prompt's question has no newline
        assert self.process.stdout is not None
        for chunk in iter(lambda: self.process.stdout.read1(4096), b""):  # type: ignore[union-attr]
            self.chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")

    def wait_for(self, text: str, within: float = WAIT) -> None:
        deadline = time.monotonic() + within
        while text not in self.output:
            assert self.process.poll() is None, f"the run ended before {text!r}:\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} within {within}s:\n{self.output}"
            time.sleep(0.02)

    def signal_and_time(self, signum: int) -> float:
        """Send ``signum``; the seconds until the runner exits."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the run did not end {WAIT}s after the signal") from None
        took = time.monotonic() - sent
        self.reader.join(5)
        return took

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running(
    argv: list[str], cwd: Path, env: Mapping[str, str], stdin: Any = None
) -> Iterator[Running]:
    run = Running(argv, cwd, env, stdin)
    try:
        yield run
    finally:
        run.stop()


def environ(**extra: str) -> dict[str, str]:
    """The runner's environment: no CI variables, output unbuffered, started by ``ci-bot``."""
    return host_env(PYTHONUNBUFFERED="1", RUNNER_ACTOR="ci-bot", **extra)


def record(state: Path, run_id: str = "r1") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / "runs" / run_id / "record.json").read_text())
    return data


def file_workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "people.yml").write_text(ALICE_DESK_SIGNING)
    (root / "allowed_signers").write_text("")
    (root / "approvals").mkdir()
    (root / "deploy.yml").write_text(FILE_WORKFLOW)
    return root


SERVER_WORKFLOW = """\
name: Cancel while waiting
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: URL
    token-env: RUNNER_SERVER_TOKEN
""" + STEPS.replace("teams: [trading-desk]", "teams: [trading-desk]\n      timeout-minutes: 30")


def server_workspace(root: Path, url: str) -> Path:
    """A workspace whose run asks the approval server at ``url``."""
    (root / ".git").mkdir(parents=True)
    (root / "approvals").mkdir()
    (root / "approvals" / "people.yml").write_text(ALICE_DESK_SIGNING)
    (root / "deploy.yml").write_text(SERVER_WORKFLOW.replace("URL", url))
    return root
