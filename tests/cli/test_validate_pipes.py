"""``runner validate`` of a workflow that can be read only once: process substitution, standard
input, a FIFO. Each file was read twice (once to find usage errors, once to check it), and the
second read found nothing: "file is empty", or a wait for a second writer that never came."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from helpers.environ import host_env
from helpers.run_helpers import RUNNER

GOOD = 'name: Piped\nsteps:\n  - id: a\n    name: A\n    run: "true"\n'
BAD = "name: Piped\nsteps:\n  - id: a\n    run: 1\n"


def validate(
    tmp_path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUNNER), "validate", *args],
        cwd=tmp_path,
        env=host_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_standard_input_is_read_once(tmp_path: Path) -> None:
    assert validate(tmp_path, "/dev/stdin", stdin=GOOD).returncode == 0
    bad = validate(tmp_path, "/dev/stdin", stdin=BAD)
    assert bad.returncode == 1 and "/dev/stdin:3:" in bad.stdout and "empty" not in bad.stdout


def test_process_substitution_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "deploy.yml").write_text(GOOD)
    done = subprocess.run(
        ["bash", "-c", f"{RUNNER} validate <(cat deploy.yml)"],
        cwd=tmp_path,
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_fifo_is_read_once(tmp_path: Path) -> None:
    fifo = tmp_path / "deploy.yml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(GOOD,), daemon=True)
    writer.start()
    assert validate(tmp_path, "deploy.yml").returncode == 0
    writer.join(10)
