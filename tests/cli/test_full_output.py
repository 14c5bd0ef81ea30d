"""``runner --version`` and ``runner --help`` (answered before click is imported) with an output
that cannot take them: a full disk ended in a traceback; a reader gone ends quietly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers.environ import host_env
from helpers.run_helpers import RUNNER


@pytest.mark.parametrize("args", [["--version"], ["--help"]], ids=["version", "help"])
@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
def test_a_full_disk_is_one_line_and_exit_1(
    tmp_path: Path, args: list[str], unbuffered: str
) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [str(RUNNER), *args],
            cwd=tmp_path,
            env=host_env(PYTHONUNBUFFERED=unbuffered, COLUMNS="100"),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == "error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("args", [["--version"], ["--help"]], ids=["version", "help"])
def test_a_reader_gone_is_quiet_and_exit_1(tmp_path: Path, args: list[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the command starts
    try:
        done = subprocess.run(
            [str(RUNNER), *args],
            cwd=tmp_path,
            env=host_env(PYTHONUNBUFFERED="1", COLUMNS="100"),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1 and done.stderr == ""
