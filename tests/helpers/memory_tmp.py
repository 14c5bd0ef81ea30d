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
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from runner.steps.scratch import SHARED_MEMORY, safe_parent

#: less free memory than this in /dev/shm, and the suite stays on the disk
MIN_FREE = 2 << 30
#: session folders at most, this one included: a failed session's files stay until two more start
KEEP = 3
PREFIX = "session-"


def choose() -> Path | None:
    """A new folder for this session's temporary files in ``/dev/shm``, or None to keep the
    default. Older sessions' folders go, but for the newest ones: with this one, ``KEEP``."""
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
    _remove_old(root)
    return Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))


def _remove_old(root: Path) -> None:
    sessions = sorted(
        (path for path in root.iterdir() if path.name.startswith(PREFIX)),
        key=lambda path: path.stat().st_mtime,
    )
    for old in sessions[: max(0, len(sessions) - (KEEP - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def use(folder: Path) -> None:
    """Make ``folder`` the temporary folder of this process and of those it starts."""
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # gettempdir() caches its first answer
