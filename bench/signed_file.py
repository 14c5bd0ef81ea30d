"""Push to continue on the ``file`` source: how long after an approver's ``git push`` the run goes
on, at the default ``poll-seconds``; and how many git processes a waiting run starts a minute.

The world is the one CI sees: a bare ``origin``, the deploy repository cloned from it, the
protected trust branch (``refs/remotes/origin/approvals-trust``) and an approver's clone, real
``ssh-keygen`` keys. For each sample, ``runner run`` starts a one-gate workflow (quorum of one,
no ``poll-seconds``: the default); once the record says ``waiting`` and a random pause (so the
push lands anywhere in the poll cycle), a signed approval is committed and pushed; the step after
the gate writes ``time.time()`` to a file. The figure is that time minus the moment ``git push``
returned. Goal: median under 5 s.

Git calls: a run waits for 60 s (20 s with ``--quick``) with a ``git`` on its ``PATH`` that logs
each call before running the real one; nobody pushes. Reported per minute, with the calls of one
approval (push to continue) from the samples, and the CPU share of the runner and its git calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import clean_environ, row, runner_command

GOAL_S = 5.0
TRUST_REF = "refs/remotes/origin/approvals-trust"

PEOPLE = """\
people:
  - id: u-alice
    username: alice
    display-name: Alice
    ssh-principals: [alice@example.com]
teams:
  desk: [alice]
"""

WORKFLOW = f"""\
name: Push to continue
environments: [production]
approvals:
  trust: {{ref: {TRUST_REF}, people: trust/people.yml, allowed-signers: trust/allowed_signers}}
  file: {{remote: origin, branch: approvals, path: approvals}}
steps:
  - id: gate
    name: Approve
    manual:
      teams: [desk]
      timeout-minutes: 10
  - id: after
    name: After
    run: date +%s.%N > "$CONTINUED"
"""


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        env=env or git_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def git_env(**extra: str) -> dict[str, str]:
    env = clean_environ(
        GIT_AUTHOR_NAME="b",
        GIT_AUTHOR_EMAIL="b@e",
        GIT_COMMITTER_NAME="b",
        GIT_COMMITTER_EMAIL="b@e",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        NO_COLOR="1",
    )
    env.update(extra)
    return env


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.origin = root / "origin.git"
        self.repo = root / "repo"
        self.approver = root / "approver"
        self.key = root / "alice"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", str(self.key)],
            check=True,
            capture_output=True,
        )
        public = " ".join(self.key.with_name("alice.pub").read_text().split()[:2])
        git(root, "init", "-q", "--bare", "-b", "main", str(self.origin))
        git(root, "clone", "-q", str(self.origin), str(self.repo))
        git(self.repo, "checkout", "-q", "-b", "approvals-trust")
        (self.repo / "trust").mkdir()
        (self.repo / "trust" / "people.yml").write_text(PEOPLE)
        (self.repo / "trust" / "allowed_signers").write_text(f"alice@example.com {public}\n")
        git(self.repo, "add", "trust")
        git(self.repo, "commit", "-qm", "trust")
        git(self.repo, "push", "-q", "origin", "approvals-trust")
        git(self.repo, "checkout", "-q", "--orphan", "main")
        git(self.repo, "rm", "-rqf", ".")
        (self.repo / "deploy.yml").write_text(WORKFLOW)
        git(self.repo, "add", "deploy.yml")
        git(self.repo, "commit", "-qm", "deploy")
        git(self.repo, "push", "-q", "origin", "main")
        git(self.repo, "fetch", "-q", "origin")
        git(root, "clone", "-q", str(self.origin), str(self.approver))
        git(self.approver, "checkout", "-q", "--orphan", "approvals")
        git(self.approver, "rm", "-rqf", "--ignore-unmatch", ".")
        git(self.approver, "commit", "-q", "--allow-empty", "-m", "start")
        git(self.approver, "push", "-q", "origin", "approvals")
        self.digest = hashlib.sha256((self.repo / "deploy.yml").read_bytes()).hexdigest()
        self.head = git(self.repo, "rev-parse", "HEAD")

    def start(self, run_id: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        argv = [
            *runner_command(),
            "run",
            "deploy.yml",
            "--env",
            "production",
            "--state-dir",
            str(self.root / "state"),
            "--run-id",
            run_id,
        ]
        log = open(self.root / f"{run_id}.log", "wb")  # noqa: SIM115 - the child holds it
        return subprocess.Popen(argv, cwd=self.repo, env=env, stdout=log, stderr=log)

    def record(self, run_id: str) -> dict[str, Any]:
        path = self.root / "state" / "runs" / run_id / "record.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def waiting(self, run_id: str) -> bool:
        return any(s.get("status") == "waiting" for s in self.record(run_id).get("steps", []))

    def approve(self, run_id: str) -> float:
        """Sign alice's approval of ``run_id``, commit and push it; when the push returned."""
        from runner.approvals.document import ApprovalBody, instant

        now = datetime.now(UTC).replace(microsecond=0)
        body = ApprovalBody(
            run_id=run_id,
            step_id="gate",
            environment="production",
            workflow_digest=self.digest,
            commit=self.head,
            decision="proceed",
            approver="alice@example.com",
            issued_at=instant(now),
            expires_at=instant(now + timedelta(hours=1)),
            notes="bench",
        ).encode()
        signature = subprocess.run(
            ["ssh-keygen", "-Y", "sign", "-f", str(self.key), "-n", "runner-approval"],
            input=body,
            capture_output=True,
            check=True,
        ).stdout
        folder = self.approver / "approvals" / run_id
        folder.mkdir(parents=True)
        (folder / "gate.alice@example.com.json").write_bytes(body)
        (folder / "gate.alice@example.com.json.sig").write_bytes(signature)
        git(self.approver, "add", "-A", ".")
        git(self.approver, "commit", "-qm", f"approve {run_id}")
        git(self.approver, "push", "-q", "origin", "approvals")
        return time.time()


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not reached in {timeout} s")


