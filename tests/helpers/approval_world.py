"""Fixtures for signed approval files: real ``ssh-keygen`` keys and signatures, and a git world.

The world is what the ``file`` source sees in CI: a bare ``origin``, a deploy repository cloned
from it (the workspace, on ``main``), a protected trust branch ``approvals-trust`` pushed to
``origin`` and fetched, and an approver's clone that pushes signed files to branch ``approvals``.

People (``trust/people.yml`` on the trust branch):

* alice (CI login ``alice-gh``) and bob are in ``trading-desk``; carol is in no team;
* dave is in ``trading-desk`` but his key is listed in ``trust/revoked_keys``;
* mallory has a key but is neither in the people file nor in ``allowed_signers``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from helpers.cli import cli_in
from helpers.clock import FakeClock, fake_time, real_now
from helpers.git_world import TRUST_REF, GitWorld, checked_out, clean_env, git, write
from runner.approvals.document import ApprovalBody, instant
from runner.approvals.files import FileSource
from runner.approvals.identity import Directory, Person
from runner.approvals.quorum import Verdict, judge
from runner.approvals.request import Interruption, Submission, inputs_digest
from runner.approvals.trust import load_directory
from runner.git import Git
from runner.model import Approvals, Trust
from runner.model import FileSource as FileConfig
from runner.options import RunOptions

NAMESPACE = "runner-approval"

RUNNER = str(Path(sys.executable).with_name("runner"))
DIGEST = "d" * 64

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
    display-name: Bob Stone
    ssh-principals: [bob@example.com]
  - id: u-carol
    username: carol
    display-name: Carol Diaz
    ssh-principals: [carol@example.com]
  - id: u-dave
    username: dave
    display-name: Dave Revoked
    ssh-principals: [dave@example.com]
teams:
  trading-desk: [alice, bob, dave]
"""


@dataclass(frozen=True)
class Key:
    name: str
    path: Path
    #: "ssh-ed25519 AAAA..." (type and base64, no comment)
    public: str
    fingerprint: str

    @property
    def principal(self) -> str:
        return f"{self.name}@example.com"


def make_key(folder: Path, name: str) -> Key:
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    public = " ".join(path.with_name(name + ".pub").read_text().split()[:2])
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(path.with_name(name + ".pub"))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return Key(name, path, public, listed[1])


def sign(raw: bytes, key: Key, namespace: str = NAMESPACE) -> bytes:
    """``ssh-keygen -Y sign -f KEY -n NAMESPACE`` over ``raw`` (on stdin): the armoured .sig."""
    done = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(key.path), "-n", namespace],
        input=raw,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def ssh_keygen_verify(
    folder: Path, allowed_signers: str, principal: str, raw: bytes, armored: bytes
) -> subprocess.CompletedProcess[bytes]:
    """``ssh-keygen -Y verify -f allowed_signers -I principal -n runner-approval -s sig < raw``."""
    allowed = folder / "allowed_signers.check"
    allowed.write_text(allowed_signers)
    sig = folder / "message.check.sig"
    sig.write_bytes(armored)
    return subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(allowed),
            "-I",
            principal,
            "-n",
            NAMESPACE,
            "-s",
            str(sig),
        ],
        input=raw,
        capture_output=True,
        check=False,
    )


