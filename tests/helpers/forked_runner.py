"""``runner`` commands started by the tests, forked from a warm interpreter instead of started
from scratch: the same code in a process of its own, without the interpreter's start and the
imports (about 0.15 s of CPU of a command's 0.17 s; the suite starts about 260).

:func:`install` changes how ``subprocess.Popen`` starts a child, in this test process only:
a ``Popen`` (or ``subprocess.run``) of the installed ``runner`` console script, with nothing but
a folder, an environment and standard streams, asks :mod:`helpers.fork_server` for a fork
instead; every other start, and any ``runner`` start with more (a new session, ``preexec_fn``,
descriptors to pass, another user, another interpreter setting such as ``LANG`` or
``PYTHONIOENCODING``), goes through ``subprocess`` unchanged. The ``Popen`` keeps its whole
behaviour: ``pid`` is the command's, signals go to it, ``wait``, ``poll`` and ``communicate``
give its exit code (negative for a signal), and its pipes are the ones ``subprocess`` made.

``RUNNER_TEST_FORK=0`` starts every command for real (to compare, or to rule this out).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers import fork_server

RUNNER = Path(sys.executable).parent / "runner"
#: the environment variables that change how an interpreter starts: a request with values other
#: than the warm interpreter's is started for real
_INTERPRETER_PREFIXES = (b"PYTHON", b"LC_")
_INTERPRETER_NAMES = (b"LANG", b"LANGUAGE")

_original_execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]
_original_internal_poll = subprocess.Popen._internal_poll  # type: ignore[attr-defined]
_original_wait = subprocess.Popen._wait  # type: ignore[attr-defined]


class _Server:
    """The warm interpreter of this test process, started once."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="runner-fork-", dir="/tmp")
        self.path = os.path.join(self.folder, "socket")
        self.env = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
        self.lock = threading.Lock()
        self.ready = False
        self.failed = False
        self.process = subprocess.Popen(
            [sys.executable, fork_server.__file__, self.path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=os.environ.copy(),
            process_group=0,
        )

    def connect(self) -> socket.socket | None:
        """A connection to the server, or None when it cannot serve (then start for real,
        saying so once: the suite is slower, not wrong)."""
        with self.lock:
            if not self.ready and not self.failed:
                assert self.process.stdout is not None
                self.ready = self.process.stdout.readline() == b"ready\n"
        if not self.ready or self.process.poll() is not None:
            self._failed(f"it exited with {self.process.poll()}")
            return None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
        except OSError as exc:
            conn.close()
            self._failed(str(exc))
            return None
        return conn

    def _failed(self, why: str) -> None:
        if not self.failed:
            self.failed = True
            warnings.warn(
                f"runner commands start from scratch: the warm interpreter does not serve ({why})",
                stacklevel=1,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def same_interpreter(self, env: dict[bytes, bytes]) -> bool:
        keys = {k for k in (*env, *self.env) if _interpreter_setting(k)}
        return all(env.get(k) == self.env.get(k) for k in keys)


_server: _Server | None = None
#: how many :func:`for_real` blocks are open
_for_real = 0


def _interpreter_setting(name: bytes) -> bool:
    return name.startswith(_INTERPRETER_PREFIXES) or name in _INTERPRETER_NAMES


def install() -> None:
    """Route this process's starts of the ``runner`` command to forks (once the server is
    started by :func:`start`); a no-op with ``RUNNER_TEST_FORK=0`` or without the command."""
    if os.environ.get("RUNNER_TEST_FORK") == "0" or not RUNNER.is_file():
        return
    subprocess.Popen._execute_child = _execute_child  # type: ignore[attr-defined]
    subprocess.Popen._internal_poll = _internal_poll  # type: ignore[attr-defined]
    subprocess.Popen._wait = _wait  # type: ignore[attr-defined]


def start() -> None:
    """Start the warm interpreter (its imports go on while the first tests run)."""
    global _server
    if _server is None and subprocess.Popen._execute_child is _execute_child:  # type: ignore[attr-defined]
        _server = _Server()


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def forked(process: subprocess.Popen[Any]) -> bool:
    """Whether ``process`` was forked from the warm interpreter."""
    return hasattr(process, "_fork_conn")


@contextlib.contextmanager
def for_real() -> Iterator[None]:
    """Start ``runner`` for real inside the block (to compare a forked command with)."""
    global _for_real
    _for_real += 1
    try:
        yield
    finally:
        _for_real -= 1


def _is_runner(args: Any, executable: Any, cwd: Any, env: dict[bytes, bytes]) -> list[bytes] | None:
    """The command line to fork, when ``args`` start the installed ``runner`` script."""
    if executable is not None or isinstance(args, (str, bytes, os.PathLike)):
        return None
    argv = [os.fsencode(arg) for arg in args]
    if not argv:
        return None
    program = os.fsdecode(argv[0])
    if "/" not in program:
        path = env.get(b"PATH")
        found = shutil.which(program, path=None if path is None else os.fsdecode(path))
        if found is None:
            return None
        program = found
    elif not os.path.isabs(program):
        program = os.path.join(os.fsdecode(cwd) if cwd is not None else os.getcwd(), program)
    try:
        if not os.path.samefile(program, RUNNER):
            return None
    except OSError:
        return None
    return [os.fsencode(program), *argv[1:]]


def _execute_child(
    self: subprocess.Popen[Any],
    args: Any,
    executable: Any,
    preexec_fn: Any,
    close_fds: bool,
    pass_fds: Any,
    cwd: Any,
    env: Any,
    startupinfo: Any,
    creationflags: int,
    shell: bool,
    p2cread: int,
    p2cwrite: int,
    c2pread: int,
    c2pwrite: int,
    errread: int,
    errwrite: int,
    restore_signals: bool,
    gid: Any,
    gids: Any,
    uid: Any,
    umask: int,
    start_new_session: bool,
    process_group: Any,
) -> None:
    plain = (
        _server is not None
        and not _for_real
        and not shell
        and preexec_fn is None
        and close_fds
        and not pass_fds
        and restore_signals
        and gid is None
        and gids is None
        and uid is None
        and umask < 0
        and not start_new_session
        and process_group in (None, -1)
    )
    if plain:
        environ = {
            os.fsencode(k): os.fsencode(v) for k, v in (os.environ if env is None else env).items()
        }
        argv = _is_runner(args, executable, cwd, environ)
        conn = (
            _server.connect()  # type: ignore[union-attr]
            if argv is not None and _server.same_interpreter(environ)  # type: ignore[union-attr]
            else None
        )
        if conn is not None:
            _fork(self, conn, argv, cwd, environ, (p2cread, c2pwrite, errwrite))  # type: ignore[arg-type]
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)  # type: ignore[attr-defined]
            return
    _original_execute_child(
        self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
        creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
        restore_signals, gid, gids, uid, umask, start_new_session, process_group,
    )  # fmt: skip


def _fork(
    self: subprocess.Popen[Any],
    conn: socket.socket,
    argv: list[bytes],
    cwd: Any,
    env: dict[bytes, bytes],
    streams: tuple[int, int, int],
) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    fds = [
        own if own != -1 else inherited for own, inherited in zip(streams, (0, 1, 2), strict=True)
    ]
    request = {
        "argv": argv,
        "cwd": None if cwd is None else os.fsencode(cwd),
        "env": env,
        "umask": umask,
        "pgid": os.getpgrp(),
    }
    try:
        fork_server.send(conn, request, fds)
        answer, _ = fork_server.receive(conn)
    except BaseException:
        conn.close()
        raise
    if "error" in answer:
        conn.close()
        number, message, filename = answer["error"]
        raise OSError(number, message, filename)
    self.pid = answer["pid"]
    self._child_created = True  # type: ignore[attr-defined]
    self._fork_conn = conn  # type: ignore[attr-defined]


class LostStatus(Exception):
    """The waiter ended without the command's wait status (the harness failed, not the test)."""


def _status(self: subprocess.Popen[Any], timeout: float | None) -> bool:
    """Read the command's wait status from the waiter, within ``timeout`` (None: as long as it
    takes); whether it came."""
    conn: socket.socket = self._fork_conn  # type: ignore[attr-defined]
    if timeout is not None and not select.select([conn], [], [], timeout)[0]:
        return False
    try:
        answer, _ = fork_server.receive(conn)
    except (EOFError, OSError) as exc:
        raise LostStatus(f"no exit status for {self.args!r} (pid {self.pid}): {exc!r}") from exc
    finally:
        conn.close()
    self._handle_exitstatus(answer["status"])  # type: ignore[attr-defined]
    return True


def _internal_poll(self: subprocess.Popen[Any], _deadstate: int | None = None, *args: Any) -> Any:
    if not hasattr(self, "_fork_conn"):
        return _original_internal_poll(self, _deadstate, *args)
    if self.returncode is None and self._waitpid_lock.acquire(False):  # type: ignore[attr-defined]
        try:
            if self.returncode is None:
                _status(self, 0)
        except LostStatus:
            if _deadstate is None:
                raise
            self.returncode = _deadstate  # the Popen's end (``__del__``): nothing to tell
        finally:
            self._waitpid_lock.release()  # type: ignore[attr-defined]
    return self.returncode


def _wait(self: subprocess.Popen[Any], timeout: float | None) -> int:
    if not hasattr(self, "_fork_conn"):
        return _original_wait(self, timeout)  # type: ignore[no-any-return]
    deadline = None if timeout is None else time.monotonic() + timeout
    while self.returncode is None:
        with self._waitpid_lock:  # type: ignore[attr-defined]
            if self.returncode is not None:
                break
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not _status(self, left) and deadline is not None:
                raise subprocess.TimeoutExpired(self.args, timeout)  # type: ignore[arg-type]
    return self.returncode