def counting_git(folder: Path) -> tuple[Path, Path]:
    """A ``bin`` folder whose ``git`` logs a line per call, then runs the real git."""
    real = shutil.which("git")
    assert real is not None
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    calls = folder / "git-calls.log"
    shim = bin_dir / "git"
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    return bin_dir, calls


def sample(world: World, run_id: str, env: dict[str, str], calls: Path) -> dict[str, Any]:
    continued = world.root / f"{run_id}.continued"
    process = world.start(run_id, {**env, "CONTINUED": str(continued)})
    try:
        wait_until(lambda: world.waiting(run_id), 60, f"{run_id} waiting")
        time.sleep(random.uniform(0.5, 3.5))  # anywhere in the poll cycle
        before = _count(calls)
        pushed = world.approve(run_id)
        wait_until(continued.exists, 120, f"{run_id} continued")
        wait_until(lambda: continued.read_text().strip() != "", 10, f"{run_id} wrote")
        went_on = float(continued.read_text())
        process.wait(60)
        return {"push_to_continue_s": went_on - pushed, "git_calls": _count(calls) - before}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _count(calls: Path) -> int:
    try:
        return len(calls.read_text().splitlines())
    except OSError:
        return 0


def idle_calls(world: World, env: dict[str, str], calls: Path, seconds: float) -> dict[str, Any]:
    run_id = "idle"
    process = world.start(run_id, env)
    try:
        wait_until(lambda: world.waiting(run_id), 60, "idle run waiting")
        time.sleep(1.0)
        before, started, cpu = _count(calls), time.monotonic(), _cpu(process.pid)
        time.sleep(seconds)
        counted, elapsed = _count(calls) - before, time.monotonic() - started
        cpu = _cpu(process.pid) - cpu
    finally:
        process.kill()
        process.wait()
    return {
        "calls": counted,
        "seconds": elapsed,
        "per_minute": counted * 60 / elapsed,
        "cpu_share_with_git": cpu / elapsed,
    }


def _cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of the children it waited for (its git calls)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3: utime, stime, cutime, cstime are fields 14 to 17
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def measure(quick: bool) -> dict[str, Any]:
    samples = 5 if quick else 11
    idle = 20.0 if quick else 60.0
    with tempfile.TemporaryDirectory(prefix="bench-signed-file-") as tmp:
        root = Path(tmp)
        world = World(root)
        bin_dir, calls = counting_git(root)
        env = clean_environ(
            RUNNER_ACTOR="bench", NO_COLOR="1", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        )
        results = [sample(world, f"s{n}", env, calls) for n in range(samples)]
        waiting = idle_calls(world, env, calls, idle)
    latencies = [r["push_to_continue_s"] for r in results]
    return {
        "samples": results,
        "median_s": statistics.median(latencies),
        "max_s": max(latencies),
        "idle": waiting,
        "calls_per_approval": statistics.median(r["git_calls"] for r in results),
        "goal_s": GOAL_S,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    data = measure(quick)
    idle = data["idle"]
    return [
        row(
            "signed file: push to continue, median",
            value=data["median_s"],
            unit="s",
            reference=None,
            reference_label="",
            ratio=None,
            goal=f"< {GOAL_S:g} s",
            met=data["median_s"] < GOAL_S,
            details=data,
        ),
        row(
            "signed file: git calls a minute while waiting",
            value=idle["per_minute"],
            unit="/min",
            reference=None,
            reference_label="",
            ratio=None,
            goal="info",
            met=None,
            details={"idle": idle, "calls_per_approval": data["calls_per_approval"]},
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv), indent=2))
