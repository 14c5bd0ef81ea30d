"""The seed scenario end to end, as a person at a terminal runs it: `runner run` in a tmux
session, the traders' check answered with keys, the team told who decided and why."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.environ import HOST_VARIABLES
from helpers.seed import USER, seed_copy

TMUX = shutil.which("tmux")
RUNNER = Path(sys.executable).with_name("runner")
STEP = "Ensure traders are aware of the deployment"
WAIT = 30.0  # seconds: the bound on every wait below

pytestmark = pytest.mark.skipif(
    TMUX is None,
    reason="tmux is not installed: cannot drive a terminal session for the end-to-end prompt test",
)


@dataclass
class Session:
    socket: str
    name: str
    folder: Path

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        completed = subprocess.run(
            [TMUX, "-S", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", self.name)

    def wait_for(self, text: str) -> str:
        deadline = time.monotonic() + WAIT
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear within {WAIT}s; screen:\n{screen}")
            time.sleep(0.05)

    def type(self, text: str) -> None:
        if text:
            self.tmux("send-keys", "-t", self.name, "-l", text)
        self.tmux("send-keys", "-t", self.name, "Enter")

    def exit_code(self) -> int:
        path = self.folder / "exitcode"
        deadline = time.monotonic() + WAIT
        while not (path.is_file() and path.read_text().strip()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the run did not end within {WAIT}s; screen:\n{self.screen()}"
                )
            time.sleep(0.05)
        return int(path.read_text())


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    folder = seed_copy(tmp_path)
    # a private server whose socket lives in the test's folder
    own = Session(str(tmp_path / "tmux.sock"), "seed", folder)
    drop = " ".join(f"-u {name}" for name in HOST_VARIABLES)
    command = (
        f"cd {shlex.quote(str(folder))} && env {drop} NO_COLOR=1 {shlex.quote(str(RUNNER))} "
        "run deploy-webapp.yml --env production --state-dir S --run-id X; "
        "echo $? > exitcode.tmp && mv exitcode.tmp exitcode; sleep 600"
    )
    own.tmux("new-session", "-d", "-s", own.name, "-x", "220", "-y", "60", command)
    try:
        yield own
    finally:
        # the private server holds only this session: ending it ends what the test started
        own.tmux("kill-server")


def test_seed_proceed(session: Session) -> None:
    screen = session.wait_for("Proceed or abort? [p/a] ")
    assert f"Manual intervention required: {STEP}" in screen
    assert "Who may decide: trading-desk" in screen
    assert "Release **1.4.2** is about to go to production." in screen
    assert f"{STEP}: you are {USER}; trading-desk (" in screen  # who may answer, up front
    session.type("p")
    session.wait_for("Notes: ")
    session.type("traders told, window closed")
    session.wait_for("ticket (matching ^CHG-[0-9]+$, required): ")
    session.type("CHG-x")
    session.wait_for("  must match ^CHG-[0-9]+$")
    session.type("CHG-1")
    code = session.exit_code()
    screen = session.screen()
    assert code == 0, screen
    assert "  proceed by Pat Operator via prompt: traders told, window closed" in screen
    assert "✓ Deploy the web app" in screen
    assert "✓ Check the homepage" in screen
    assert "  Deployment of 1.4.2 to production: succeeded" in screen
    assert "  Approved by Pat Operator: traders told, window closed" in screen
    assert "Run X succeeded in " in screen


def test_seed_abort(session: Session) -> None:
    session.wait_for("Proceed or abort? [p/a] ")
    session.type("a")
    session.wait_for("Notes: ")
    session.type("")  # an abort needs notes: asked again
    session.wait_for("Notes are required to abort. Notes: ")
    session.type("trading window open")
    code = session.exit_code()
    screen = session.screen()
    assert code == 3, screen
    aborted = f"Manual intervention '{STEP}' was aborted by Pat Operator"
    assert "  abort by Pat Operator via prompt: trading window open" in screen
    assert "- Deploy the web app: skipped (the deployment has failed)" in screen
    assert "- Check the homepage: skipped (the deployment has failed)" in screen
    assert f"  Deployment of 1.4.2 to production: failed: {aborted}" in screen
    assert "  Stopped by Pat Operator: trading window open" in screen
    assert "Run X was aborted at a manual intervention in " in screen