@dataclass(frozen=True)
class Keys:
    alice: Key
    bob: Key
    carol: Key
    dave: Key
    mallory: Key

    def allowed_signers(self) -> str:
        """Everyone but mallory, restricted to our namespace."""
        return "".join(
            f'{k.principal} namespaces="{NAMESPACE}" {k.public}\n'
            for k in (self.alice, self.bob, self.carol, self.dave)
        )

    def revoked_keys(self) -> str:
        return f"# dave lost his laptop\n{self.dave.public} dave\n"


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    if shutil.which("ssh-keygen") is None or shutil.which("git") is None:
        pytest.skip("ssh-keygen and git are needed")
    folder = tmp_path_factory.mktemp("keys")
    names = ("alice", "bob", "carol", "dave", "mallory")
    return Keys(*(make_key(folder, name) for name in names))


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class World(GitWorld):
    """A bare origin, the deploy workspace, the trust branch, and an approver's clone.

    The constants and helpers tests need are reachable from here too.
    """

    NAMESPACE = NAMESPACE
    DIGEST = DIGEST
    TRUST_REF = TRUST_REF
    PEOPLE_YML = PEOPLE_YML
    sign = staticmethod(sign)

    def __init__(self, root: Path, keys: Keys) -> None:
        super().__init__(root)
        self.keys = keys
        self.approver = root / "approver"
        #: the test's monkeypatch, for commands run in this process (set by the fixture)
        self.monkeypatch: pytest.MonkeyPatch | None = None

    @classmethod
    def create(cls, root: Path, keys: Keys) -> World:
        world = cls(root, keys)
        world.push_trust(
            {
                "trust/people.yml": PEOPLE_YML,
                "trust/allowed_signers": keys.allowed_signers(),
                "trust/revoked_keys": keys.revoked_keys(),
            }
        )
        world.commit_workflow("name: Placeholder\nsteps:\n  - id: s\n    run: echo\n")
        git(world.repo, "fetch", "-q", "origin")
        # the approver's clone, on an orphan branch `approvals`
        git(root, "clone", "-q", str(world.origin), str(world.approver))
        git(world.approver, "checkout", "-q", "--orphan", "approvals")
        git(world.approver, "rm", "-rqf", ".")
        return world

    def copy(self, root: Path) -> World:
        """The same world in ``root`` (faster than creating one), its clones' ``origin`` moved
        along: the path is rewritten in their config files, as ``git remote set-url`` would
        (two git processes for each of about 500 tests)."""
        shutil.copytree(self.root, root, symlinks=True)
        world = World(root, self.keys)
        for clone in (world.repo, world.approver):
            config = clone / ".git" / "config"
            text = config.read_text()
            old, new = f"url = {self.origin}\n", f"url = {world.origin}\n"
            assert text.count(old) == 1, text
            config.write_text(text.replace(old, new))
        return world

    # -- the deploy repository -----------------------------------------------------------------

    def commit_workflow(self, text: str, extra: Mapping[str, str] | None = None) -> Path:
        """Write ``deploy.yml`` (and ``extra`` files) on main, commit and push; return its path."""
        write(self.repo, {"deploy.yml": text, **(extra or {})})
        git(self.repo, "add", "-A", ".")
        git(self.repo, "commit", "-qm", "deploy")
        git(self.repo, "push", "-q", "origin", "main")
        return self.repo / "deploy.yml"

    @property
    def head(self) -> str:
        return checked_out(self.repo)

    # -- approvals ---------------------------------------------------------------------------

    def push(self, files: Mapping[str, bytes], message: str = "approve") -> None:
        """Commit ``files`` (paths relative to the approver's clone) to ``approvals``, push."""
        write(self.approver, files)
        git(self.approver, "add", "-A", ".")
        git(self.approver, "commit", "-qm", message)
        git(self.approver, "push", "-q", "origin", "approvals")

    def push_signed(
        self,
        raw: bytes,
        key: Key,
        *,
        run_id: str = "r1",
        name: str | None = None,
        namespace: str = NAMESPACE,
    ) -> str:
        """Sign ``raw`` with ``key`` and push it as ``approvals/<run>/<name>`` (+ ``.sig``);
        return the file name."""
        name = name or f"gate.{key.principal}.json"
        folder = f"approvals/{run_id}"
        self.push({f"{folder}/{name}": raw, f"{folder}/{name}.sig": sign(raw, key, namespace)})
        return name

    # -- the request and its source ----------------------------------------------------------

    def request(self, **changes: Any) -> Interruption:
        """The interruption of step ``gate`` of run ``r1`` deploying HEAD to production."""
        now = utc_now()
        base = Interruption(
            id="r1--gate",
            run_id="r1",
            step_id="gate",
            step_name="Approve release",
            title="Approve release",
            instructions="",
            teams=("trading-desk",),
            quorum=(),
            fields=(),
            created=instant(now),
            deadline=None,
            environment="production",
            workflow="Seed",
            digest=DIGEST,
            commit=self.head,
            inputs={},
            following_steps=("After",),
            started_by="root",
            prevent_self_approval=False,
            sources=("file",),
            run_started=instant(now - timedelta(minutes=1)),
        )
        return replace(base, **changes)

    def body(self, request: Interruption, key: Key, **changes: Any) -> ApprovalBody:
        """A valid proceed by ``key``'s principal for ``request``, issued now, for an hour."""
        now = utc_now()
        base = ApprovalBody(
            run_id=request.run_id,
            step_id=request.step_id,
            environment=request.environment,
            workflow_digest=request.digest,
            commit=request.commit,
            inputs_digest=inputs_digest(request.inputs),
            decision="proceed",
            approver=key.principal,
            issued_at=instant(now),
            expires_at=instant(now + timedelta(hours=1)),
            notes=f"ok from {key.name}",
        )
        return replace(base, **changes)

    def approvals_config(
        self, *, ref: str | None = TRUST_REF, revoked: bool = True, trust_prefix: str = "trust"
    ) -> Approvals:
        trust = Trust(
            people=f"{trust_prefix}/people.yml",
            ref=ref,
            allowed_signers=f"{trust_prefix}/allowed_signers",
            revoked_keys=f"{trust_prefix}/revoked_keys" if revoked else None,
        )
        config = FileConfig(remote="origin", branch="approvals", path="approvals", poll_seconds=1)
        return Approvals(trust=trust, file=config)

    def directory(self, approvals: Approvals | None = None) -> Directory:
        return load_directory(
            (approvals or self.approvals_config()).trust, Git(self.repo), "nobody"
        )

    def source(
        self,
        approvals: Approvals | None = None,
        *,
        insecure: bool = False,
        now: Callable[[], datetime] | None = None,
    ) -> FileSource:
        approvals = approvals or self.approvals_config()
        return FileSource(
            environ={},
            approvals=approvals,
            workspace=self.repo,
            directory=self.directory(approvals),
            options=RunOptions(insecure_local_trust=insecure),
            now=now,
        )

    def judge(
        self,
        request: Interruption,
        *,
        started_by: Person | None = None,
        source: FileSource | None = None,
    ) -> tuple[list[Submission], Verdict]:
        """Register a fresh file source (unless given), poll once, and judge what it saw."""
        if source is None:
            source = self.source()
            source.register(request)
        submissions = source.poll(request)
        return submissions, judge(request, submissions, self.directory(), started_by)

    # -- whole runs --------------------------------------------------------------------------

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """``runner run deploy.yml --env production --state-dir S ARGS`` in the workspace."""
        return subprocess.run(
            [RUNNER, "run", "deploy.yml", "--env", "production", "--state-dir", "S", *args],
            cwd=self.repo,
            capture_output=True,
            text=True,
            # started by carol, who approves nothing here: a starter the people file does not
            # know is refused before the first step under prevent-self-approval
            env=clean_env(**{"RUNNER_ACTOR": "carol", **(env or {})}),
            timeout=timeout,
            check=False,
        )

    def here(
        self, monkeypatch: pytest.MonkeyPatch, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``runner ARGS`` in this process, as :meth:`run` starts it (in the workspace, started
        by carol): no interpreter to start, for runs that need no process of their own."""
        environ = clean_env(**{"RUNNER_ACTOR": "carol", **(env or {})})
        return cli_in(monkeypatch, self.repo, environ, *args)

    def run_here(
        self,
        monkeypatch: pytest.MonkeyPatch,
        *args: str,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """:meth:`run` in this process on a fake clock starting now: a step's timeout and the
        source's polls pass at once (git and ssh-keygen stay real)."""
        fake_time(monkeypatch, FakeClock(real_now()))
        argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S", *args)
        return self.here(monkeypatch, *argv, env=env)

    def record(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.repo / "S" / "runs" / run_id / "record.json").read_text(encoding="utf-8")
        )
        return data


@pytest.fixture(name="sign", scope="session")
def sign_fixture() -> Callable[..., bytes]:
    """``sign(raw, key, namespace="runner-approval")`` with the real ``ssh-keygen``."""
    return sign


@pytest.fixture(name="ssh_keygen_verify", scope="session")
def ssh_keygen_verify_fixture() -> Callable[..., subprocess.CompletedProcess[bytes]]:
    return ssh_keygen_verify


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> World:
    return World.create(tmp_path_factory.mktemp("world-template"), keys)


@pytest.fixture
def world(tmp_path: Path, world_template: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """A fresh git world of one's own (origin, workspace, approver's clone)."""
    made = world_template.copy(tmp_path / "world")
    made.monkeypatch = monkeypatch
    return made
