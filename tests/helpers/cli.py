"""The ``runner`` command in this process."""

from __future__ import annotations

import contextlib
import io

from runner.cli.main import main


def cli(*args: str) -> tuple[int, str]:
    """``runner ARGS...`` in this process: its exit code and what it printed on stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()
