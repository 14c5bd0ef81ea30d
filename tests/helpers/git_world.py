"""Real git repositories as the runner meets them in CI: a bare ``origin``, the deploy workspace
cloned from it, and the protected trust branch ``approvals-trust`` (people, allowed signers, the
policy) pushed to ``origin``. The base of the signed-file world (:mod:`helpers.approval_world`)
and of the environment-policy world (:mod:`helpers.policy_world`)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from helpers.environ import GIT_IDENTITY, host_env

TRUST_REF = "refs/remotes/origin/approvals-trust"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for git and the CLI: a fixed git identity, no CI variables."""
    return host_env(**{**GIT_IDENTITY, **extra})


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def checked_out(repo: Path) -> str:
    """The commit checked out in ``repo``, read from its files (``.git/HEAD``, then the branch's
    loose ref or ``packed-refs``) where they say it plainly: a test asks for it hundreds of times,
    and each ``git rev-parse HEAD`` is a process. Anything else is git's to answer."""
    dot_git = repo / ".git"
    try:
        first = (dot_git / "HEAD").read_text().strip()
        if not first.startswith("ref: refs/heads/"):
            return git(repo, "rev-parse", "HEAD")
        ref = first.removeprefix("ref: ")
        loose = dot_git / ref
        if loose.is_file():
            return loose.read_text().strip()
        for line in (dot_git / "packed-refs").read_text().splitlines():
            commit, _, name = line.partition(" ")
            if name == ref:
                return commit
    except OSError:
        pass
    return git(repo, "rev-parse", "HEAD")


def write(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Write ``files`` (paths relative to ``root``), making their folders."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


class GitWorld:
    """A bare ``origin`` and the deploy workspace ``repo`` cloned from it, in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.origin = root / "origin.git"
        self.repo = root / "repo"

    def push_trust(self, files: Mapping[str, str | bytes]) -> None:
        """Create ``origin`` and its clone, push the trust branch holding ``files`` (under
        ``trust/``), and leave the workspace on an empty orphan ``main``: the deployed branch
        holds no trust files."""
        git(self.root, "init", "-q", "--bare", "-b", "main", str(self.origin))
        git(self.root, "clone", "-q", str(self.origin), str(self.repo))
        git(self.repo, "checkout", "-q", "-b", "approvals-trust")
        write(self.repo, files)
        git(self.repo, "add", "trust")
        git(self.repo, "commit", "-qm", "trust")
        git(self.repo, "push", "-q", "origin", "approvals-trust")
        git(self.repo, "checkout", "-q", "--orphan", "main")
        git(self.repo, "rm", "-rqf", ".")
