"""``runner.process.run_process``: how a step's process runs and its output reaches the log.

Each test runs both ways the output is followed: in the calling thread with the process's pidfd
(Linux), and in a reader thread (where there are no pidfds)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers.waiting import wait_for

from runner import process
from runner.process import run_process

PY = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture(params=["pidfd", "thread"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "pidfd":
        if not hasattr(os, "pidfd_open"):
            pytest.skip("no pidfd_open here")
    else:
        monkeypatch.setattr(process, "_PIDFD", False)
    return str(request.param)


def lines_of(code: str, timeout: float | None = None) -> tuple[process.ProcessResult, list[str]]:
    got: list[str] = []
    result = run_process([PY, "-c", code], env=ENV, cwd=None, on_line=got.append, timeout=timeout)
    return result, got


def test_lines_are_cut_at_newlines_across_reads(way: str) -> None:
    # a line longer than one read, CRLF and a lone CR, an empty line, invalid UTF-8, and a last
    # line without a newline
    code = (
        "import sys, time; out = sys.stdout.buffer\n"
        "out.write(b'a' * 200000 + b'\\r\\nb\\r\\n\\nc\\xff'); out.flush(); time.sleep(0.05)\n"
        "out.write(b'd\\ne')"
    )
    result, got = lines_of(code)
    assert result.exit_code == 0
    assert got == ["a" * 200000, "b", "", "c\ufffdd", "e"]


def test_exit_code_and_merged_stderr(way: str) -> None:
    result, got = lines_of(
        "import sys; print('out', flush=True); sys.stderr.write('err\\n'); sys.exit(3)"
    )
    assert (result.exit_code, got) == (3, ["out", "err"])


def test_a_handler_error_stops_the_calls_and_the_output_is_still_drained(way: str) -> None:
    calls: list[str] = []

    def handler(line: str) -> None:
        calls.append(line)
        raise ValueError(line)

    # more than a pipe holds: the process would block forever if the rest were not read
    result = run_process(
        [PY, "-c", "print('x' * 1000 + '\\n' * 1000, end='')"], env=ENV, cwd=None, on_line=handler
    )
    assert (result.exit_code, result.output_error, len(calls)) == (0, "ValueError", 1)


def test_output_left_open_by_a_background_process(
    way: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The step ends when its process exits, after a short drain; what a process it left
    behind writes later still reaches the handler (as it did with a reader thread for every
    step)."""
    monkeypatch.setattr(process, "DRAIN_SECONDS", 0.2)
    go = tmp_path / "go"
    late = (
        "import os, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        "print('late', flush=True)"
    )
    code = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {late!r}])\n"
    code += "print('early')"
    result, got = lines_of(code)
    assert (result.exit_code, got) == (0, ["early"])
    go.touch()
    wait_for(lambda: "late" in got, what="the late line")
    assert got == ["early", "late"]


def test_a_timeout_stops_a_process_that_never_stops_writing(way: str) -> None:
    result, got = lines_of("while True: print('y' * 100, flush=True)", timeout=0.5)
    assert result.timed_out
    assert result.exit_code != 0
    assert got and set(got) == {"y" * 100}


def test_a_process_that_closes_its_output_and_goes_on(way: str) -> None:
    result, got = lines_of(
        "import os, time; print('bye', flush=True); os.close(1); os.close(2); time.sleep(0.3)"
    )
    assert (result.exit_code, got) == (0, ["bye"])


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_no_descriptor_is_left_open(way: str, tmp_path: Path) -> None:
    """The output's pipe is the runner's own: both ends are closed whatever happens, a process
    that cannot start, one that times out, one that exits at once (a runner of thousands of
    steps would run out of descriptors)."""
    lines_of("print('warm')")  # /dev/null, opened once
    before = descriptors()
    for _ in range(3):
        lines_of("print('x')")
        lines_of("import time; time.sleep(5)", timeout=0.05)
        run_process([str(tmp_path / "missing")], env=ENV, cwd=None, on_line=lambda _: None)
    assert descriptors() == before


def test_a_line_past_the_limit_is_given_in_pieces_that_cut_no_character_nor_secret() -> None:
    from runner.process import LINE_LIMIT, _Lines

    secret = "S3CRET-" * 9
    text = "é" * (LINE_LIMIT // 2 - 3) + secret + "y" * LINE_LIMIT + secret + "é" * 5
    pieces: list[str] = []
    lines = _Lines(pieces.append, lambda: len(secret))
    data = text.encode() + b"\n"
    for start in range(0, len(data), 65536):
        lines.feed(data[start : start + 65536])
    lines.end()
    assert len(pieces) > 1
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    assert sum(piece.count(secret) for piece in pieces) == 2  # each whole in one piece
    assert max(len(piece.encode()) for piece in pieces) <= LINE_LIMIT + 65536 + 4 * len(secret)
