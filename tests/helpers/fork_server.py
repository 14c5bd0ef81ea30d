"""The program of the warm interpreter that :mod:`helpers.forked_runner` forks ``runner`` commands
from: it imports the runner's modules once, then, for each request on its socket, forks a child
that becomes the ``runner`` command the test asked for, as if the console script had started.

Run as ``python fork_server.py SOCKET PARENT_PID``; it says ``ready`` and its
:func:`process_state` on stdout once it listens. Nothing from the tests is imported here: only the
installed runner and the standard library.

Per request (one connection), the server forks a *waiter*; the waiter reads the request (the
command line, folder, environment, umask, process group and the three standard descriptors,
passed with ``SCM_RIGHTS``), forks the *command*, answers with its pid (or with the error that
kept it from starting, as ``subprocess`` would raise it), waits for it and answers with its wait
status, and reaps it only once the test has read that (until then it is a zombie, as a child
of the test would be). The command is a real process of its own: its own pid, the test's
process group, the given descriptors, folder, umask and environment, nothing else open, and
standard streams made as the interpreter makes them (``PYTHONUNBUFFERED`` included).

What a started interpreter would do differently, and why it does not matter here:

- the modules are already imported, with the garbage collector's permanent generation holding
  them (the runner freezes its start-up the same way, ``runner.gc_pause``);
- the hash seed is the warm interpreter's, the same for every command (set and dict order of
  str keys may repeat between commands; nothing the tests compare depends on it);
- ``/proc/PID/cmdline`` and ``environ`` show the warm interpreter's (the name, ``comm``, is set
  to ``runner``), and the command's parents are the waiter and the warm interpreter rather than
  the test worker: the client starts for real any command given the record key
  (``runner.process.RUNNER_ONLY``), whose hiding depends on them;
- the command's CPU time is not in the test process's ``RUSAGE_CHILDREN``;
- the interpreter's own end (objects' ``__del__`` at finalisation) does not run: the command
  ends as CPython's ``Py_FinalizeEx`` begins (threads joined, ``atexit``, streams flushed).

The client sends a command here only when the interpreter's own settings (``PYTHON*``, ``LC_*``,
``LANG``) and the process's state a child inherits (:func:`process_state`: ignored and blocked
signals, limits, priority, CPUs) are the warm interpreter's: anything else is started for real.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import io
import json
import os
import pickle
import pkgutil
import resource
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
_PR_GET_NO_NEW_PRIVS = 39
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


def status_field(name: str) -> str:
    """One field of this process's ``/proc/self/status`` (``SigIgn``, ``Umask``)."""
    with open("/proc/self/status") as status:
        return next(line.split()[1] for line in status if line.startswith(f"{name}:"))


