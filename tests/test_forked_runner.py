"""``runner`` commands forked from a warm interpreter (tests/helpers/forked_runner.py) behave as
commands started for real: the same output and exit codes, only the environment, folder, umask
and descriptors they were given, signals to their own pid, and the same errors when they cannot
start. Each test compares a fork with a real start, or checks what a real start guarantees."""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import fork_server, forked_runner
from helpers.environ import host_env
from helpers.waiting import wait_for

RUNNER = str(forked_runner.RUNNER)

WORKFLOW = """\
name: Forked
steps:
  - id: show
    name: Show what the step was given
    run: |
      echo "greeting=${GREETING:-unset} leaked=${LEAKED_INTO_THE_WORKER:-unset} home=${HOME:-unset}"
      echo "umask=$(umask) cwd=$PWD"
      echo "fds=$(ls /proc/$$/fd | sort -n | tr '\\n' ' ')"
      exit "${EXIT_WITH:-0}"
"""

SLEEPING = """\
name: Sleeping
steps:
  - id: sleep
    name: Sleep
    run: |
      echo started
      sleep 30
"""


@pytest.fixture(autouse=True)
def warm() -> Iterator[None]:
    if forked_runner._server is None:  # RUNNER_TEST_FORK=0, or no installed command
        pytest.skip("runner commands are started for real in this session (RUNNER_TEST_FORK=0)")
    yield


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "deploy.yml").write_text(WORKFLOW)
    (tmp_path / "sleep.yml").write_text(SLEEPING)
    return tmp_path


def env(**more: str) -> dict[str, str]:
    return host_env(**more)


