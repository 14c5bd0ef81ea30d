"""``runner.process.capture``: how the runner runs a short-lived program (git, ssh-keygen)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from runner.engine.seal import KEY_ENV
from runner.process import STDERR_LIMIT, ProgramError, capture, run_process

PY = sys.executable


def test_output_exit_code_and_stderr_are_captured() -> None:
    done = capture(
        [PY, "-c", "import sys; print('out'); sys.stderr.write('fatal: broke\\n'); sys.exit(3)"],
        timeout=60,
    )
    assert (done.exit_code, done.stdout, done.ok) == (3, b"out\n", False)
    assert done.detail() == "fatal: broke"


def test_stdin_from_bytes_and_from_a_file(tmp_path: Path) -> None:
    echo = [PY, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"]
    assert capture(echo, timeout=60, stdin=b"x" * 300_000).stdout == b"x" * 300_000
    (tmp_path / "in").write_bytes(b"from a file")
    assert capture(echo, timeout=60, stdin=tmp_path / "in").stdout == b"from a file"
    with pytest.raises(ProgramError) as caught:
        capture(echo, timeout=60, stdin=tmp_path / "absent")
    assert caught.value.kind == "cannot-read-input"


def test_a_program_that_does_not_read_its_input_is_no_error() -> None:
    done = capture([PY, "-c", "pass"], timeout=60, stdin=b"y" * 4_000_000)
    assert done.exit_code == 0


def test_stdout_past_the_limit_kills_the_program() -> None:
    endless = [PY, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"]
    with pytest.raises(ProgramError) as caught:
        capture(endless, timeout=120, limit=1024 * 1024)
    assert caught.value.kind == "too-much-output"
    assert caught.value.message.endswith("wrote more than 1 MiB; refusing to read it in part")


def test_only_the_tail_of_stderr_is_kept() -> None:
    noisy = [PY, "-c", "import sys; sys.stderr.write('n' * 1_000_000 + '\\nfatal: last\\n')"]
    done = capture(noisy, timeout=60)
    assert len(done.stderr) == STDERR_LIMIT
    assert done.detail() == "fatal: last"


def test_a_missing_program(tmp_path: Path) -> None:
    with pytest.raises(ProgramError) as caught:
        capture([str(tmp_path / "nothing")], timeout=60)
    assert caught.value.kind == "not-found"
    assert caught.value.message == f"cannot run {tmp_path / 'nothing'}: not found"


def test_a_program_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(ProgramError) as caught:
        capture([str(script)], timeout=60)
    assert caught.value.kind == "cannot-start"
    assert "Permission denied" in caught.value.message


def test_a_timeout_is_an_error_naming_the_program() -> None:
    with pytest.raises(ProgramError) as caught:
        capture([PY, "-c", "import time; time.sleep(300)"], timeout=0.5)
    assert caught.value.kind == "timed-out"
    assert caught.value.message == f"{Path(PY).name} did not finish within 0.5 s"


def test_terminal_keeps_the_callers_process_group_and_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A program that may ask a person (ssh-keygen) stays in the terminal's group and writes
    its prompts there; one that may not leads a group of its own."""
    show = [PY, "-c", "import os, sys; print(os.getpgid(0)); sys.stderr.write('prompt\\n')"]
    mine = os.getpgid(0)
    asked = capture(show, timeout=60, terminal=True)
    assert int(asked.stdout) == mine
    assert asked.stderr == b""
    assert "prompt" in capfd.readouterr().err
    alone = capture(show, timeout=60)
    assert int(alone.stdout) != mine
    assert alone.stderr == b"prompt\n"


def test_no_program_the_runner_starts_gets_the_record_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # from the runner's own environment (git, ssh-keygen) and from one given (a step's)
    monkeypatch.setenv(KEY_ENV, "k" * 64)
    monkeypatch.setenv("RUNNER_SEEN", "yes")
    inherited = capture(["env"], timeout=10).stdout.decode()
    given = capture(["env"], timeout=10, env={KEY_ENV: "k" * 64, "A": "1"}).stdout.decode()
    lines: list[str] = []
    run_process(["env"], env={KEY_ENV: "k" * 64, "A": "1"}, cwd=None, on_line=lines.append)
    assert "RUNNER_SEEN=yes" in inherited and "A=1" in given and "A=1" in lines
    for output in (inherited, given, "\n".join(lines)):
        assert "k" * 64 not in output and KEY_ENV not in output
