"""Reading the trust files (people, allowed signers, revoked keys, policy).

Trust must come from a protected place, never from what is being deployed: with
``approvals.trust.ref`` set, each file is read from that git ref (``git show REF:PATH``), not from
the working tree or the deployed commit. Without a ref, the files come from the working tree, which
only the terminal prompt accepts, or any source with ``--insecure-local-trust`` (for local tries).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from runner.approvals.identity import Directory, Person, parse_directory
from runner.errors import ApprovalError
from runner.model import Trust


@dataclass(frozen=True)
class TrustFiles:
    """Where trust files are read from, and whether that place is protected."""

    workspace: Path
    ref: str | None

    @property
    def protected(self) -> bool:
        return self.ref is not None

    def where(self, path: str) -> str:
        return f"{self.ref}:{path}" if self.ref else path

    def read(self, path: str) -> bytes:
        if self.ref is None:
            try:
                return (self.workspace / path).read_bytes()
            except OSError as exc:
                raise ApprovalError(f"cannot read trust file {path}: {exc.strerror}") from None
        return git_show(self.workspace, self.ref, path)


def git_show(workspace: Path, ref: str, path: str) -> bytes:
    """A file's bytes at ``ref`` in the repository at ``workspace``."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(workspace), "show", f"{ref}:{path}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ApprovalError(f"cannot run git to read {ref}:{path}: {exc}") from None
    if completed.returncode != 0:
        detail = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ApprovalError(
            f"cannot read trust file {path} from {ref}: {detail[-1] if detail else 'git failed'}",
            hint="fetch the protected trust ref first (e.g. `git fetch origin approvals-trust`)",
        )
    return completed.stdout


def load_directory(trust: Trust | None, workspace: Path, local_user: str) -> Directory:
    """The people-and-teams file; without trust settings, a directory of just the local user
    (only the terminal prompt can then decide, as the person at the terminal)."""
    if trust is None:
        person = Person(id=local_user, username=local_user, display_name=local_user)
        return Directory((person,), {}, "(local user)")
    files = TrustFiles(workspace, trust.ref)
    return parse_directory(files.read(trust.people), files.where(trust.people))


def refuse_deployed_commit(workspace: Path, ref: str) -> None:
    """Refuse a trust ref that is the commit being deployed (trust it would let a deployer edit)."""

    def rev(name: str) -> str | None:
        try:
            done = subprocess.run(
                [
                    "git",
                    "-C",
                    str(workspace),
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    f"{name}^{{commit}}",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() or None if done.returncode == 0 else None

    trusted, deployed = rev(ref), rev("HEAD")
    if trusted is not None and trusted == deployed:
        raise ApprovalError(
            f"trust ref {ref} is the commit being deployed; trust must come from a protected "
            "ref that the deployment cannot change"
        )
