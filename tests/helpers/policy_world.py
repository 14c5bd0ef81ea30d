"""The environment-policy world: real git, the CLI in this process (``runner.cli.main.main``).

In ``tmp_path``: a bare ``origin``; a clone of it (the deploy workspace); the protected trust
branch ``approvals-trust`` (people, allowed signers, the policy) pushed to ``origin`` and fetched;
and branch ``main`` holding only ``deploy.yml``, whose ``approvals.trust`` names
``refs/remotes/origin/approvals-trust``. The CLI runs with the working directory in the workspace
and the host's CI variables removed (the ``clean_environment`` fixture, autouse where a module
imports it), so that the ref comes from git and the actor from ``RUNNER_ACTOR``.

Used by ``tests/policy/test_policy_e2e.py`` and by the attacks on the trust anchor and the
policy's gate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers.clock import FakeClock, fake_time, real_now
from helpers.environ import GIT_IDENTITY, HOST_VARIABLES
from helpers.git_world import GitWorld, checked_out, git, write
from runner.cli.main import main

PEOPLE = """\
people:
  - id: u-alice
    username: alice
    display-name: Alice Martin
    ci-logins: [alice-gh]
  - id: u-bob
    username: bob
    display-name: Bob Stone
teams:
  sre: [alice]
  release-managers: [alice, bob]
"""

TRUST = "{ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers, policy: trust/policy.yml}"


def deploy_yml(trust: str = TRUST, *, manual: bool = False, notify: str = "") -> str:
    """The workflow: one step that leaves a trace; a failing smoke test while ``fail-here`` exists;
    optionally the manual step that a pull request later removes."""
    gate = (
        "  - id: gate\n"
        "    name: Approve release\n"
        "    environments: [production]\n"
        "    manual:\n"
        "      teams: [release-managers]\n"
        if manual
        else ""
    )
    hook = f"  notify: {{url: '{notify}'}}\n" if notify else ""
    return (
        "name: Shop\n"
        "environments: [staging, production]\n"
        "approvals:\n"
        f"  trust: {trust}\n"
        "  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}\n"
        f"{hook}"
        "steps:\n"
        f"{gate}"
        "  - id: smoke\n"
        "    name: Smoke test\n"
        "    run: test ! -e fail-here\n"
        "  - id: deploy\n"
        "    name: Deploy\n"
        "    run: echo deployed >> deployed.log\n"
    )


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class World(GitWorld):
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        super().__init__(root)
        self.state = root / "state"
        self.capsys = capsys

    def create(self, policy: str, workflow: str) -> World:
        self.push_trust(
            {
                "trust/people.yml": PEOPLE,
                "trust/allowed_signers": "# nobody signs in these tests\n",
                "trust/policy.yml": policy,
            }
        )
        self.commit({"deploy.yml": workflow})
        return self

    def commit(self, files: Mapping[str, str], message: str = "change") -> str:
        """Commit ``files`` on the current branch, push it, fetch origin; the new HEAD."""
        write(self.repo, files)
        git(self.repo, "add", "-A", ".")
        git(self.repo, "commit", "-qm", message)
        branch = git(self.repo, "rev-parse", "--abbrev-ref", "HEAD")
        git(self.repo, "push", "-q", "origin", branch)
        git(self.repo, "fetch", "-q", "origin")
        return checked_out(self.repo)

    def protect(self, policy: str) -> None:
        """Change the policy on the protected trust branch (through a second clone)."""
        admin = self.root / "admin"
        if not admin.exists():
            git(self.root, "clone", "-q", "-b", "approvals-trust", str(self.origin), str(admin))
        write(admin, {"trust/policy.yml": policy})
        git(admin, "commit", "-qam", "policy")
        git(admin, "push", "-q", "origin", "approvals-trust")
        git(self.repo, "fetch", "-q", "origin")

    def runner(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = main(list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def run(self, environment: str, *more: str, run_id: str) -> Result:
        return self.runner(
            "run", "deploy.yml", "--env", environment, "--state-dir", str(self.state),
            "--run-id", run_id, *more,
        )  # fmt: skip

    def record(self, run_id: str) -> dict[str, Any]:
        path = self.state / "runs" / run_id / "record.json"
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def runs(self) -> list[str]:
        folder = self.state / "runs"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    @property
    def deployed(self) -> list[str]:
        log = self.repo / "deployed.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CI variables, a fixed git identity, the actor carol (in no team)."""
    for name in HOST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("RUNNER_ACTOR", "carol")


def make_world(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
    *,
    fake_clock: bool = True,
) -> World:
    """A world whose trust branch holds ``policy``, the working directory in its workspace."""
    made = World(tmp_path, capsys).create(policy, deploy_yml())
    monkeypatch.chdir(made.repo)
    if fake_clock:
        # a policy approval's timeout passes at once (in process, runs wait on this clock)
        fake_time(monkeypatch, FakeClock(real_now()))
    return made
