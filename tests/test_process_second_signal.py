"""A second Ctrl-C (or SIGTERM) that lands while a step's process is being started: after the
fork, inside ``Popen``, or before its group is registered for ``ProcessGroups.kill_all``. Raised
there, it left the step's process (a session of its own, out of the terminal's reach) running
after the runner had exited; it is deferred until the group is registered, and killed with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.run_helpers import pid_alive
from helpers.waiting import wait_for

from runner import process
from runner.engine.signals import Signals
from runner.process import ProcessGroups, run_process


class _Run:
    """What ``Signals`` reads of a run: its process groups (and a log it writes to)."""

    def __init__(self, groups: ProcessGroups) -> None:
        self.groups = groups


def signal_inside_popen(monkeypatch: pytest.MonkeyPatch, signals: Signals) -> list[int]:
    """Make ``Popen`` deliver a Ctrl-C as Python does, in the thread that called it, right
    after the fork; the list gets the pid of each process it started."""
    started: list[int] = []
    real_popen = subprocess.Popen

    def popen_then_signal(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        started.append(proc.pid)
        signals.handle(signal.SIGINT, None)
        return proc

    monkeypatch.setattr(process.subprocess, "Popen", popen_then_signal)
    return started


def assert_killed(pid: int, what: str) -> None:
    try:
        wait_for(lambda: not pid_alive(pid), 10, what)
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_second_signal_inside_popen_kills_the_process_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = ProcessGroups()
    signals = Signals(_Run(groups))  # type: ignore[arg-type]
    signals.stepping = True
    signals.first = signal.SIGINT  # the first Ctrl-C cancelled the run; an always() step runs
    started = signal_inside_popen(monkeypatch, signals)  # the second Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        run_process(
            [sys.executable, "-c", "import time; time.sleep(300)"],
            env={"PATH": os.environ.get("PATH", "")},
            cwd=str(tmp_path),
            on_line=lambda line: None,
            groups=groups,
        )
    [pid] = started
    assert_killed(pid, "the step's process to be killed")


def test_a_group_registered_after_kill_all_is_killed_at_once() -> None:
    groups = ProcessGroups()
    groups.kill_all()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True
    )
    try:
        groups.add(proc.pid)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_outside_a_spawn_the_second_signal_is_raised_at_once() -> None:
    groups = ProcessGroups()
    signals = Signals(_Run(groups))  # type: ignore[arg-type]
    signals.stepping = True
    signals.first = signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
        signals.handle(signal.SIGTERM, None)
    # a process that could not start ends its spawn too: nothing is left deferred
    process.begin_spawn()
    assert groups.defer_interrupt(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        process.end_spawn()
    assert not groups.defer_interrupt(signal.SIGINT)


@pytest.mark.parametrize("first", [True, False], ids=["second-signal", "before-steps"])
def test_a_signal_inside_captures_popen_kills_the_program_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: bool
) -> None:
    """``capture`` (git, ssh-keygen) runs its program in a session of its own: a signal inside
    ``Popen``, after the fork, left it running, its timeout gone, after the runner exited. A
    second signal during a run, and the first one before the steps start, are both raised
    there at once."""
    groups = ProcessGroups()
    signals = Signals(_Run(groups))  # type: ignore[arg-type]
    if first:
        signals.stepping = True
        signals.first = signal.SIGINT
    started = signal_inside_popen(monkeypatch, signals)
    with pytest.raises(KeyboardInterrupt):
        process.capture([sys.executable, "-c", "import time; time.sleep(300)"], timeout=60)
    [pid] = started
    assert_killed(pid, "the captured program to be killed")
    # nothing is left deferred for this thread: the next signal is raised where it lands
    assert not groups.defer_interrupt(signal.SIGINT)


def test_a_capture_that_cannot_start_leaves_no_deferral_behind() -> None:
    with pytest.raises(process.ProgramError):
        process.capture(["/nonexistent/program"], timeout=5)
    with pytest.raises(ValueError):
        process.capture([sys.executable, "-c", "pass"], timeout=5, env={"A": "x\0y"})
    assert not ProcessGroups().defer_interrupt(signal.SIGINT)
