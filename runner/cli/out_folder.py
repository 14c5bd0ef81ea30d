"""Where ``runner approval new`` may write: a checkout of the branch the run reads approvals from.

The default ``--out approvals``, run from a clone of the deployed branch, wrote the files next to
that branch's ``approvals/people.yml`` and printed a ``git push`` to it: the run never reads
approvals there, and a push to the deployed branch may start another deployment (newcomer pass).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.approvals.files import REQUEST_KEY, worktree_name
from runner.errors import GitError, UsageError
from runner.git import Git


@dataclass(frozen=True)
class Target:
    """Where the run reads approvals: its file source's branch, remote and folder."""

    branch: str
    remote: str = "origin"
    path: str | None = None


def approvals_target(request: dict[str, Any], branch: str | None) -> Target | None:
    """The approvals branch from ``--branch``, else from the request file (None: not known, as
    for a request file of a local folder source, or none given)."""
    facts = request.get(REQUEST_KEY)
    # a request file comes from a CI artifact: only text is taken from it, and it only makes
    # the check refuse, or its hint name another folder
    found = {
        key: value
        for key, value in (facts.items() if isinstance(facts, dict) else ())
        if key in ("remote", "branch", "path") and isinstance(value, str) and value
    }
    if branch:
        found["branch"] = branch
    if "branch" not in found:
        return None
    return Target(**found)


def _existing(folder: Path) -> Path:
    """``folder``, or the nearest folder above it that exists (git runs there)."""
    folder = folder.absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def _text(found: bytes | None) -> str | None:
    return found.decode("utf-8", "surrogateescape").strip() if found else None


def check_out_folder(out: str, target: Target) -> None:
    """Refuse an ``--out`` inside a git checkout of another branch than ``target``'s (or of no
    branch); a folder outside any git repository is left to the publish hint."""
    git = Git(_existing(Path(out)))
    try:
        top = _text(git.query("rev-parse", "--show-toplevel"))
    except GitError:
        return  # no git here: the hint after signing says to copy the files over
    if top is None:
        return
    current = _text(git.query("symbolic-ref", "--short", "-q", "HEAD"))
    branch = target.branch
    if current == branch:
        return
    where = f"on branch {current}" if current else "with no branch checked out (detached HEAD)"
    path = target.path or Path(out).name
    raise UsageError(
        f"--out {out} is in the checkout {top}, {where}; the run reads approvals only from "
        f"branch {branch}: pushed from here, they would never count (and a push to the "
        "deployed branch may start a deployment)",
        hint=_hint(git, Path(top), branch, path, target.remote),
    )


def _hint(git: Git, top: Path, branch: str, path: str, remote: str) -> str:
    """Where to write instead: a worktree of ``branch`` this clone already has, or how to make
    one beside it."""
    listed = _text(git.query("worktree", "list", "--porcelain")) or ""
    worktree = None
    for entry in listed.split("\n\n"):
        lines = entry.splitlines()
        if f"branch refs/heads/{branch}" in lines and lines[0].startswith("worktree "):
            worktree = Path(lines[0].removeprefix("worktree "))
    if worktree is not None:
        return f"it is checked out in {worktree}: pass --out {_shown(worktree / path)}"
    beside = top.parent / worktree_name(branch).removeprefix("../")
    inside = Path.cwd().absolute().is_relative_to(top)
    git_c = "git" if inside else f"git -C {_shown(top)}"
    where = _shown(beside) if inside else os.path.relpath(beside, top)
    return (
        f"check out branch {branch} beside this clone: {git_c} fetch {remote} {branch} && "
        f"{git_c} worktree add {where} {branch}, then pass --out {_shown(beside / path)}"
    )


def _shown(path: Path) -> str:
    """``path`` as the user may type it from here."""
    return os.path.relpath(path)
