"""``runner.process.run_process``: how a step's process runs and its output reaches the log.

Each test runs both ways the output is followed: in the calling thread with the process's pidfd
(Linux), and in a reader thread (where there are no pidfds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.waiting import wait_for

from runner import process
from runner.masking import Masker
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
    # `yes`, not a Python loop: the timeout counts from the start, and a Python start took more
    # than the 0.5 s under a load average of 12, so nothing had been written yet
    got: list[str] = []
    result = run_process(["yes", "y" * 100], env=ENV, cwd=None, on_line=got.append, timeout=0.5)
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


# -- a line too long to hold: given in pieces, no secret cut in two --------------------------

SECRET = "S3cr3tValue-0123456789abcdef"


def _pieces(data: bytes, masker: Masker, chunk: int = 1 << 16) -> list[str]:
    shown: list[str] = []
    lines = process._Lines(lambda text: shown.append(masker.mask(text)), masker.showable)
    for start in range(0, len(data), chunk):
        lines.feed(data[start : start + chunk])
    lines.end()
    return shown


@pytest.mark.parametrize("before", range(-40, 8))
def test_a_piece_of_a_long_line_never_ends_inside_a_secret(before: int) -> None:
    # the first piece is looked for once a line passes LINE_LIMIT, at a chunk's end: the secret
    # is put across every place that piece could end (a piece ended there, and showed
    # `S3cr3tValu` in clear before the rest of the line)
    masker = Masker()
    masker.add(SECRET)
    chunks = process.LINE_LIMIT // (1 << 16) + 1
    at = chunks * (1 << 16) - masker.longest + before
    data = bytearray(b"x" * (chunks * (1 << 16) + 300_000))
    data[at : at + len(SECRET)] = SECRET.encode()
    shown = _pieces(bytes(data) + b"\n", masker)
    assert len(shown) >= 2
    assert "".join(shown).count("***") == 1
    for piece in shown:
        assert not any(SECRET[:k] in piece or SECRET[-k:] in piece for k in range(3, 29))


def test_a_secret_repeated_without_a_newline_is_shown_masked_in_bounded_pieces() -> None:
    masker = Masker()
    masker.add(SECRET)
    shown = _pieces(SECRET.encode() * (3 * process.LINE_LIMIT // len(SECRET)) + b"\n", masker)
    assert len(shown) >= 3  # not held whole to its end
    assert all(set(piece.split("***")) == {""} for piece in shown)


def test_a_line_of_overlapping_secrets_is_given_whole_past_the_hold_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `aaaa` overlaps itself all along a line of `a`: no place to cut, held to HOLD_LIMIT only.
    # Smaller limits, the same ratio: the masker finds each overlapping occurrence in Python
    # (about 0.8 s of CPU a MiB of them), and at the real limits this test took 15 s.
    monkeypatch.setattr(process, "LINE_LIMIT", 16 * 1024)
    monkeypatch.setattr(process, "HOLD_LIMIT", 4 * process.LINE_LIMIT)
    masker = Masker()
    masker.add("aaaa")
    data = b"a" * (process.HOLD_LIMIT + 3 * process.LINE_LIMIT) + b"\n"
    shown = _pieces(data, masker, chunk=1024)
    assert shown == ["***", "***"]


def test_a_long_line_cut_at_a_character_of_several_bytes_decodes_whole() -> None:
    masker = Masker()
    masker.add(SECRET)
    data = "é€😀".encode() * (process.LINE_LIMIT // 5)
    shown = _pieces(data + b"\n", masker, chunk=65_537)
    assert len(shown) >= 2
    assert "".join(shown) == data.decode()


def test_an_error_deciding_where_a_piece_ends_is_the_lines_error() -> None:
    """``showable`` (the step's masker, and the step's variables read before the cut) raising
    ended the reading with an internal error; it is kept as ``on_line``'s errors are: nothing
    more is shown, the reading goes on to the end, and the step fails."""
    shown: list[str] = []

    def showable(text: str, continued: bool) -> int:
        raise PermissionError(13, "Permission denied")

    lines = process._Lines(shown.append, showable)
    for _ in range(process.LINE_LIMIT // (1 << 16) + 3):
        lines.feed(b"x" * (1 << 16))
    lines.feed(b"\nafter\n")
    lines.end()
    assert shown == []
    assert [type(error) for error in lines.errors] == [PermissionError]


def test_a_line_past_the_limit_is_given_in_pieces_that_cut_no_character_nor_secret() -> None:
    from runner.process import LINE_LIMIT, _Lines

    secret = "S3CRET-" * 9
    text = "é" * (LINE_LIMIT // 2 - 3) + secret + "y" * LINE_LIMIT + secret + "é" * 5
    pieces: list[str] = []
    masker = Masker()
    masker.add(secret)
    lines = _Lines(pieces.append, masker.showable)
    data = text.encode() + b"\n"
    for start in range(0, len(data), 65536):
        lines.feed(data[start : start + 65536])
    lines.end()
    assert len(pieces) > 1
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    assert sum(piece.count(secret) for piece in pieces) == 2  # each whole in one piece
    assert max(len(piece.encode()) for piece in pieces) <= LINE_LIMIT + 65536 + 4 * len(secret)


# -- stopping a process group ----------------------------------------------------------------


def _state(pid: int) -> bytes:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return data[data.rfind(b")") + 2 :].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc (Linux)")
def test_a_group_of_only_an_unreaped_zombie_is_not_waited_for() -> None:
    """A step's shell killed with its group leaves its children to init, which reaps them when
    it gets to it: about 2 s in this sandbox, never with ``tail -f /dev/null`` as a container's
    PID 1. Counted as members, each timed-out or cancelled step waited the whole grace. Here
    the zombie's parent is this test, which does not reap it until the end."""
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: _state(child.pid) == b"Z", what="the child to be a zombie")
        assert process.group_running(child.pid) is False
        started = time.monotonic()
        process.terminate_group(child.pid, grace=30)
        # not the 30 s grace (a loose bound: it returns at its first look)
        assert time.monotonic() - started < 10
    finally:
        child.kill()
        child.wait()
    assert process.group_running(child.pid) is False  # reaped: no such group


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc (Linux)")
def test_a_member_that_ignores_sigterm_still_counts_and_is_killed() -> None:
    leader = subprocess.Popen(
        ["bash", "-c", "trap '' TERM; echo ready; sleep 30 & wait"],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    try:
        assert leader.stdout is not None and leader.stdout.readline() == b"ready\n"
        assert process.group_running(leader.pid)
        process.terminate_group(leader.pid, grace=0.3, reap=leader.poll)
        leader.wait(10)
        wait_for(lambda: not process.group_running(leader.pid), what="the group to be gone")
    finally:
        leader.kill()
        leader.wait()
