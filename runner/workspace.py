"""The workspace root, and the paths the runner derives from it.

The workspace root is the folder a workflow belongs to: steps run there, ``./actions/NAME``
resolves there, the default state folder is ``<root>/.runner``, and a run records its workflow's
path relative to it (so that ``runner resume`` finds the same file in whatever checkout it runs
in). It is, for a workflow file:

1. the git top-level holding the file (its nearest ancestor with ``.git``, a folder or, in a
   worktree or submodule, a file);
2. else the folder holding the ``workflows/`` folder the file is in (or the nearest ancestor
   holding ``actions/``);
3. else the current folder.

Commands that have no workflow file (``resume``, ``runs``, ``policy review``) take the same rules
from the current folder. So a run started from ``docs/`` or from ``/tmp`` with an absolute path
finds the same root, and the same run history, as one started at the root.

Only the file system is read (no ``git`` process: this is on every command's start-up path), and
every path returned is absolute.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

#: the default state folder, under the workspace root
STATE_FOLDER = ".runner"


def absolute(path: str | Path, base: Path | None = None) -> Path:
    """``path`` made absolute against ``base`` (the current folder) and normalised, without
    resolving symbolic links: what a process started elsewhere must be handed."""
    joined = Path(path) if Path(path).is_absolute() else (base or Path.cwd()) / path
    return Path(os.path.normpath(joined))


def workspace_of(workflow: str | Path) -> Path:
    """The workspace root of the workflow file at ``workflow`` (see the module's rules)."""
    folder = absolute(workflow).parent
    return _git_top(folder) or _project(folder, file_parent=True) or Path.cwd()


def workspace_here(cwd: Path | None = None) -> Path:
    """The workspace root of the current folder, for commands without a workflow file."""
    here = absolute(cwd or Path.cwd())
    return _git_top(here) or _project(here, file_parent=False) or here


def _git_top(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _project(folder: Path, *, file_parent: bool) -> Path | None:
    """Without git, the nearest ancestor that holds ``actions/`` or is the parent of a
    ``workflows`` folder: for a workflow file, one its path goes through; for the current
    folder, any."""
    for candidate in (folder, *folder.parents):
        if file_parent and candidate.name == "workflows":
            return candidate.parent
        if (candidate / "actions").is_dir():
            return candidate
        if not file_parent and (candidate / "workflows").is_dir():
            return candidate
    return None


def state_folder(option: str | None, environ: Mapping[str, str], workspace: Path) -> Path:
    """The state folder, absolute: ``--state-dir`` or ``$RUNNER_STATE_DIR`` (relative to the
    current folder, as a shell user means it), else ``.runner`` in the workspace root."""
    given = option or environ.get("RUNNER_STATE_DIR")
    if given:
        return absolute(given)
    return workspace / STATE_FOLDER


def recorded_path(workflow: str | Path, workspace: Path) -> str:
    """How a run records its workflow: relative to the workspace root, in ``/`` form, so a
    resume in another checkout (or from another folder) reads that checkout's file; absolute
    when the file is outside the root."""
    full = absolute(workflow)
    try:
        return full.relative_to(workspace).as_posix()
    except ValueError:
        return str(full)


def shown_path(path: Path, cwd: Path | None = None) -> str:
    """A path for messages: relative to the current folder when it is below it, else absolute."""
    here = cwd or Path.cwd()
    try:
        return str(path.relative_to(here))
    except ValueError:
        return str(path)


def write_replacing(path: Path, data: bytes, *, mode: int = 0o600, durable: bool = False) -> None:
    """``data`` as a new file put in the place of ``path``: written beside it under a name of
    its own, then renamed over it, whatever the name held. A kill leaves the old file or the new
    one, never half of one; and a link or a FIFO at ``path`` (the state folder travels as a CI
    artifact, a step runs as the runner's user, anyone who can push to the approvals branch can
    commit a link) is replaced, never written through or blocked on. ``mode`` as ``os.open``
    takes it (the umask takes bits off); ``durable``: on disk, the folder's entry too, before
    this returns. A name held by a folder is an ``OSError``."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    handle = os.open(temporary, flags, mode)
    try:
        try:
            write_all(handle, data)
            if durable:
                os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if durable:
        sync_folder(path.parent)


def write_all(handle: int, data: bytes) -> None:
    """Write all of ``data`` to the descriptor ``handle`` (``os.write`` may write part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view) :]


def sync_folder(folder: Path) -> None:
    """``fsync`` the folder: the names made or replaced in it survive a crash of the machine."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
