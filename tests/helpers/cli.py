"""The ``runner`` command in this process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from runner.cli.main import main


def cli(*args: str) -> tuple[int, str]:
    """``runner ARGS...`` in this process: its exit code and what it printed on stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def cli_in(
    monkeypatch: pytest.MonkeyPatch, cwd: Path, environ: Mapping[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """``runner ARGS...`` in this process as a subprocess would run it: in ``cwd``, with exactly
    ``environ``; its exit code, stdout and stderr (for a run on a fake clock, see
    :func:`helpers.clock.fake_time`, where a subprocess would wait out real time)."""
    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as patch:
        patch.chdir(cwd)
        for name in set(os.environ) - set(environ):
            patch.delenv(name)
        for name, value in environ.items():
            patch.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    return subprocess.CompletedProcess(["runner", *args], code, out.getvalue(), err.getvalue())
