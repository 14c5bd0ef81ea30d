"""Helpers shared by the benchmark modules: timing subprocesses, result rows, the runner command.

Every figure is a ratio to a reference measured in the same run (the machine is shared and noisy),
and every timing is the median of several runs, the command and its reference interleaved so that
a burst of load hits both.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable


def runner_command(python: str = PYTHON) -> list[str]:
    """The ``runner`` console script beside ``python`` (as installed), else on the PATH."""
    beside = Path(python).with_name("runner")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("runner")
    if found is None:
        raise SystemExit("runner is not installed (pip install -e .)")
    return [found]


def clean_environ(**extra: str) -> dict[str, str]:
    """The outer CI's variables would change the log format, the run id and the prompt."""
    skip = {
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_OUTPUT",
        "CI",
        "BUILDKITE",
        "JENKINS_URL",
        "TF_BUILD",
        "PYTHONPROFILEIMPORTTIME",
        # Some sandboxes set it; a user's interpreter caches compiled modules, and without the
        # cache every start compiles the runner's source again (about 100 ms).
        "PYTHONDONTWRITEBYTECODE",
    }
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(extra)
    return env


def time_once(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> float:
    """Wall time of one run of ``argv`` (output discarded); raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        env=env if env is not None else clean_environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]!r}")
    return elapsed


def interleaved(commands: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """Run each timing function ``repeat`` times, round-robin; all the samples by name."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, measure in commands.items():
            samples[name].append(measure())
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def row(
    name: str,
    *,
    value: float | None,
    unit: str,
    reference: float | None,
    reference_label: str,
    ratio: float | None,
    goal: str,
    met: bool | None,
    floor: float | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One line of the table. ``ratio`` is always cost / reference cost (lower is better), the
    figure ``--check-baseline`` compares; ``floor`` is the ratio below which a change is noise
    (e.g. CPU use near zero). ``met`` is ``None`` when the goal was not measured."""
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "reference": reference,
        "reference_label": reference_label,
        "ratio": ratio,
        "goal": goal,
        "met": met,
        "floor": floor,
        "details": details or {},
    }
