"""The one entry point through which the runner starts processes.

Argument lists only, never a shell string. Each process leads a new session (its own process
group), so a timeout or a cancellation stops it *and* everything it started. Two ways in:
:func:`run_process` for steps (output read line by line as it comes and handed to a callback, which
masks and logs it) and :func:`capture` for the short-lived programs the runner asks something
(git, ssh-keygen): bounded output, one timeout, one error type.
"""

from __future__ import annotations

import codecs
import contextlib
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from msgspec import Struct

from runner.cancel import Cancellation

#: what the runner keeps for itself: no program it starts gets these variables. A step never
#: needs the record key, and neither does git, ssh-keygen or a program a step named in
#: ``.git/config`` (an ``uploadpack``, ``core.sshCommand``, a credential helper), which git starts
#: with the environment it was given: with the key, a step's code could seal a record of its own
RUNNER_ONLY = frozenset({"RUNNER_RECORD_KEY"})

#: after SIGTERM, how long a process group gets before SIGKILL
KILL_GRACE_SECONDS = 5.0
#: after the main process exits, how long to drain output still held open by its children
DRAIN_SECONDS = 2.0


#: prctl(2): whether the process may be dumped, and so read through /proc or ptrace by its user
_PR_SET_DUMPABLE = 4


def hide_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Keep :data:`RUNNER_ONLY` from this process's own user, where ``environ`` (the runner's
    environment when None) holds one of them: whether that was done.

    Removing them from what children get is not enough: a step runs as the runner's user, and
    Linux shows a process's starting environment to its user in ``/proc/PID/environ`` (``cat
    /proc/$PPID/environ`` from a step printed the record key, whatever ``os.environ`` is
    changed to), and lets it ``ptrace`` the process. A process that is not dumpable
    (``PR_SET_DUMPABLE`` 0, as ``ssh-agent`` does) shows neither to anyone without
    ``CAP_SYS_PTRACE``; the programs it starts are dumpable again (``execve`` resets it). Where
    there is no ``prctl`` (macOS: see the known gaps), nothing is done."""
    source = os.environ if environ is None else environ
    if sys.platform != "linux" or not any(name in source for name in RUNNER_ONLY):
        return False
    # about 2 ms: only a run given one of them pays it
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def exposed_in_ancestors(environ: Mapping[str, str] | None = None) -> list[tuple[int, str]]:
    """The processes that started this one (pid, command name), nearest first, whose starting
    environment holds one of :data:`RUNNER_ONLY` with the value this process has and can be read
    by a step (by this user: every process of the user that is dumpable).

    :func:`hide_environment` hides the runner's own environment, not its parent's: a CI job's
    ``env: RUNNER_RECORD_KEY`` is given to the shell that runs ``runner run``, and a step read
    it from there (``/proc/$(ps -o ppid= $PPID)/environ``). Only the runner's user's own
    processes are looked at, up to the first that cannot be read."""
    source = os.environ if environ is None else environ
    wanted = {f"{name}={source[name]}".encode() for name in RUNNER_ONLY if source.get(name)}
    if sys.platform != "linux" or not wanted:
        return []
    found: list[tuple[int, str]] = []
    pid = os.getppid()
    uid = os.getuid()
    while pid > 1:
        proc = f"/proc/{pid}"
        try:
            if os.stat(proc).st_uid != uid:
                break  # another user's: not a step's to read
            with open(f"{proc}/environ", "rb") as handle:
                held = set(handle.read(1 << 20).split(b"\0"))
            with open(f"{proc}/stat", "rb") as handle:
                stat_line = handle.read(4096)
        except OSError:
            break  # not dumpable (another runner), gone, or no /proc
        name = stat_line[stat_line.find(b"(") + 1 : stat_line.rfind(b")")]
        if held & wanted:
            found.append((pid, name.decode("utf-8", "replace")))
        try:
            pid = int(_after_name(stat_line)[1])
        except (IndexError, ValueError):
            break
    return found


def child_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """``env`` (the runner's own environment when None) without :data:`RUNNER_ONLY`."""
    source = os.environ if env is None else env
    return {name: value for name, value in source.items() if name not in RUNNER_ONLY}


class ProcessResult(Struct, frozen=True):
    exit_code: int
    timed_out: bool = False
    cancelled: bool = False
    duration: float = 0.0
    #: the type of the error the output handler raised, if it did: the output from that line on
    #: was not shown (nor masked), so the step must not count as a success
    output_error: str | None = None


#: the threads starting a process (between ``begin_spawn`` and ``end_spawn``), and a signal
#: deferred while one was there, by thread (see :meth:`ProcessGroups.defer_interrupt`)
_SPAWNING: set[int] = set()
_DEFERRED: dict[int, int] = {}


def begin_spawn() -> None:
    """The calling thread starts a process in a session of its own: until :func:`end_spawn`,
    a signal in it is deferred. Raised inside ``Popen`` (after the fork), or before a step's
    group is registered, it would leave that process running, out of the terminal's and
    ``kill_all``'s reach (and a ``capture``'s timeout), after the runner exited."""
    _SPAWNING.add(threading.get_ident())


def end_spawn() -> None:
    """The process can be killed now (or none started): a deferred signal is raised here."""
    ident = threading.get_ident()
    _SPAWNING.discard(ident)
    signum = _DEFERRED.pop(ident, None)
    if signum is not None:
        raise KeyboardInterrupt(signum)


class SignalsDeferred:
    """A block a signal must not cut in two: in it, a signal's ``KeyboardInterrupt`` (the
    second one, which stops the runner where it stands, or one before the steps begin) waits
    for its end, as in :func:`begin_spawn`. A record's journal line written but not yet counted
    in memory was cut so: the cancellation's own save then found a line it had not counted,
    took it for another process's and refused, and the run stayed ``running`` for a later
    ``resume`` to deploy to its end."""

    __slots__ = ("nested",)

    def __enter__(self) -> None:
        ident = threading.get_ident()
        self.nested = ident in _SPAWNING
        _SPAWNING.add(ident)

    def __exit__(self, kind: object, exc: object, traceback: object) -> None:
        if not self.nested:
            end_spawn()


class ProcessGroups:
    """The process groups running now, so that a signal handler can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        #: the groups a cancellation stopped (their processes end ``cancelled``)
        self._stopped: set[int] = set()
        #: set when the run is cancelled; waits end on it at once (see runner.cancel)
        self.cancelled = Cancellation()
        #: set by kill_all: a group registered after it is killed at once
        self.killed = False

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)
        if self.killed:  # after kill_all copied the groups: the runner is stopping
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

    def defer_interrupt(self, signum: int) -> bool:
        """Called from the signal handler (in the thread it interrupted): whether that thread is
        starting a process, in which case the interrupt is raised at its ``end_spawn``."""
        ident = threading.get_ident()
        if ident not in _SPAWNING:
            return False
        _DEFERRED[ident] = signum
        return True

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)
            self._stopped.discard(pgid)  # a later process may get the same id

    def cancel_all(self) -> None:
        self.cancelled.set()
        with self._lock:
            groups = list(self._groups)
        for pgid in groups:
            self.stop(pgid)

    def kill_all(self) -> None:
        """SIGKILL every group at once: the runner itself is stopping (a second signal).

        Called from a signal handler, so it takes no lock (the interrupted thread may hold
        it): copying the set is atomic under the GIL. ``killed`` is set first, so a group
        registered after the copy is killed by ``add``."""
        self.killed = True
        groups = self._groups.copy()
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

    def stop(self, pgid: int) -> None:
        """Stop one group because the run is cancelled (in the background)."""
        with self._lock:
            self._stopped.add(pgid)
        threading.Thread(target=terminate_group, args=(pgid,), daemon=True).start()

    def stopped(self, pgid: int) -> bool:
        """Whether a cancellation stopped this group."""
        with self._lock:
            return pgid in self._stopped


def terminate_group(
    pgid: int, grace: float = KILL_GRACE_SECONDS, reap: Callable[[], object] | None = None
) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left after ``grace`` seconds.

    ``reap`` (the leader's ``Popen.poll``) collects the leader once it exits: an unreaped leader
    is a zombie that still counts as a member of the group, which would always cost the whole
    grace period."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
        if not group_running(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_running(pgid: int) -> bool:
    """Whether a process of the group ``pgid`` still runs. A member that has ended but is not
    reaped yet (a zombie: the step's shell died with the group, so its children went to the
    system's init) does not count: no signal can stop it, and init reaps it when it gets to
    it. Some take seconds (this sandbox's, about 2 s), some never do (``tail -f /dev/null`` as
    a container's PID 1), and each timed-out or cancelled step waited the whole grace for it.
    Where ``/proc`` shows no member at all (not Linux, or hidden), the group still counts."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    seen = False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as status:
                data = status.read()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        fields = _after_name(data)
        if len(fields) < 3 or int(fields[2]) != pgid:
            continue
        if fields[0] not in (b"Z", b"X"):
            return True
        seen = True
    return not seen


def _after_name(stat_line: bytes) -> list[bytes]:
    """The fields of a ``/proc/PID/stat`` line after the command's name: state, ppid, pgrp, ...
    The name is in parentheses and may hold anything, parentheses and spaces too: the last
    ``)`` ends it."""
    return stat_line[stat_line.rfind(b")") + 2 :].split()


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    on_line: Callable[[str], None],
    timeout: float | None = None,
    groups: ProcessGroups | None = None,
    after_cancel: bool = False,
    showable: Callable[[str, bool], int] | None = None,
) -> ProcessResult:
    """Run ``argv`` to completion, streaming its output (stderr merged) line by line.

    A line longer than ``LINE_LIMIT`` bytes is given in pieces, each as long as ``showable``
    says (the caller's masker: no secret cut in two by a piece's end; see :class:`_Lines`).

    A process started while the run is being cancelled is stopped at once, unless
    ``after_cancel`` says its step was started *because of* the cancellation (an ``always()`` or
    ``cancelled()`` step), which runs to its end; only a second signal stops it."""
    started = time.monotonic()
    child_env = child_environment(env)
    # a pipe of our own, not Popen's file object: the output is read with os.read anyway
    out, write_end = os.pipe()
    if groups is not None:
        begin_spawn()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=_devnull(),
            stdout=write_end,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException as exc:
        os.close(out)
        if groups is not None:
            end_spawn()  # no process: a deferred signal is raised here
        if not isinstance(exc, OSError):
            raise
        on_line(f"cannot start {argv[0]}: {exc.strerror or exc}")
        return ProcessResult(127, duration=time.monotonic() - started)
    finally:
        os.close(write_end)  # the child has it: the output ends when the child's copies close
    pgid = proc.pid
    timed_out = False
    cancelled = False
    lines = _Lines(on_line, showable)
    try:
        if groups is not None:
            groups.add(pgid)
            end_spawn()
            if groups.cancelled.is_set() and not after_cancel:
                groups.stop(pgid)
        exited = _follow(proc, out, lines, None if timeout is None else started + timeout)
        if not exited:
            timed_out = True
            terminate_group(pgid, reap=proc.poll)
            proc.wait()
            if lines.reader is not None:
                lines.reader.join(DRAIN_SECONDS)
    except BaseException:
        # the runner is stopping (a second signal, deferred until the group was registered):
        # the process must not outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        raise
    finally:
        if groups is not None:
            cancelled = groups.stopped(pgid)
            groups.discard(pgid)
    error = type(lines.errors[0]).__name__ if lines.errors else None
    return ProcessResult(
        proc.returncode, timed_out, cancelled, time.monotonic() - started, output_error=error
    )


#: ``/dev/null`` opened once, for each step's stdin (``subprocess.DEVNULL`` opens and closes
#: it at every start: two system calls of a step's fifty)
_NULL: list[int] = []
_NULL_LOCK = threading.Lock()


def _devnull() -> int:
    with _NULL_LOCK:  # steps started side by side: one descriptor
        if not _NULL:
            _NULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        return _NULL[0]


def _follow(proc: subprocess.Popen[bytes], out: int, lines: _Lines, deadline: float | None) -> bool:
    """Hand ``proc``'s output, the pipe ``out``, to ``lines`` until it exits and its output ends
    (or ``DRAIN_SECONDS`` after it exits, for output a process it left behind holds open), or
    until ``deadline``; whether it exited (reaped) by then. Output still open when this returns
    goes on being read by ``lines.reader``, a thread, which closes ``out``; else it is closed.

    In this thread, waiting on the process's pidfd and its pipe at once: a reader thread for
    every step cost a thread's start and join (bench/README.md, ``step_cost.py``). Without
    pidfds (not Linux, or a sandbox refusing them), the thread."""
    try:
        pidfd = os.pidfd_open(proc.pid) if _PIDFD else -1
    except OSError:
        pidfd = -1
    if pidfd < 0:
        lines.read_in_thread(out)
        try:
            proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        assert lines.reader is not None
        lines.reader.join(DRAIN_SECONDS)
        return True
    reading, exited = True, False
    try:
        poller = select.poll()
        poller.register(out, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        until = deadline
        while reading or not exited:
            wait = -1
            if until is not None:
                # checked before each poll: output that never stops would keep it ready
                wait = math.ceil((until - time.monotonic()) * 1000)
                if wait <= 0:
                    break  # the deadline, or the end of the drain
            ready = poller.poll(wait)
            for fd, _ in ready:
                if fd == pidfd:
                    # reaped at once, as before the drain: a zombie leader still counts as a
                    # member of its group for terminate_group
                    proc.wait()
                    exited = True
                    poller.unregister(pidfd)
                    until = time.monotonic() + DRAIN_SECONDS
                elif chunk := os.read(out, _CHUNK):
                    lines.feed(chunk)
                else:
                    reading = False
                    os.close(out)
                    poller.unregister(out)
                    lines.end()
    except BaseException:
        if reading:
            os.close(out)
        raise
    finally:
        os.close(pidfd)
    if reading:
        lines.read_in_thread(out)
    return exited


#: the most one read of a step's output takes
_CHUNK = 1 << 16
_PIDFD = hasattr(os, "pidfd_open")


#: the longest line given whole: a longer one (a minified file, a progress bar without newlines,
#: `cat` of a binary) is given in pieces; held whole, a line of 300 MB grew the runner by 1.8 GB
LINE_LIMIT = 1024 * 1024
#: a long line no part of which can be shown on its own (one run of overlapping secrets, say
#: ``aaaa`` in a line of ``a``) is given whole once it is this long, masked as a line is
HOLD_LIMIT = 4 * LINE_LIMIT


class _Lines:
    """A process's output cut into lines (at ``\\n``, as a binary file object does; a last line
    without one is a line too), each decoded and given to ``on_line``. An error ``on_line``
    raises stops the calls, not the reading: a full pipe would block the process forever.

    A line past ``LINE_LIMIT`` bytes is given in pieces. Where a piece ends is the caller's to
    say (``showable``: how many characters of the line read so far can be shown on their own;
    :meth:`runner.masking.Masker.showable` never cuts a secret in two); without it, a piece is
    all that was read, cut between characters."""

    def __init__(
        self, on_line: Callable[[str], None], showable: Callable[[str, bool], int] | None = None
    ) -> None:
        self.on_line = on_line
        self.showable = showable
        self.errors: list[BaseException] = []
        self.reader: threading.Thread | None = None
        self._partial: list[bytes] = []
        self._size = 0
        #: the size of the pending line at which a piece is looked for next
        self._next_piece = LINE_LIMIT
        #: the pending line continues one given in part
        self._continued = False

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if self._partial:
                self._partial.append(chunk[start:end])
                self._emit(b"".join(self._partial))
                self._restart()
            else:
                self._emit(chunk[start:end])
                self._continued = False
            start = end + 1
        if start < len(chunk):
            self._partial.append(chunk[start:])
            self._size += len(chunk) - start
            if self._size > self._next_piece:
                self._release_piece()

    def _restart(self) -> None:
        self._partial.clear()
        self._size = 0
        self._next_piece = LINE_LIMIT
        self._continued = False

    def _release_piece(self) -> None:
        raw = b"".join(self._partial)
        # the characters read whole so far: the bytes of one cut short wait for the rest
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        text = decoder.decode(raw, final=False)
        if self.showable is None:
            count = len(text)
        else:
            try:
                count = self.showable(text, self._continued)
            except Exception as exc:
                # as an error of ``on_line``'s: nothing more is shown (nor masked), the reading
                # goes on (it ended the reading, an internal error, and a full pipe would block
                # the process), and the step fails
                self.errors.append(exc)
                count = len(text)
            if count <= 0 and len(raw) > HOLD_LIMIT:
                count = len(text)
        if count <= 0:
            # nothing can be shown on its own yet: look again once another piece's worth came
            self._partial = [raw]
            self._next_piece = self._size + LINE_LIMIT
            return
        shown = text[:count].encode("utf-8", "surrogateescape")
        self._emit(shown)
        rest = raw[len(shown) :]
        self._partial = [rest] if rest else []
        self._size = len(rest)
        self._next_piece = LINE_LIMIT
        self._continued = True

    def end(self) -> None:
        if self._partial:
            self._emit(b"".join(self._partial))
            self._restart()

    def _emit(self, raw: bytes) -> None:
        if self.errors:
            return
        try:
            self.on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
        except Exception as exc:
            # no traceback on stderr: its message may quote the line, which may hold a
            # secret the handler had not masked yet; the step fails instead (see script.py)
            self.errors.append(exc)

    def read_in_thread(self, out: int) -> None:
        """Read the pipe ``out`` to its end in a thread, and close it."""
        self.reader = threading.Thread(target=self._pump, args=(out,), daemon=True)
        self.reader.start()

    def _pump(self, out: int) -> None:
        try:
            while chunk := os.read(out, _CHUNK):
                self.feed(chunk)
            self.end()
        finally:
            os.close(out)


#: what :func:`capture` keeps of a program's stdout unless told otherwise
CAPTURE_LIMIT = 16 * 1024 * 1024
#: what it keeps of stderr: the tail, where programs say what went wrong
STDERR_LIMIT = 64 * 1024


class Captured(Struct, frozen=True):
    """A short-lived program that ran to its end (whatever its exit code)."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: bytes
    #: the last ``STDERR_LIMIT`` bytes (empty with ``terminal=True``: stderr went to the terminal)
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def detail(self) -> str:
        """The line of stderr that says what went wrong: git explains over several lines and its
        ``fatal:``/``error:`` one is the cause; else the last line; else the exit code."""
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
        return (fatal or lines[-1:] or [f"exit code {self.exit_code}"])[0]


class ProgramError(Exception):
    """A program that could not be run to its end: not found, timed out, or wrote more than it
    may. Callers turn it into their own :class:`runner.errors.RunnerError`."""

    def __init__(self, argv: Sequence[str], message: str, *, kind: str) -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.message = message
        #: ``not-found``, ``cannot-start``, ``cannot-read-input``, ``timed-out`` or
        #: ``too-much-output``
        self.kind = kind


def capture(
    argv: Sequence[str],
    *,
    timeout: float | None,
    stdin: bytes | Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    limit: int = CAPTURE_LIMIT,
    terminal: bool = False,
) -> Captured:
    """Run a short-lived program (git, ssh-keygen) and return its output.

    The program leads its own process group, so a timeout kills it *and* whatever it started (git
    starts ``ssh``, ``git-remote-https``, ...). Its stdout is read as it comes and the whole group
    is killed once it passes ``limit`` bytes, so a hostile repository cannot grow the runner.
    ``terminal=True`` is for a program that may have to ask a person (ssh-keygen asking for a
    passphrase, or to touch a security key): it stays in the terminal's foreground group, where
    it may read the terminal, and its stderr goes there; a timeout then kills it alone.

    A non-zero exit is returned, not raised (``git merge-base --is-ancestor`` answers with it);
    :class:`ProgramError` means there is no answer."""
    argv = list(argv)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        source: int | IO[bytes] = subprocess.DEVNULL if stdin is None else subprocess.PIPE
        if isinstance(stdin, Path):
            try:
                source = stack.enter_context(stdin.open("rb"))
            except OSError as exc:
                why = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror
                raise ProgramError(
                    argv, f"cannot read {stdin}: {why}", kind="cannot-read-input"
                ) from None
        begin_spawn()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=source,
                stdout=subprocess.PIPE,
                stderr=None if terminal else subprocess.PIPE,
                env=child_environment(env),
                cwd=cwd,
                start_new_session=not terminal,
            )
        except OSError as exc:
            end_spawn()
            missing = isinstance(exc, FileNotFoundError) and exc.filename in (None, argv[0])
            reason = "not found" if missing else (exc.strerror or str(exc))
            kind = "not-found" if missing else "cannot-start"
            raise ProgramError(argv, f"cannot run {argv[0]}: {reason}", kind=kind) from None
        except BaseException:
            end_spawn()
            raise

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            if terminal:
                proc.kill()
            else:
                os.killpg(proc.pid, signal.SIGKILL)

    out = _Sink(limit, kill, keep_tail=False)
    err = _Sink(STDERR_LIMIT, None, keep_tail=True)
    threads = [threading.Thread(target=out.drain, args=(proc.stdout,), daemon=True)]
    if proc.stderr is not None:
        threads.append(threading.Thread(target=err.drain, args=(proc.stderr,), daemon=True))
    if isinstance(stdin, bytes):
        threads.append(threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True))
    timed_out = False
    try:
        # from here a signal kills the program it interrupts (below): one that came while it
        # was being started is raised now
        end_spawn()
        for thread in threads:
            thread.start()
        try:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill()
            proc.wait()
        for thread in threads:
            # a grandchild that left the group may hold a pipe open: its output is not waited for
            thread.join(DRAIN_SECONDS)
    except BaseException:
        kill()  # ^C or SIGTERM while it runs: it must not outlive the runner
        raise
    finally:
        if proc.poll() is None:
            kill()
            proc.wait()
        if not terminal:
            # the leader is gone; anything it started and left behind goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    name = os.path.basename(argv[0])
    if timed_out:
        raise ProgramError(argv, f"{name} did not finish within {timeout:g} s", kind="timed-out")
    if out.over:
        raise ProgramError(
            argv,
            f"{name} wrote more than {_size(limit)}; refusing to read it in part",
            kind="too-much-output",
        )
    return Captured(tuple(argv), proc.returncode, out.data(), err.data())


class _Sink:
    """One pipe's bytes, bounded: past ``limit`` either ``on_over`` is called (and the rest is
    drained unread) or, with ``keep_tail``, only the last ``limit`` bytes are kept."""

    def __init__(self, limit: int, on_over: Callable[[], None] | None, *, keep_tail: bool) -> None:
        self.limit = limit
        self.on_over = on_over
        self.keep_tail = keep_tail
        self.chunks: list[bytes] = []
        self.size = 0
        self.over = False

    def drain(self, stream: IO[bytes]) -> None:
        with stream:
            while chunk := os.read(stream.fileno(), 65536):
                if self.over:
                    continue  # keep draining: a full pipe would block the program
                self.chunks.append(chunk)
                self.size += len(chunk)
                if self.size <= self.limit:
                    continue
                if self.keep_tail:
                    tail = b"".join(self.chunks)[-self.limit :]
                    self.chunks, self.size = [tail], len(tail)
                else:
                    self.over = True
                    self.chunks = []
                    if self.on_over is not None:
                        self.on_over()

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _feed(stream: IO[bytes] | None, data: bytes) -> None:
    if stream is None:
        return
    # the program may exit without reading all of its input (a bad argument)
    with contextlib.suppress(OSError, ValueError):
        stream.write(data)
    with contextlib.suppress(OSError, ValueError):
        stream.close()


def _size(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MiB"
    if limit >= 1024:
        return f"{limit / 1024:g} KiB"
    return f"{limit} bytes"


def processes_in(folder: str | os.PathLike[str], variable: str = "RUNNER_TEMP") -> list[int]:
    """The processes of this host, readable by this user, whose environment names ``folder``
    in ``variable`` (the run's temporary folder: every step's process gets it, and what they
    start inherits it): what a runner killed mid-step left running. Best effort (Linux's
    ``/proc``; a process that cleared its environment is not found), so it only ever makes a
    resume more careful."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    wanted = os.path.realpath(folder)
    prefix = variable.encode() + b"="
    found = []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue  # gone, or another user's
        for item in environ.split(b"\0"):
            if item.startswith(prefix):
                value = os.fsdecode(item[len(prefix) :])
                if value and os.path.realpath(value) == wanted:
                    found.append(int(entry))
                break
    return sorted(found)
