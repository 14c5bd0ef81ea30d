"""The suite's temporary files in memory (``/dev/shm``) instead of on the disk.

The suite writes about 650 MB of short-lived files (git repositories, SQLite databases, logs,
the 50 MB output tests). On a disk, the kernel's writeback of them stalled unrelated file
operations of every worker for seconds (``/proc/pressure/io`` showed a fifth of the time fully
stalled): the same suite took 158-196 s on the disk and 137 s with ``TMPDIR`` in memory, with
10 % less CPU. What the tests check does not depend on the disk: the runner's ``fsync`` calls
are the same calls on either.

The controller process picks the folder before xdist starts its workers, which inherit
``TMPDIR`` as every process the tests start does. A ``TMPDIR`` already set is left alone, and
so is a machine whose ``/dev/shm`` is small (a container's default is 64 MB) or not ours alone.

Each session's folder holds a lock on its ``.owner`` file for as long as the session runs, so
that another session of the same user (another checkout, a second terminal) never removes it:
the runner's own scratch folders' lock (``runner/steps/scratch.py``), made and probed by its
functions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from runner.steps.scratch import SHARED_MEMORY, abandoned, locked_folder, safe_parent

#: less free memory than this in /dev/shm, and the suite stays on the disk
MIN_FREE = 2 << 30
#: the folders of ended sessions left behind (failed or interrupted: one that passes removes its
#: own) that a new session keeps, the newest; older ones go
KEEP_ENDED = 2
PREFIX = "session-"


class Session:
    """This session's folder, and the lock that says it is in use."""

    def __init__(self, folder: Path, lock: int) -> None:
        self.folder = folder
        self._lock = lock

    def end(self, *, remove: bool) -> None:
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._lock)


def choose() -> Session | None:
    """A new folder for this session's temporary files in ``/dev/shm``, locked as in use, or
    None to keep the default. Ended sessions' folders go, but for the newest ``KEEP_ENDED``."""
    if "TMPDIR" in os.environ or not safe_parent(SHARED_MEMORY):
        return None
    try:
        usage = shutil.disk_usage(SHARED_MEMORY)
    except OSError:
        return None
    if usage.free < MIN_FREE:
        return None
    root = Path(SHARED_MEMORY) / f"runner-tests-{os.geteuid()}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        status = root.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid() or status.st_mode & 0o077:
        return None  # made by someone else, or opened to others: not a place for our files
    _remove_ended(root)
    made = locked_folder(str(root), PREFIX)  # None when memory is full, say: then the disk
    return None if made is None else Session(Path(made[0]), made[1])


def use(folder: Path) -> None:
    """Make ``folder`` the temporary folder of this process and of those it starts."""
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # gettempdir() caches its first answer


def _remove_ended(root: Path) -> None:
    ended: list[tuple[float, Path]] = []
    for path in root.iterdir():
        with contextlib.suppress(OSError):  # another session may remove it meanwhile
            status = path.lstat()
            if path.name.startswith(PREFIX) and stat.S_ISDIR(status.st_mode) and abandoned(path):
                ended.append((status.st_mtime, path))
    ended.sort()
    for _mtime, old in ended[: max(0, len(ended) - KEEP_ENDED)]:
        shutil.rmtree(old, ignore_errors=True)
