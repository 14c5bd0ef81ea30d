"""``runner`` as a process of its own whose address space is capped, for "make it huge" attacks:
a file or an output read whole ends in a ``MemoryError`` there, not in the test machine's memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the cap: far above what the runner needs, far below what reading a huge thing whole takes
MEMORY = 1024 * 1024 * 1024


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def limited_runner(
    cwd: Path, *args: str, stdout: Any = subprocess.PIPE, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``runner ARGS`` in ``cwd`` with a bare environment and at most :data:`MEMORY`."""
    environ = {"PATH": os.environ["PATH"], "HOME": str(cwd), "NO_COLOR": "1"}
    if "PYTHONPATH" in os.environ:
        environ["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-c", "from runner.cli.main import entry; entry()", *args],
        cwd=cwd,
        env=environ,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        preexec_fn=_limited,
        check=False,
    )