def run(workspace: Path, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [RUNNER, *args],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def both(workspace: Path, *args: str, **kwargs: object) -> tuple[tuple[int, str, str], ...]:
    """The exit code, stdout and stderr of the same command forked and started for real."""
    forked = run(workspace, *args, **kwargs)
    assert forked_runner.forked(forked)
    with forked_runner.for_real():
        real = run(workspace, *args, **kwargs)
    assert not forked_runner.forked(real)
    results = []
    for process in (forked, real):
        out, err = process.communicate(timeout=60)
        results.append((process.returncode, out, err))
    return tuple(results)


def test_a_forked_command_prints_and_exits_as_a_real_one(workspace: Path) -> None:
    codes = []
    for args, extra in [
        (("run", "deploy.yml", "--env", "dev"), {}),
        (("run", "deploy.yml", "--env", "dev"), {"EXIT_WITH": "3"}),
        (("validate", "deploy.yml"), {}),
        (("plan", "missing.yml", "--env", "dev"), {}),
        (("run", "--no-such-option"), {}),
    ]:
        (forked_code, forked_out, forked_err), (code, out, err) = both(
            workspace, *args, env=env(GREETING="hello", **extra)
        )
        assert forked_code == code, args
        scrub = [(str(workspace), "WS")]
        assert _timeless(forked_out, scrub) == _timeless(out, scrub), args
        assert _timeless(forked_err, scrub) == _timeless(err, scrub), args
        codes.append(code)
    assert codes == [0, 1, 0, 2, 2]


def _timeless(text: str, scrub: list[tuple[str, str]]) -> list[str]:
    """The lines without what differs between two runs: run ids, durations, descriptors."""
    for old, new in scrub:
        text = text.replace(old, new)
    text = re.sub(r"\d{8}-\d{6}-[0-9a-f]+", "RUN-ID", text)
    text = re.sub(r"\d+(\.\d+)?s\b", "Ns", text)
    return [line for line in text.splitlines() if "fds=" not in line]


def test_only_the_given_environment_folder_and_umask_reach_the_command(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = env(GREETING="hi")
    del given["HOME"]  # which the worker, and the warm interpreter, started with
    monkeypatch.setenv("LEAKED_INTO_THE_WORKER", "yes")
    old = os.umask(0o027)
    try:
        process = run(workspace, "run", "deploy.yml", "--env", "dev", env=given)
        out, err = process.communicate(timeout=60)
    finally:
        os.umask(old)
    assert forked_runner.forked(process) and process.returncode == 0, err
    assert "greeting=hi leaked=unset home=unset" in out
    assert f"umask=0027 cwd={workspace}" in out


def test_the_command_holds_the_descriptors_a_real_start_holds(workspace: Path) -> None:
    held = []
    for real in (False, True):
        with forked_runner.for_real(real):
            process = run(workspace, "run", "sleep.yml", "--env", "dev", env=env())
        try:
            _line_with(process, "started")
            held.append(_descriptors(process.pid, workspace))
        finally:
            process.kill()
            process.communicate(timeout=30)
    assert held[0] == held[1]


def _descriptors(pid: int, workspace: Path) -> list[tuple[int, str]]:
    """A process's open descriptors and what each is (a pipe, a socket, a file of the
    workspace), without the numbers that differ between two processes."""
    found = []
    for entry in sorted(Path(f"/proc/{pid}/fd").iterdir(), key=lambda p: int(p.name)):
        target = os.readlink(entry).replace(str(workspace), "WS")
        target = re.sub(r"\[\d+\]|\d{8}-\d{6}-[0-9a-f]+|-[a-z0-9_]{8}(?=/|$)", "N", target)
        found.append((int(entry.name), target))
    return found


def test_the_command_handles_and_ignores_the_signals_a_real_start_does(workspace: Path) -> None:
    """Compared while each command waits to open its workflow file (a FIFO nobody writes yet):
    past start-up, before a run's own handlers. Blocked, ignored and caught signals; not
    ``SigQ``, the signals queued for the whole user."""
    dispositions = []
    for real in (False, True):
        fifo = workspace / f"flow-{real}.yml"
        os.mkfifo(fifo)
        with forked_runner.for_real(real):
            process = run(workspace, "validate", fifo.name, env=env())
        try:
            wait_for(
                lambda: "partner" in Path(f"/proc/{process.pid}/wchan").read_text(),  # noqa: B023
                what="the command to open the FIFO",
            )
            status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
            dispositions.append(
                [line for line in status if line[:6] in ("SigBlk", "SigIgn", "SigCgt")]
            )
        finally:
            process.kill()
            process.communicate(timeout=30)
    assert dispositions[0] == dispositions[1]


def test_the_command_is_its_own_process_in_the_tests_group_and_named_runner(
    workspace: Path,
) -> None:
    process = run(workspace, "run", "sleep.yml", "--env", "dev", env=env())
    try:
        assert process.stdout is not None
        assert "started" in _line_with(process, "started")
        assert forked_runner.forked(process)
        assert process.pid != os.getpid() and process.poll() is None
        assert os.getpgid(process.pid) == os.getpgrp()
        assert Path(f"/proc/{process.pid}/comm").read_text().strip() == "runner"
    finally:
        process.kill()
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def _line_with(process: subprocess.Popen[str], text: str) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if text in line:
            return line
    raise AssertionError(f"the command ended before printing {text!r}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_forked_run_as_it_stops_a_real_one(workspace: Path, signum: int) -> None:
    codes = []
    for real in (False, True):
        with forked_runner.for_real(real):
            process = run(workspace, "run", "sleep.yml", "--env", "dev", env=env())
        _line_with(process, "started")
        process.send_signal(signum)
        try:
            process.communicate(timeout=30)
        finally:
            process.kill()
        codes.append(process.returncode)
    assert codes[0] == codes[1] == 130


def test_a_timeout_kills_the_forked_command(workspace: Path) -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(
            [RUNNER, "run", "sleep.yml", "--env", "dev"],
            cwd=workspace,
            env=env(),
            capture_output=True,
            timeout=1.5,
        )
    assert time.monotonic() - started < 25


def test_wait_with_a_timeout_and_poll_say_it_still_runs(workspace: Path) -> None:
    process = run(workspace, "run", "sleep.yml", "--env", "dev", env=env())
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)
        assert process.poll() is None
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.poll() == 130


def test_an_exit_status_that_comes_with_the_pid_is_not_lost(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that ends before the test reads its pid: both answers arrive together."""
    read = fork_server.receive

    def late(conn: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
        time.sleep(0.3)
        return read(conn, max_fds)

    monkeypatch.setattr(fork_server, "receive", late)
    for args, expected in [(("--version",), 0), (("validate", "missing.yml"), 2)]:
        process = run(workspace, *args, env=env())
        process.communicate(timeout=60)
        assert forked_runner.forked(process)
        assert process.returncode == expected, args


@pytest.mark.parametrize("given", ["path", "relative"])
def test_a_folder_that_does_not_exist_raises_as_subprocess_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "gone" if given == "path" else "gone"
    raised = []
    for real in (False, True):
        with (
            forked_runner.for_real(real),
            pytest.raises(FileNotFoundError) as error,
        ):
            subprocess.run([RUNNER, "--version"], cwd=folder, env=env())
        raised.append((type(error.value), error.value.errno, error.value.filename))
    assert raised[0] == raised[1] == (FileNotFoundError, 2, folder)


@pytest.mark.parametrize("given", ["none", "relative"])
def test_the_folder_is_the_tests_current_one_or_relative_to_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.chdir(workspace.parent)
    cwd = None if given == "none" else workspace.name
    if cwd is None:
        monkeypatch.chdir(workspace)
    process = subprocess.Popen(
        [RUNNER, "run", "deploy.yml", "--env", "dev"],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = process.communicate(timeout=60)
    assert forked_runner.forked(process)
    assert process.returncode == 0 and f"cwd={workspace}" in out, out


def test_stdout_writes_through_under_pythonunbuffered_as_a_real_start(workspace: Path) -> None:
    """Under ``PYTHONUNBUFFERED`` (set on some CI machines) a write to a full disk fails where
    it is made, inside the command, not at its end: 70 or 1 against 120."""
    codes = []
    for real in (False, True):
        with (
            forked_runner.for_real(real),
            open("/dev/full", "w") as full,
        ):
            process = subprocess.Popen(
                [RUNNER, "plan", "deploy.yml", "--env", "dev"],
                cwd=workspace,
                env=env(PYTHONUNBUFFERED="1"),
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
            )
        _, err = process.communicate(timeout=60)
        codes.append((process.returncode, "Traceback" in err))
    assert codes[0] == codes[1]


@pytest.mark.parametrize(
    "how",
    ["SIGINT ignored", "SIGHUP ignored", "a lower open-files limit", "SIGUSR1 blocked"],
)
def test_what_the_test_process_changed_is_inherited_by_a_real_start(
    workspace: Path, how: str
) -> None:
    """The warm interpreter has the test process's state as it started; a command started after
    the test process changed what a child inherits is started for real."""
    undo: Any
    if how.endswith("ignored"):
        sig = signal.SIGINT if how.startswith("SIGINT") else signal.SIGHUP
        before = signal.signal(sig, signal.SIG_IGN)
        undo = lambda: signal.signal(sig, before)  # noqa: E731
    elif how.endswith("limit"):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard))
        undo = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))  # noqa: E731
    else:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
        undo = lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])  # noqa: E731
    try:
        process = run(workspace, "--version", env=env())
    finally:
        undo()
    process.communicate(timeout=60)
    assert not forked_runner.forked(process) and process.returncode == 0
    again = run(workspace, "--version", env=env())
    again.communicate(timeout=60)
    assert forked_runner.forked(again)


def test_a_record_key_is_given_to_a_real_start(workspace: Path) -> None:
    """The runner hides it from its steps through /proc, where a fork shows the warm
    interpreter's environment and parents."""
    process = run(workspace, "--version", env=env(RUNNER_RECORD_KEY="ab" * 32))
    process.communicate(timeout=60)
    assert not forked_runner.forked(process) and process.returncode == 0


def test_an_environment_subprocess_refuses_is_refused_as_it_is(workspace: Path) -> None:
    with pytest.raises(ValueError, match="illegal environment variable name"):
        run(workspace, "--version", env={**env(), "BAD=NAME": "1"})


def test_a_command_line_given_as_an_iterator_starts_once(workspace: Path) -> None:
    for argv in ([RUNNER, "--version"], ["true"]):
        process = subprocess.Popen(iter(argv), cwd=workspace, stdout=subprocess.DEVNULL)  # type: ignore[call-overload]
        assert process.wait(timeout=60) == 0


def test_runner_without_path_in_the_environment_is_not_found_as_subprocess_says(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = {k: v for k, v in env().items() if k != "PATH"}
    # found on the test process's PATH, as subprocess does not look (it takes os.defpath)
    monkeypatch.setenv("PATH", f"{RUNNER.rsplit('/', 1)[0]}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(FileNotFoundError):
        subprocess.run(["runner", "--version"], cwd=workspace, env=bare)


def test_a_closed_standard_descriptor_is_closed_for_a_real_start(workspace: Path) -> None:
    """With this process's stdin closed, a fork would get whatever took descriptor 0 here (the
    connection to the waiter); a real start gets it closed. Output goes to a file opened before,
    so that no pipe ``subprocess`` makes takes descriptor 0 either."""
    with open(workspace / "out.txt", "w+b") as out:
        saved = os.dup(0)
        os.close(0)
        try:
            process = subprocess.Popen(
                [RUNNER, "--version"], cwd=workspace, env=env(), stdout=out, stderr=out
            )
            code = process.wait(timeout=60)
        finally:
            os.dup2(saved, 0)
            os.close(saved)
        out.seek(0)
        said = out.read()
    assert not forked_runner.forked(process)
    assert code == 0 and said.startswith(b"runner "), said


def test_a_timeout_holds_while_another_thread_waits(workspace: Path) -> None:
    process = run(workspace, "run", "sleep.yml", "--env", "dev", env=env())
    try:
        _line_with(process, "started")
        waiter = threading.Thread(target=process.wait, daemon=True)
        waiter.start()
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
        assert time.monotonic() - started < 10  # not until the run ends (30 s)
    finally:
        process.kill()
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_a_forked_command_stays_a_zombie_until_its_status_is_read(workspace: Path) -> None:
    """As a child of the test would: its pid is not reused, nor its /proc entry gone, before."""
    process = run(workspace, "--version", env=env())
    assert process.stdout is not None
    process.stdout.read()
    stat = Path(f"/proc/{process.pid}/stat")
    wait_for(lambda: stat.read_text().split(") ")[1].startswith("Z"), what="the command to end")
    time.sleep(0.2)
    assert stat.read_text().split(") ")[1].startswith("Z")  # not reaped behind the test's back
    assert process.wait(timeout=30) == 0
    wait_for(lambda: not stat.exists(), what="the waiter to reap it")


def test_a_high_descriptor_number_is_not_a_problem(workspace: Path) -> None:
    """Past select()'s 1,024: the status is read with poll()."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1100:
        pytest.skip(f"needs 1,100 open descriptors; this process may have {soft} (ulimit -n)")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1030)]
    try:
        process = run(workspace, "--version", env=env())
        assert process.poll() in (None, 0)
        process.communicate(timeout=60)
    finally:
        for fd in held:
            os.close(fd)
    assert forked_runner.forked(process) and process.returncode == 0


@pytest.mark.parametrize(
    "how",
    [
        {"start_new_session": True},
        {"preexec_fn": os.getpid},
        {"env": {**env(), "LANG": "C.UTF-8", "LC_ALL": "C"}},
        {"env": {**env(), "PYTHONIOENCODING": "latin-1"}},
    ],
    ids=["new session", "preexec_fn", "another locale", "another io encoding"],
)
def test_a_start_with_more_than_a_folder_and_an_environment_is_real(
    workspace: Path, how: dict[str, object]
) -> None:
    process = run(workspace, "--version", **{"env": env(), **how})
    out, _ = process.communicate(timeout=60)
    assert not forked_runner.forked(process)
    assert out.startswith("runner ")


def test_another_program_is_started_for_real(workspace: Path) -> None:
    process = subprocess.Popen(["true"], cwd=workspace)
    assert process.wait(timeout=30) == 0 and not forked_runner.forked(process)


def test_without_a_serving_warm_interpreter_commands_start_for_real_and_say_so(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = object.__new__(forked_runner._Server)
    gone.lock = threading.Lock()
    gone.ready = gone.failed = False
    gone.env = forked_runner._server.env  # type: ignore[union-attr]
    gone.path = str(workspace / "no-socket")
    gone.process = subprocess.Popen(["true"], stdout=subprocess.PIPE)
    gone.process.wait(timeout=30)
    monkeypatch.setattr(forked_runner, "_server", gone)
    with pytest.warns(UserWarning, match="start from scratch: the warm interpreter does not serve"):
        first = run(workspace, "--version", env=env())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        second = run(workspace, "--version", env=env())
    for process in (first, second):
        out, _ = process.communicate(timeout=60)
        assert not forked_runner.forked(process) and out.startswith("runner ")
    gone.process.stdout.close()  # type: ignore[union-attr]
