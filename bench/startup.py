"""Start-up: ``runner --version`` and ``runner --help`` against ``python -c pass``.

Measured twice: in the development venv (an editable install, whose import finder is loaded by
every interpreter start, ``python -c pass`` included) and in a fresh non-editable install (a wheel
built from a copy of the tree, installed with ``--no-deps`` into a new venv that finds its runtime
dependencies in the development venv's site-packages through a ``.pth`` line). The goal, under
60 ms, is for the non-editable install: that is what users run.

Also lists the modules each command imports (``-X importtime``) and fails the row when a heavy
dependency (jsonschema, requests, ruamel, the server stack) is among them.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    PYTHON,
    clean_environ,
    interleaved,
    median,
    plain_install,
    row,
    runner_command,
    time_once,
)

GOAL_MS = 60.0
#: top-level packages that --version and --help must not import
HEAVY = (
    "jsonschema",
    "requests",
    "urllib3",
    "ruamel",
    "cryptography",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "jinja2",
    "pydantic",
    "markdown_it",
)


def imported_modules(argv: list[str]) -> list[str]:
    """The modules a command imports, in order, from ``-X importtime``."""
    done = subprocess.run(
        argv,
        env=clean_environ(PYTHONPROFILEIMPORTTIME="1"),
        capture_output=True,
        text=True,
        check=False,
    )
    modules = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.append(name)
    return modules


def measure(python: str, repeat: int, cwd: Path) -> dict[str, list[float]]:
    """Interleaved timings; ``cwd`` is an empty folder (``python -c`` imports from there)."""
    runner = runner_command(python)
    env = clean_environ()
    commands = {
        "python -c pass": lambda: time_once([python, "-c", "pass"], env=env, cwd=cwd),
        "runner --version": lambda: time_once([*runner, "--version"], env=env, cwd=cwd),
        "runner --help": lambda: time_once([*runner, "--help"], env=env, cwd=cwd),
    }
    for measure_once in commands.values():  # warm the page cache and the .pyc files
        measure_once()
    return interleaved(commands, repeat)


def rows_for(label: str, samples: dict[str, list[float]], goal: bool) -> list[dict[str, Any]]:
    reference = median(samples["python -c pass"]) * 1000
    result = []
    for command in ("runner --version", "runner --help"):
        value = median(samples[command]) * 1000
        result.append(
            row(
                f"start-up: {command} ({label})",
                value=value,
                unit="ms",
                reference=reference,
                reference_label="python -c pass",
                ratio=value / reference,
                goal=f"< {GOAL_MS:.0f} ms" if goal else "info",
                met=(value < GOAL_MS) if goal else None,
                # a few ms over an interpreter of ~20 ms: what a CI image's site-packages adds
                # moves it by half (1.1 here, 1.7 in a fresh clone); importing click would be 3x
                floor=1.5,
                details={
                    "samples_ms": [t * 1000 for t in samples[command]],
                    "reference_samples_ms": [t * 1000 for t in samples["python -c pass"]],
                },
            )
        )
    return result


def run(quick: bool) -> list[dict[str, Any]]:
    repeat = 10 if quick else 30
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as temp:
        empty = Path(temp) / "cwd"
        empty.mkdir()
        plain_python, how = plain_install()
        editable = measure(PYTHON, repeat, empty)
        if plain_python is not None:
            plain = measure(plain_python, repeat, empty)
            rows += rows_for("installed", plain, goal=True)
            finder = (median(editable["python -c pass"]) - median(plain["python -c pass"])) * 1000
            rows += rows_for("editable", editable, goal=False)
            for item in rows[-2:]:
                item["details"]["editable_finder_ms"] = finder
        else:
            print(
                f"start-up: no non-editable install ({how}); measuring the editable one",
                file=sys.stderr,
            )
            rows += rows_for("editable", editable, goal=True)
            for item in rows:
                item["details"]["no_plain_install"] = how

        target = plain_python or PYTHON
        for option in ("--version", "--help"):
            modules = imported_modules([*runner_command(target), option])
            heavy = sorted({m for m in modules if m.split(".")[0] in HEAVY})
            rows.append(
                row(
                    f"start-up: heavy imports for {option}",
                    value=len(heavy),
                    unit="modules",
                    reference=len(modules),
                    reference_label="modules imported",
                    ratio=None,
                    goal="0",
                    met=not heavy,
                    details={
                        "heavy": heavy,
                        "runner_modules": [m for m in modules if m.startswith("runner")],
                        "top_level_packages": sorted({m.split(".")[0] for m in modules}),
                    },
                )
            )
    return rows
