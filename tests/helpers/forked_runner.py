"""``runner`` commands started by the tests, forked from a warm interpreter instead of started
from scratch: the same code in a process of its own, without the interpreter's start and the
imports (about 0.15 s of CPU of a command's 0.17 s; the suite starts about 260).

:func:`install` changes how ``subprocess.Popen`` starts a child, in this test process only:
a ``Popen`` (or ``subprocess.run``) of the installed ``runner`` console script, with nothing but
a folder, an environment and standard streams, asks :mod:`helpers.fork_server` for a fork
instead. Every other start goes through ``subprocess`` unchanged, and so does a ``runner`` start
with more or other than the warm interpreter has:

- a new session or process group, ``preexec_fn``, descriptors to pass, another user or umask
  argument, ``restore_signals=False``, an ``executable`` or a shell;
- another interpreter setting (``LANG``, ``LC_*``, ``PYTHON*``);
- the record key (``runner.process.RUNNER_ONLY``): the runner hides it from its steps through
  ``/proc``, where a forked command shows the warm interpreter's environment and parents;
- a process state other than the warm interpreter's when it started (ignored or blocked
  signals, limits, priority, CPUs: :func:`helpers.fork_server.process_state`);
- a standard descriptor of this process that is closed, or an environment ``subprocess`` would
  refuse.

The ``Popen`` keeps its whole behaviour: ``pid`` is the command's, signals go to it, ``wait``,
``poll`` and ``communicate`` give its exit code (negative for a signal) and honour their
timeouts, its pipes are the ones ``subprocess`` made, and it stays a zombie until its status is
read. ``RUNNER_TEST_FORK=0`` starts every command for real (to compare, or to rule this out);
``.ci/run`` runs the suite once each way.
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
from runner.process import RUNNER_ONLY

RUNNER = Path(sys.executable).parent / "runner"
#: the environment variables that change how an interpreter starts: a request with values other
#: than the warm interpreter's is started for real
_INTERPRETER_PREFIXES = (b"PYTHON", b"LC_")
_INTERPRETER_NAMES = (b"LANG", b"LANGUAGE")
_KEEP_OUT = {os.fsencode(name) for name in RUNNER_ONLY}
#: seconds for the warm interpreter to say it is ready, or to answer a command's pid
ANSWER_SECONDS = 60.0
#: what ``RUNNER_TEST_FORK`` may say to start every command for real
_OFF = {"0", "false", "no", "off"}

_original_execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]
_original_internal_poll = subprocess.Popen._internal_poll  # type: ignore[attr-defined]
_original_wait = subprocess.Popen._wait  # type: ignore[attr-defined]


class LostStatus(Exception):
    """The waiter ended without the command's pid or wait status (the harness failed, not the
    test)."""


class _Server:
    """The warm interpreter of this test process, started once."""

    def __init__(self) -> None:
        self.folder = _socket_folder()
        self.path = os.path.join(self.folder, "socket")
        self.env = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
        self.lock = threading.Lock()
        self.ready = False
        self.failed = False
        self.state = ""
        self.process = subprocess.Popen(
            [sys.executable, fork_server.__file__, self.path, str(os.getpid())],
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
                self.ready = self._read_ready()
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

    def _read_ready(self) -> bool:
        stdout = self.process.stdout
        assert stdout is not None
        if not _readable(stdout.fileno(), ANSWER_SECONDS):
            self._failed(f"not ready within {ANSWER_SECONDS:.0f} s")
            return False
        word, _, state = stdout.readline().decode().rstrip("\n").partition(" ")
        self.state = state
        return word == "ready"

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


def _socket_folder() -> str:
    """A private folder for the socket: in the session's temporary folder (removed with it,
    even when this process is killed), unless its path is too long for a socket's."""
    folder = tempfile.mkdtemp(prefix="runner-fork-")
    if len(folder) < 90:
        return folder
    os.rmdir(folder)
    return tempfile.mkdtemp(prefix="runner-fork-", dir="/tmp")


def _readable(fd: int, timeout: float | None) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


_server: _Server | None = None
#: how many :func:`for_real` blocks are open
_for_real = 0


def _interpreter_setting(name: bytes) -> bool:
    return name.startswith(_INTERPRETER_PREFIXES) or name in _INTERPRETER_NAMES


def install() -> None:
    """Route this process's starts of the ``runner`` command to forks (once the server is
    started by :func:`start`); a no-op with ``RUNNER_TEST_FORK=0`` or without the command."""
    if os.environ.get("RUNNER_TEST_FORK", "").lower() in _OFF or not RUNNER.is_file():
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
def for_real(real: bool = True) -> Iterator[None]:
    """Start ``runner`` for real inside the block (to compare a forked command with); with
    ``real`` false, as everywhere else."""
    global _for_real
    _for_real += real
    try:
        yield
    finally:
        _for_real -= real


def _runner_argv(args: list[Any], env: dict[bytes, bytes], cwd: str) -> list[bytes] | None:
    """The command line to fork, when ``args`` start the installed ``runner`` script (found as
    ``subprocess`` would: on the given environment's ``PATH``, or the default one)."""
    if not args:
        return None
    argv = [os.fsencode(arg) for arg in args]
    program = os.fsdecode(argv[0])
    if "/" not in program:
        path = os.pathsep.join(os.fsdecode(p) for p in os.get_exec_path(env))  # type: ignore[arg-type]
        found = shutil.which(program, path=path)
        if found is None:
            return None
        program = found
    program = os.path.join(cwd, program)
    try:
        if not os.path.samefile(program, RUNNER):
            return None
    except OSError:
        return None
    return [os.fsencode(program), *argv[1:]]


