"""How :func:`runner.process.run_process` starts a step's process: ``os.posix_spawn`` where it
can, ``subprocess.Popen`` elsewhere.

A step's process runs in a session of its own, with ``/dev/null`` as stdin, one pipe as its
stdout and stderr, no descriptor of the runner's but those, SIGPIPE and SIGXFSZ at their
defaults (Python ignores them; ``yes | head`` would complain of a broken pipe), and the program
that exec's search of the child's ``PATH`` finds. ``Popen`` prepares that in Python (the
environment encoded variable by variable, the list of places to try, a pipe for exec errors)
before its fork; ``posix_spawn`` does it in the C library. That is 40-50 us less of a step's
0.2 ms start, about 4 % of bash's own step on the benchmark's machine (bench/README.md,
``step_cost``).

``os.posix_spawn`` can neither set the working folder nor close descriptors it was not told
of. So it is used only where the step runs in the runner's own working folder (the workspace,
as a rule), and once per process every inherited descriptor (one the runner's parent left
open) is made close-on-exec, as ``Popen(close_fds=True)`` closes them in its child; every
descriptor Python itself opens already is. Elsewhere (another working folder, the runner's own
removed, stdin or the pipe on 0-2, no ``/proc`` to list descriptors, a system without
``posix_spawn``), ``Popen`` as before.

One difference remains, glibc's: its ``posix_spawn`` leaves its two internal signals (32 and
33, below ``SIGRTMIN``) ignored in the child, and nothing can set them back (they are not valid
for ``setsigdef``). No program is sent those (glibc's own threads use them and set their
handlers at start, whatever they inherit); a bash step that traps signal 33 cannot.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol


class Child(Protocol):
    """What :mod:`runner.process` needs of a started process (a ``Popen`` is one)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def start(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None, stdin: int, output: int
) -> Child:
    """Start ``argv`` as a step's process (see the module's docstring); ``OSError`` if it
    cannot be (not found, not executable)."""
    if _can_spawn(cwd, stdin, output):
        return _spawn(argv, env, stdin, output)
    return subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=output,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def _spawn(argv: Sequence[str], env: Mapping[str, str], stdin: int, output: int) -> Spawned:
    """``posix_spawn`` of the program exec's own search finds: ``Popen``'s child tries each
    folder of the child's ``PATH`` in turn, passes over those where it is missing, and reports
    the first other error only if none could start it (a file without a ``#!`` line earlier in
    ``PATH`` is passed over). Here the same, with a ``stat`` for each folder where it may be
    missing instead of a failed exec, and searched again at each start (a program installed
    into an earlier folder by a step is the one the next step gets)."""
    first: OSError | None = None
    name = argv[0]
    folders = [""] if "/" in name else os.get_exec_path(env)
    for folder in folders:
        path = os.path.join(folder, name)
        if folder:
            try:
                os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                pass  # a folder we may not search: exec says why below
        try:
            pid = os.posix_spawn(
                path,
                list(argv),
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, stdin, 0),
                    (os.POSIX_SPAWN_DUP2, output, 1),
                    (os.POSIX_SPAWN_DUP2, output, 2),
                ],
                setsid=True,
                setsigdef=_DEFAULT_SIGNALS,
            )
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and first is None:
                first = exc
            continue
        return Spawned(pid)
    if first is not None:
        raise first
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


#: what ``Popen``'s ``restore_signals`` sets back to their defaults in the child
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)


def _can_spawn(cwd: str | None, stdin: int, output: int) -> bool:
    # 0-2: dup2 of a descriptor onto itself would leave it close-on-exec on some C libraries
    if stdin <= 2 or output <= 2 or not _SPAWN:
        return False
    if cwd is not None:
        try:
            if cwd != os.getcwd():
                return False
        except OSError:
            return False  # the runner's own folder was removed: the step's may still be there
    return _inherited_closed()


_SPAWN = hasattr(os, "posix_spawn") and hasattr(os, "POSIX_SPAWN_DUP2")
#: whether the descriptors this process inherited were made close-on-exec (None: not yet)
_CLOSED: list[bool] = []
_CLOSED_LOCK = threading.Lock()
_FDS = "/proc/self/fd"


def _inherited_closed() -> bool:
    """Make every descriptor above 2 close-on-exec, once a process; False where they cannot be
    listed (then ``Popen``, which closes them in the child, every time)."""
    with _CLOSED_LOCK:
        if not _CLOSED:
            try:
                names = os.listdir(_FDS)
            except OSError:
                names = None
            if names is not None:
                for name in names:
                    if name.isdigit() and int(name) > 2:
                        # the listing's own descriptor, closed by now, among them
                        with contextlib.suppress(OSError):
                            os.set_inheritable(int(name), False)
            _CLOSED.append(names is not None)
        return _CLOSED[0]


class Spawned:
    """A process started with ``posix_spawn``: its exit status, as ``Popen`` keeps it
    (``-N`` for a process killed by signal N)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            code = self._reap(0)
            assert code is not None
            return code
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while (code := self._reap(os.WNOHANG)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)
        return code

    def _reap(self, options: int) -> int | None:
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, options)
                except ChildProcessError:
                    # SIGCHLD ignored, the child reaped by the kernel: it is gone and its status
                    # with it (``Popen`` says 0 then too)
                    self.returncode = 0
                    return 0
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
