"""The program of the warm interpreter that :mod:`helpers.forked_runner` forks ``runner`` commands
from: it imports the runner's modules once, then, for each request on its socket, forks a child
that becomes the ``runner`` command the test asked for, as if the console script had started.

Run as ``python fork_server.py SOCKET``; it says ``ready`` on stdout once it listens. Nothing
from the tests is imported here: only the installed runner and the standard library.

Per request (one connection), the server forks a *waiter*; the waiter reads the request (the
command line, folder, environment, umask, process group and the three standard descriptors,
passed with ``SCM_RIGHTS``), forks the *command*, answers with its pid (or with the error that
kept it from starting, as ``subprocess`` would raise it), waits for it and answers with its wait
status. The command is a real process of its own: its own pid, the test's process group, the
given descriptors, folder, umask and environment, and nothing else open.

What a started interpreter would do differently, and why it does not matter here:

- the modules are already imported, with the garbage collector's permanent generation holding
  them (the runner freezes its start-up the same way, ``runner.gc_pause``);
- the hash seed is the warm interpreter's, the same for every command (set and dict order of
  str keys may repeat between commands; nothing the tests compare depends on it);
- ``/proc/PID/cmdline`` shows the warm interpreter's command line (the name, ``comm``, is set to
  ``runner``), and the command's parents are the waiter and the warm interpreter rather than the
  test worker: both started from the worker's environment as it was before any test ran.

The client sends a command here only when the interpreter's own settings (``PYTHON*``, ``LC_*``,
``LANG``) are the warm interpreter's: anything else is started for real.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import io
import os
import pickle
import pkgutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
from importlib import import_module
from typing import Any

_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1
_LENGTH = struct.Struct("!I")
_libc = ctypes.CDLL(None, use_errno=True)


def send(conn: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = pickle.dumps(message)
    payload = _LENGTH.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(conn, [payload], fds)
        conn.sendall(payload[sent:])
    else:
        conn.sendall(payload)


def receive(conn: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    """One message and the descriptors that came with it (EOFError when the peer is gone).
    Reads exactly the message's bytes: a waiter's two answers can arrive together."""
    fds: list[int] = []
    if max_fds:
        head, fds, _flags, _addr = socket.recv_fds(conn, _LENGTH.size, max_fds)
        head += _read_exactly(conn, _LENGTH.size - len(head)) if head else b""
        if not head:
            raise EOFError
    else:
        head = _read_exactly(conn, _LENGTH.size)
    (length,) = _LENGTH.unpack(head)
    return pickle.loads(_read_exactly(conn, length)), fds


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = conn.recv(size - len(buffer))
        if not chunk:
            raise EOFError
        buffer += chunk
    return bytes(buffer)


def warm_up() -> None:
    """Import every module of the runner (the server's stack included: ``runner server`` is
    started this way too; not the database migrations, scripts that alembic runs), then freeze
    what is alive."""
    import runner

    for module in pkgutil.walk_packages(runner.__path__, "runner."):
        if ".migrations" not in module.name:
            import_module(module.name)
    gc.collect()
    gc.freeze()


def serve(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.getuid():
            conn.close()
            continue
        if os.fork() == 0:
            listener.close()
            _wait_for_one(conn)  # never returns
        conn.close()
        _reap_waiters()


def _reap_waiters() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _wait_for_one(conn: socket.socket) -> None:
    """The waiter: start the command, answer its pid, then its wait status."""
    code = 0
    try:
        request, fds = receive(conn, max_fds=3)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            conn.close()
            os.close(ready_r)
            _become_command(request, fds, ready_w)  # never returns
        os.close(ready_w)
        for fd in fds:
            os.close(fd)
        failure = b""
        while chunk := os.read(ready_r, 65536):
            failure += chunk
        os.close(ready_r)
        if failure:
            os.waitpid(pid, 0)
            send(conn, {"error": pickle.loads(failure)})
        else:
            send(conn, {"pid": pid})
            _, status = os.waitpid(pid, 0)
            send(conn, {"status": status})
    except (EOFError, OSError):
        code = 1
    finally:
        os._exit(code)


def _become_command(request: dict[str, Any], fds: list[int], ready: int) -> None:
    try:
        _set_up(request, fds, ready)
    except OSError as exc:
        os.write(ready, pickle.dumps((exc.errno, exc.strerror, exc.filename)))
        os._exit(255)
    os.close(ready)
    _run_entry()


def _set_up(request: dict[str, Any], fds: list[int], ready: int) -> None:
    with_group = request["pgid"]
    if with_group is not None:
        os.setpgid(0, with_group)
    _libc.prctl(_PR_SET_NAME, b"runner", 0, 0, 0)
    _libc.prctl(_PR_SET_PDEATHSIG, 0, 0, 0, 0)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    keep = {0, 1, 2, ready}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, already closed
                os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.umask(request["umask"])
    cwd = request["cwd"]
    if cwd is not None:
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, os.fsdecode(cwd)) from None
    os.environb.clear()
    os.environb.update(request["env"])
    tempfile.tempdir = None
    time.tzset()
    sys.argv = [os.fsdecode(arg) for arg in request["argv"]]
    _reopen_standard_streams()


def _reopen_standard_streams() -> None:
    """Text streams over descriptors 0 to 2 as a starting interpreter makes them: the same
    encoding and error handlers (the environment that decides them is the same), stdout line
    buffered only on a terminal, stderr always."""
    old = (sys.stdin, sys.stdout, sys.stderr)
    sys.stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)),
        encoding=old[0].encoding,
        errors=old[0].errors,
    )
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
        encoding=old[1].encoding,
        errors=old[1].errors,
        line_buffering=os.isatty(1),
    )
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding=old[2].encoding,
        errors=old[2].errors,
        line_buffering=True,
    )
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc]


def _run_entry() -> None:
    """The console script's ``sys.exit(entry())``, then what the interpreter does at its exit:
    join the threads that are not daemons, run ``atexit``, flush the standard streams (120 when
    that fails), and end with the exit code, or by SIGINT for an uncaught ``KeyboardInterrupt``.
    """
    from runner.cli.main import entry

    code = 0
    interrupted = False
    try:
        entry()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:  # what the interpreter does with any other uncaught exception
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = 120
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def main() -> None:
    # dies with the test worker that started it; ^C in the worker's terminal is the worker's
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_up()
    serve(sys.argv[1])


if __name__ == "__main__":
    main()
