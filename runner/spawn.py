"""How :func:`runner.process.run_process` starts a step's process: ``os.posix_spawn`` where it
can, ``subprocess.Popen`` elsewhere, with the same result either way.

A step's process runs in a session of its own, with ``/dev/null`` as stdin, one pipe as its
stdout and stderr, no descriptor of the runner's but those, and SIGPIPE and SIGXFSZ at their
defaults (Python ignores them; ``yes | head`` would complain of a broken pipe). ``Popen``
prepares that in Python (the environment encoded variable by variable, a pipe for exec
errors) before its fork; ``posix_spawn`` does it in the C library. That is 40-50 us less of a
step's 0.2 ms start, about 4 % of bash's own step on the benchmark's machine (bench/README.md,
``step_cost``).

``os.posix_spawn`` can neither set the working folder nor close descriptors it was not told
of. So it is used only where the step runs in the runner's own working folder (the workspace,
as a rule), and once per process every inherited descriptor (one the runner's parent left
open) is made close-on-exec, as ``Popen(close_fds=True)`` closes them in its child; every
descriptor Python itself opens already is. Elsewhere (another working folder, a program found
through a relative ``PATH`` folder or not at all, stdin or the pipe on 0-2, no ``/proc`` to
list descriptors, a system without ``posix_spawn``), ``Popen`` as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
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
    executable = program(argv[0], env)
    if executable is not None and _can_spawn(cwd, stdin, output):
        pid = os.posix_spawn(
            executable,
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
        return Spawned(pid)
    return subprocess.Popen(
        list(argv),
        executable=executable,
        stdin=stdin,
        stdout=output,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


#: what ``Popen``'s ``restore_signals`` sets back to their defaults in the child
_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)


def _can_spawn(cwd: str | None, stdin: int, output: int) -> bool:
    # 0-2: dup2 of a descriptor onto itself would leave it close-on-exec on some C libraries
    if stdin <= 2 or output <= 2 or not _SPAWN:
        return False
    if cwd is not None and cwd != os.getcwd():
        return False
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


#: what :func:`program` found, by name and ``PATH``
_PROGRAMS: dict[tuple[str, str], str] = {}


def program(name: str, env: Mapping[str, str]) -> str | None:
    """The file ``exec`` would start for ``name`` with ``env``'s ``PATH`` (``name`` itself if
    it holds a ``/``), or None to let it search. Given its path, neither ``posix_spawn`` nor
    ``Popen`` tries each folder of ``PATH`` in the child until one holds the program while the
    runner waits (``Popen``'s search cost about 25 us of a step's start). Only where that search
    would find the same file: a ``PATH`` of absolute folders (a relative one is relative to the
    child's working folder), the answer kept while it is still an executable file."""
    if "/" in name:
        return name  # exec takes it as it is (relative to the working folder)
    path = env.get("PATH")
    if path is None or not name:
        return None
    key = (name, path)
    found = _PROGRAMS.get(key)
    if found is not None and _executable(found):
        return found
    if not all(folder.startswith("/") for folder in path.split(os.pathsep)):
        return None
    found = shutil.which(name, path=path)
    if found is not None:
        _PROGRAMS[key] = found
    return found


def _executable(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode) and os.access(path, os.X_OK)
    except OSError:
        return False
