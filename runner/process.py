"""The one entry point through which the runner starts processes.

Argument lists only, never a shell string. Each process leads a new session (its own process
group), so a timeout or a cancellation stops it *and* everything it started. Output is read line by
line as it comes and handed to a callback, which masks and logs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from runner.cancel import Cancellation

#: after SIGTERM, how long a process group gets before SIGKILL
KILL_GRACE_SECONDS = 5.0
#: after the main process exits, how long to drain output still held open by its children
DRAIN_SECONDS = 2.0


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    timed_out: bool = False
    cancelled: bool = False
    duration: float = 0.0
    #: the type of the error the output handler raised, if it did: the output from that line on
    #: was not shown (nor masked), so the step must not count as a success
    output_error: str | None = None


class ProcessGroups:
    """The process groups running now, so that a signal handler can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        #: the groups a cancellation stopped (their processes end ``cancelled``)
        self._stopped: set[int] = set()
        #: set when the run is cancelled; waits end on it at once (see runner.cancel)
        self.cancelled = Cancellation()

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)

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
        it): copying the set is atomic under the GIL."""
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
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None,
    on_line: Callable[[str], None],
    timeout: float | None = None,
    groups: ProcessGroups | None = None,
    after_cancel: bool = False,
) -> ProcessResult:
    """Run ``argv`` to completion, streaming its output (stderr merged) line by line.

    A process started while the run is being cancelled is stopped at once, unless
    ``after_cancel`` says its step was started *because of* the cancellation (an ``always()`` or
    ``cancelled()`` step), which runs to its end; only a second signal stops it."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        on_line(f"cannot start {argv[0]}: {exc.strerror or exc}")
        return ProcessResult(127, duration=time.monotonic() - started)
    pgid = proc.pid
    timed_out = False
    cancelled = False
    try:
        if groups is not None:
            groups.add(pgid)
            if groups.cancelled.is_set() and not after_cancel:
                groups.stop(pgid)
        assert proc.stdout is not None
        pump_errors: list[BaseException] = []
        reader = threading.Thread(
            target=_pump, args=(proc.stdout, on_line, pump_errors), daemon=True
        )
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            terminate_group(pgid, reap=proc.poll)
            proc.wait()
        reader.join(DRAIN_SECONDS)
    except BaseException:
        # the runner is stopping (a second signal may land before the group is registered
        # for ProcessGroups.kill_all): the process must not outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        raise
    finally:
        if groups is not None:
            cancelled = groups.stopped(pgid)
            groups.discard(pgid)
    error = type(pump_errors[0]).__name__ if pump_errors else None
    return ProcessResult(
        proc.returncode, timed_out, cancelled, time.monotonic() - started, output_error=error
    )


def _pump(stream: IO[bytes], on_line: Callable[[str], None], errors: list[BaseException]) -> None:
    with stream:
        for raw in stream:
            if errors:
                continue  # keep draining: a full pipe would block the process forever
            try:
                on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            except Exception as exc:
                # no traceback on stderr: its message may quote the line, which may hold a
                # secret the handler had not masked yet; the step fails instead (see script.py)
                errors.append(exc)