def _plain_environment(env: dict[bytes, bytes]) -> bool:
    """An environment ``subprocess`` takes, without the record key."""
    return not any(
        not name or b"=" in name or b"\0" in name or b"\0" in value or name in _KEEP_OUT
        for name, value in env.items()
    )


def _standard_descriptors_open(streams: tuple[int, int, int], ours: set[int]) -> bool:
    """Whether each standard descriptor the command inherits is open in this process, and not
    one of the ends of the pipes ``subprocess`` made (``ours``; numbered 0 to 2 when this
    process had one of them closed), which a real start closes in the child."""
    for own, inherited in zip(streams, (0, 1, 2), strict=True):
        if own == -1:
            if inherited in ours:
                return False
            try:
                os.fstat(inherited)
            except OSError:
                return False
    return True


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
    if not isinstance(args, (str, bytes, os.PathLike)):
        args = list(args)  # once: an iterator is read here, and again by subprocess otherwise
    plain = (
        _server is not None
        and not _for_real
        and not shell
        and executable is None
        and isinstance(args, list)
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
    streams = (p2cread, c2pwrite, errwrite)
    if plain and _standard_descriptors_open(streams, {p2cwrite, c2pread, errread}):
        environ = {
            os.fsencode(k): os.fsencode(v) for k, v in (os.environ if env is None else env).items()
        }
        folder = os.path.abspath(os.fsdecode(cwd)) if cwd is not None else os.getcwd()
        argv = _runner_argv(args, environ, folder)
        conn = None
        if (
            argv is not None and _plain_environment(environ) and _server.same_interpreter(environ)  # type: ignore[union-attr]
        ):
            conn = _server.connect()  # type: ignore[union-attr]
        if conn is not None and fork_server.process_state() == _server.state:  # type: ignore[union-attr]
            request = {"argv": argv, "cwd": folder, "env": environ}
            _fork(self, conn, request, cwd, streams)
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)  # type: ignore[attr-defined]
            return
        if conn is not None:
            conn.close()
    _original_execute_child(
        self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
        creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
        restore_signals, gid, gids, uid, umask, start_new_session, process_group,
    )  # fmt: skip


def _umask() -> int:
    """This process's umask, read without setting it (another thread may be creating files)."""
    return int(fork_server.status_field("Umask"), 8)


def _fork(
    self: subprocess.Popen[Any],
    conn: socket.socket,
    request: dict[str, Any],
    cwd: Any,
    streams: tuple[int, int, int],
) -> None:
    fds = [
        own if own != -1 else inherited for own, inherited in zip(streams, (0, 1, 2), strict=True)
    ]
    request.update(umask=_umask(), pgid=os.getpgrp())
    try:
        fork_server.send(conn, request, fds)
        if not _readable(conn.fileno(), ANSWER_SECONDS):
            raise LostStatus(f"no pid for {self.args!r} within {ANSWER_SECONDS:.0f} s")
        answer, _ = fork_server.receive(conn)
    except EOFError as exc:
        conn.close()
        raise LostStatus(f"no pid for {self.args!r}: the waiter ended") from exc
    except BaseException:
        conn.close()
        raise
    if "error" in answer:
        conn.close()
        kind, *details = answer["error"]
        if kind == "OSError":
            number, message, filename = details
            # as subprocess names it: the folder as it was given
            raise OSError(number, message, cwd if filename == request["cwd"] else filename)
        raise subprocess.SubprocessError(f"{kind}: {details[0]}")
    self.pid = answer["pid"]
    self._child_created = True  # type: ignore[attr-defined]
    self._fork_conn = conn  # type: ignore[attr-defined]


def _status(self: subprocess.Popen[Any], timeout: float | None) -> bool:
    """Read the command's wait status from the waiter, within ``timeout`` (None: as long as it
    takes); whether it came. Closing the connection lets the waiter reap the command."""
    conn: socket.socket = self._fork_conn  # type: ignore[attr-defined]
    if not _readable(conn.fileno(), timeout):
        return False
    try:
        answer, _ = fork_server.receive(conn)
    except (EOFError, OSError) as exc:
        self.returncode = 255  # later calls (a test's clean-up, __del__) have nothing to wait for
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
        finally:
            self._waitpid_lock.release()  # type: ignore[attr-defined]
    return self.returncode


def _wait(self: subprocess.Popen[Any], timeout: float | None) -> int:
    """As ``subprocess`` waits: without a timeout, blocking; with one, polling and never holding
    the lock longer than a short read, so that a thread waiting for ever does not stretch the
    timeout of another."""
    if not hasattr(self, "_fork_conn"):
        return _original_wait(self, timeout)  # type: ignore[no-any-return]
    if timeout is None:
        while self.returncode is None:
            with self._waitpid_lock:  # type: ignore[attr-defined]
                if self.returncode is None:
                    _status(self, None)
        return self.returncode
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while self.returncode is None:
        if self._waitpid_lock.acquire(False):  # type: ignore[attr-defined]
            try:
                if self.returncode is None:
                    _status(self, min(0.05, max(0.0, deadline - time.monotonic())))
            finally:
                self._waitpid_lock.release()  # type: ignore[attr-defined]
            if self.returncode is not None:
                break
        elif deadline - time.monotonic() > 0:
            time.sleep(min(delay, 0.05))
            delay *= 2
        if time.monotonic() >= deadline and self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
    return self.returncode