def process_state() -> str:
    """What a child inherits from this process beside its descriptors, environment, folder and
    umask: ignored signals, the calling thread's blocked ones, the limits, the priority, the
    CPUs it may run on and ``no_new_privs``. A command is forked only from a warm interpreter
    whose state, when it started, was the test process's now."""
    ignored = status_field("SigIgn")
    limits = {
        name: resource.getrlimit(getattr(resource, name))
        for name in sorted(dir(resource))
        if name.startswith("RLIMIT_")
    }
    return json.dumps(
        {
            "ignored": ignored,
            "blocked": sorted(int(sig) for sig in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
            "limits": limits,
            "priority": os.getpriority(os.PRIO_PROCESS, 0),
            "cpus": sorted(os.sched_getaffinity(0)),
            "no_new_privs": _libc.prctl(_PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
        },
        sort_keys=True,
    )


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


def serve(path: str, state: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print(f"ready {state}", flush=True)
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
    """The waiter: start the command, answer its pid (or why it did not start), then its wait
    status; reap it once the test has closed the connection (having read the status)."""
    code = 1
    try:
        request, fds = receive(conn, max_fds=3)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _become_command(conn, request, fds, ready_r, ready_w)  # never returns
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
            send(conn, {"status": _exit_status(pid)})
            while conn.recv(1):
                pass
            os.waitpid(pid, 0)
        code = 0
    except BaseException:  # the test is gone: nothing to tell; init reaps the command
        pass
    finally:
        os._exit(code)


def _exit_status(pid: int) -> int:
    """The command's wait status, as ``waitpid`` gives it, leaving it a zombie (``WNOWAIT``)."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert info is not None
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    return info.si_status | (0x80 if info.si_code == os.CLD_DUMPED else 0)


def _become_command(
    conn: socket.socket, request: dict[str, Any], fds: list[int], ready_r: int, ready_w: int
) -> None:
    """Never returns: whatever happens, the process ends here, and never with 0 unless the
    command did."""
    code = 255
    try:
        conn.close()
        os.close(ready_r)
        try:
            _set_up(request, fds, ready_w)
        except BaseException as exc:
            os.write(ready_w, pickle.dumps(_why(exc)))
            return
        os.close(ready_w)
        code = _run_entry()
    finally:
        os._exit(code)


def _why(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, OSError):
        return ("OSError", exc.errno, exc.strerror, exc.filename)
    return (type(exc).__name__, str(exc))


def _set_up(request: dict[str, Any], fds: list[int], ready: int) -> None:
    os.setpgid(0, request["pgid"])
    _libc.prctl(_PR_SET_NAME, b"runner", 0, 0, 0)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    keep = {0, 1, 2, ready}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, already closed
                os.close(fd)
    # as the interpreter starts: SIGINT raises KeyboardInterrupt, unless it came ignored
    signal.signal(signal.SIGINT, signal.SIG_IGN if _SIGINT_IGNORED else signal.default_int_handler)
    os.umask(request["umask"])
    os.chdir(request["cwd"])
    os.environb.clear()
    os.environb.update(request["env"])
    tempfile.tempdir = None
    time.tzset()
    sys.argv = [os.fsdecode(arg) for arg in request["argv"]]
    _reopen_standard_streams()


#: whether SIGINT was ignored when this interpreter started (then its commands keep it so)
_SIGINT_IGNORED = False
#: whether this interpreter's standard streams write through (``-u``, ``PYTHONUNBUFFERED``:
#: not in ``sys.flags``), as its commands' must
_UNBUFFERED = bool(getattr(sys.stdout, "write_through", False))


def _reopen_standard_streams() -> None:
    """Text streams over descriptors 0 to 2 made as CPython's ``create_stdio`` makes them: the
    same encoding and error handlers (the environment that decides them is the same), no
    newline translation, unbuffered writes under ``PYTHONUNBUFFERED``, line buffering on a
    terminal and always on stderr, and the names ``<stdin>``, ``<stdout>``, ``<stderr>``."""
    old = (sys.stdin, sys.stdout, sys.stderr)
    made = []
    for fd, (mode, name, like) in enumerate(
        [("r", "<stdin>", old[0]), ("w", "<stdout>", old[1]), ("w", "<stderr>", old[2])]
    ):
        buffered = fd == 0 or not _UNBUFFERED
        binary: Any = open(fd, mode + "b", buffering=-1 if buffered else 0, closefd=False)  # noqa: SIM115
        (binary.raw if buffered else binary).name = name
        made.append(
            io.TextIOWrapper(
                binary,
                encoding=like.encoding,
                errors=like.errors,
                newline="\n",
                line_buffering=buffered and (os.isatty(fd) or fd == 2),
                write_through=not buffered,
            )
        )
    sys.stdin, sys.stdout, sys.stderr = made
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = made  # type: ignore[misc]


def _run_entry() -> int:
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
    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except BaseException as exc:
        _unraisable("on threading shutdown", exc)
    try:
        atexit._run_exitfuncs()
    except BaseException as exc:
        _unraisable("in atexit", exc)
    try:
        sys.stdout.flush()
    except BaseException as exc:
        _unraisable(f"in: {sys.stdout!r}", exc)
        code = 120
    try:
        sys.stderr.flush()
    except BaseException:
        code = 120  # CPython says nothing: there is nowhere to say it
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _unraisable(where: str, exc: BaseException) -> None:
    """What ``PyErr_WriteUnraisable`` prints at the interpreter's end."""
    with contextlib.suppress(BaseException):
        sys.stderr.write(f"Exception ignored {where}\n")
        traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def main() -> None:
    global _SIGINT_IGNORED
    # dies with the test process that started it (checked after, for one that died before);
    # ^C in the test's terminal is the test's
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(sys.argv[2]):
        sys.exit(1)
    state = process_state()
    _SIGINT_IGNORED = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the console script's own folder first on the path, not this one (tests/helpers, whose
    # modules could shadow a top-level import)
    sys.path[0] = os.path.dirname(sys.executable)
    warm_up()
    serve(sys.argv[1], state)


if __name__ == "__main__":
    main()
