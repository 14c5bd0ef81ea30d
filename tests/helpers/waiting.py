"""Waiting for a condition, never for a duration: a test that sleeps a fixed time is slow when
the machine is idle and flaky when it is loaded."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

T = TypeVar("T")

#: how long a condition may take before the test fails (generous: the machine may be loaded)
WAIT_SECONDS = 30.0


def wait_for(
    predicate: Callable[[], T],
    timeout: float = WAIT_SECONDS,
    what: str = "condition",
    *,
    process: subprocess.Popen[Any] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something true, and return that (a synchronisation
    aid, never a timing assertion); fail at once if ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({timeout} s)")
        time.sleep(0.02)


class Output:
    """A process's stdout, read line by line as it comes (in a thread), so that a test waits
    for what the process says ("the run is waiting", "the server did not answer") instead of
    sleeping a while and hoping it got there."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, text: str, *, after: int = 0, timeout: float = WAIT_SECONDS) -> int:
        """Wait for a line holding ``text`` (from line ``after`` on); return the number of
        lines read so far, for a later wait to look only at what comes next."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines[after:]):
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise AssertionError(
                        f"the process never said {text!r}"
                        + (" (it ended)" if self.closed else "")
                        + f":\n{''.join(self.lines)}"
                    )
                self._changed.wait(left)
            return len(self.lines)

    def finish(self, timeout: float = WAIT_SECONDS) -> tuple[int, str, str]:
        """Wait for the process to end: its exit code, its whole stdout and its stderr."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the process did not end in {timeout}s:\n{self.text}") from None
        self._reader.join(timeout)
        assert self.process.stderr is not None
        return self.process.returncode, self.text, self.process.stderr.read()
