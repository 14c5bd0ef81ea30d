"""Where a step's transient files go: its script (which holds the values substituted into it,
secrets included) and its file-command files (``GITHUB_OUTPUT`` ..., which may receive secret
values). They live for one attempt of one step, are removed when it ends, and nothing reads them
again: a resume reads the record only.

One private folder per run process, made when the first script step runs: ``tempfile.mkdtemp``
(a random name, created exclusively, mode 0700) on a memory file system, ``$XDG_RUNTIME_DIR``
when it is set, else ``/dev/shm``. So secrets never reach a disk, and a step's eight new inodes
cost microseconds instead of the 0.1-0.35 ms each that an ext4 disk took (bench/README.md,
``step_cost``). Where neither can be used, the files go where they always went, in the run's
state folder (``steps/<step>/attempt-N/``).

The folder is removed when the run ends, detaches, fails or is interrupted (``Run.execute``). A
runner killed with SIGKILL cannot remove it, and a substituted script holds secrets in clear: so
the process holds an exclusive ``flock`` on the folder's ``.owner`` file for as long as the
folder is its own (the kernel lets go when the process dies, however it dies; steps do not
inherit it), and the next runner of the same user that makes a folder removes those of its
``runner-*`` folders whose lock it can take. A folder younger than :data:`SWEEP_AFTER` is left
alone: between ``mkdtemp`` and the lock, a live one has no lock yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from msgspec import Struct

#: the memory file system every Linux has, shared by every user of the machine
SHARED_MEMORY = "/dev/shm"
#: how much of a step's id goes into its files' names (ids have no length limit; the names are
#: only there to be read in a shell's error message)
LABEL_LENGTH = 64
#: the file whose lock says the folder's run process is alive
OWNER = ".owner"
#: how old a folder must be to be swept: older than a folder's first moment without its lock
SWEEP_AFTER = 60.0


class AttemptFiles(Struct, frozen=True):
    """The names of one attempt's files: ``folder``/``prefix`` + what the file is."""

    folder: str
    prefix: str

    def path(self, name: str) -> str:
        # a join of two strings: a step builds six of these
        return f"{self.folder}/{self.prefix}{name}"


class Scratch:
    """One run process's folder for its steps' transient files (see the module's docstring)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._lock = threading.Lock()
        self._folder: str | None = None
        #: the open ``.owner`` file of the folder, locked (see the module's docstring)
        self._owner: int | None = None
        #: no memory file system could be used: every attempt goes to the state folder
        self._on_disk = False
        #: a number for each attempt: steps, attempts, composite actions' steps and steps run
        #: together never share a name
        self._numbers = itertools.count(1)

    @property
    def folder(self) -> str | None:
        """The private folder, if one was made and not removed."""
        return self._folder

    def attempt(self, step_dir: Path, attempt: int) -> AttemptFiles:
        """Where the files of ``attempt`` of the step whose state folder is ``step_dir`` go."""
        folder = self._folder or self._make()
        if folder is None:
            on_disk = os.path.join(step_dir, f"attempt-{attempt}")
            os.makedirs(on_disk, exist_ok=True)
            return AttemptFiles(on_disk, "")
        label = step_dir.name[:LABEL_LENGTH]
        return AttemptFiles(folder, f"{next(self._numbers)}-{label}-{attempt}-")

    def lost(self, files: AttemptFiles) -> bool:
        """Whether ``files``'s folder is the private folder and is gone (the system removes
        ``$XDG_RUNTIME_DIR`` when its user's last session ends, a long wait at a manual step
        may outlive it): if so it is forgotten, and the next attempt makes another."""
        with self._lock:
            if files.folder != self._folder or os.path.isdir(files.folder):
                return False
            self._folder = None
            return True

    def close(self) -> None:
        """Remove the folder and what is left in it (an attempt after this makes another)."""
        with self._lock:
            folder, self._folder = self._folder, None
            owner, self._owner = self._owner, None
            self._on_disk = False
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if owner is not None:
            os.close(owner)  # after the removal: a sweeper never sees it unlocked

    def _make(self) -> str | None:
        with self._lock:
            if self._folder is None and not self._on_disk:
                if self._owner is not None:  # the folder was lost (see ``lost``)
                    os.close(self._owner)
                    self._owner = None
                made = private_folder(self._environ)
                if made is not None:
                    self._folder, self._owner = made
                    sweep(os.path.dirname(self._folder))
                self._on_disk = self._folder is None
            return self._folder


def private_folder(environ: Mapping[str, str]) -> tuple[str, int] | None:
    """A new folder of ours, mode 0700, on the first memory file system that can hold one, and
    its ``.owner`` file, open and locked."""
    for parent in candidates(environ):
        made = locked_folder(parent, "runner-")
        if made is not None:
            return made
    return None  # each full, read-only or not ours to write in


def locked_folder(parent: str, prefix: str) -> tuple[str, int] | None:
    """A new folder of ours in ``parent`` (``mkdtemp``, mode 0700), and its ``.owner`` file,
    open and locked until the descriptor is closed; None if ``parent`` cannot hold one."""
    try:
        folder = tempfile.mkdtemp(prefix=prefix, dir=parent)
    except OSError:
        return None
    try:
        # mkdtemp's mode goes through the umask: a umask of 077 or less changes nothing,
        # a stranger one could leave the folder unusable to its owner
        os.chmod(folder, 0o700)
        owner = os.open(os.path.join(folder, OWNER), _OWNER_FLAGS, 0o600)
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(owner)
            raise
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return folder, owner


_OWNER_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def sweep(parent: str, *, now: float | None = None) -> list[str]:
    """Remove the ``runner-*`` folders of ``parent`` that a runner of ours killed before it
    could (their ``.owner`` lock is free), and return them. Never another user's: a folder
    must be ours, 0700, and not a link; a young one may not have its lock yet."""
    swept: list[str] = []
    uid = os.geteuid()
    moment = time.time() if now is None else now
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return swept
    for entry in entries:
        if not entry.name.startswith("runner-"):
            continue
        try:
            status = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (
            not stat.S_ISDIR(status.st_mode)
            or status.st_uid != uid
            or stat.S_IMODE(status.st_mode) != 0o700
            or moment - status.st_mtime < SWEEP_AFTER
        ):
            continue
        if abandoned(entry.path):
            shutil.rmtree(entry.path, ignore_errors=True)
            swept.append(entry.path)
    return swept


def abandoned(folder: str) -> bool:
    """Whether ``folder``'s owner lock can be taken (its process is gone). A folder without
    one is kept: a runner of an earlier version, which takes no lock, may be using it."""
    try:
        owner = os.open(os.path.join(folder, OWNER), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: its run is alive
    finally:
        with contextlib.suppress(OSError):
            os.close(owner)
    return True


def candidates(environ: Mapping[str, str]) -> list[str]:
    """The memory file systems a private folder may be made in, in order of preference."""
    found = []
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and safe_parent(runtime):
        found.append(runtime)
    if safe_parent(SHARED_MEMORY):
        found.append(SHARED_MEMORY)
    return found


def safe_parent(path: str) -> bool:
    """Whether nobody but us (and root) can rename or remove what we make in ``path``: a folder
    owned by us or by root, and writable by others only if sticky (``/dev/shm``, ``/tmp``)."""
    try:
        status = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(status.st_mode) or status.st_uid not in (os.geteuid(), 0):
        return False
    return not status.st_mode & 0o022 or bool(status.st_mode & stat.S_ISVTX)
