"""What a step's process gets from ``runner.process.run_process``: its own session, ``/dev/null``
as stdin, one pipe for stdout and stderr, no descriptor of the runner's, SIGPIPE at its default,
its working folder, the program exec's search of its own ``PATH`` finds, its exit status."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from runner.process import run_process

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def output_of(argv: list[str], cwd: str | None = None) -> tuple[int, list[str]]:
    lines: list[str] = []
    result = run_process(argv, env=ENV, cwd=cwd, on_line=lines.append)
    return result.exit_code, lines


def test_the_process_leads_its_own_session_with_null_stdin() -> None:
    code = (
        "import os, sys; print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid()); "
        "print(os.path.realpath('/proc/self/fd/0'), flush=True); "
        "print('err', file=sys.stderr)"
    )
    assert output_of([sys.executable, "-c", code]) == (0, ["True True", "/dev/null", "err"])


def test_sigpipe_is_at_its_default() -> None:
    """Python ignores SIGPIPE; a step's ``yes | head`` must not print "Broken pipe"."""
    code, lines = output_of(["grep", "SigIgn", "/proc/self/status"])
    ignored = int(lines[0].split()[1], 16)
    assert code == 0
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))
    code, lines = output_of(["bash", "-c", "yes | head -n 1"])
    assert (code, lines) == (0, ["y"])


def test_no_descriptor_of_the_runner_reaches_the_process(tmp_path: Path) -> None:
    """One the runner inherited from its parent (a CI agent's, a jobserver's) included."""
    inherited = os.open(tmp_path / "inherited", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(inherited, True)
    try:
        code, lines = output_of(["ls", "/proc/self/fd"])
    finally:
        os.close(inherited)
    # ls's own listing of the folder is the one above 2
    assert code == 0
    assert [int(fd) for fd in lines if int(fd) > 2] in ([], [3])
    assert str(inherited) not in lines or inherited == 3


def test_the_working_folder_is_the_steps(tmp_path: Path) -> None:
    assert output_of(["pwd"], str(tmp_path)) == (0, [str(tmp_path)])
    assert output_of(["pwd"], os.getcwd()) == (0, [os.getcwd()])


def test_exit_codes_and_a_signal() -> None:
    assert output_of(["bash", "-c", "exit 7"])[0] == 7
    assert output_of(["bash", "-c", "kill -9 $$"])[0] == -signal.SIGKILL


def test_a_program_that_cannot_start(tmp_path: Path) -> None:
    script = tmp_path / "noexec"
    script.write_bytes(b"\x00\x01 not a program")
    script.chmod(0o755)
    code, lines = output_of([str(script)])
    assert code == 127
    assert lines == [f"cannot start {script}: Exec format error"]
    code, lines = output_of(["no-such-program-here"])
    assert code == 127
    assert lines == ["cannot start no-such-program-here: No such file or directory"]
    missing = tmp_path / "missing"
    assert output_of([str(missing)]) == (
        127,
        [f"cannot start {missing}: No such file or directory"],
    )


def tool(folder: Path, says: str, *, program: bool = True) -> None:
    folder.mkdir(exist_ok=True)
    made = folder / "tool"
    made.write_text(f"#!/bin/sh\necho {says}\n" if program else "echo no #! line\n")
    made.chmod(0o755)


def test_the_program_is_the_one_execs_search_of_the_childs_path_finds(
    tmp_path: Path,
) -> None:
    """The child's ``PATH`` (a step's ``$RUNNER_PATH`` comes first there), searched at each
    start: a program put into an earlier folder since (a step installing a newer one) is the
    one started, and a file exec cannot start (no ``#!`` line) is passed over, as exec's own
    search does."""
    early, late = tmp_path / "early", tmp_path / "late"
    tool(late, "late")
    env = {"PATH": f"{early}:{late}:/usr/bin:/bin"}

    def run() -> tuple[int, list[str]]:
        lines: list[str] = []
        return run_process(["tool"], env=env, cwd=None, on_line=lines.append).exit_code, lines

    assert run() == (0, ["late"])
    tool(early, "early")
    assert run() == (0, ["early"])
    tool(early, "", program=False)
    assert run() == (0, ["late"])
    (late / "tool").unlink()
    code, lines = run()
    assert code == 127
    assert lines == ["cannot start tool: Exec format error"]


def test_a_relative_path_folder_is_the_steps_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool(tmp_path / "bin", "relative")
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    result = run_process(
        ["tool"], env={"PATH": "bin:/usr/bin:/bin"}, cwd=str(tmp_path), on_line=lines.append
    )
    assert (result.exit_code, lines) == (0, ["relative"])


def test_steps_start_after_the_runners_own_folder_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that removes the folder the runner was started from (``rm -rf build`` run from
    ``build/``): the next steps run in the workspace as before."""
    started_in = tmp_path / "build"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    started_in.rmdir()
    assert output_of(["pwd"], str(tmp_path)) == (0, [str(tmp_path)])
