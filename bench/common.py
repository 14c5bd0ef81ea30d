"""Helpers shared by the benchmark modules: timing subprocesses, result rows, the runner command.

Every figure is a ratio to a reference measured in the same run (the machine is shared and noisy),
and every timing is the median of several runs, the command and its reference interleaved so that
a burst of load hits both.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
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


_plain: tuple[str | None, str] | None = None


def plain_install() -> tuple[str | None, str]:
    """The python of a fresh non-editable install of the tree (built once per benchmark run,
    removed at exit), or None and why there is none. Users run an installed copy: the editable
    install's import finder costs every interpreter start about 20 ms more."""
    global _plain
    if _plain is None:
        folder = tempfile.mkdtemp(prefix="bench-install-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _plain = build_plain_install(Path(folder))
    return _plain


def build_plain_install(folder: Path) -> tuple[str | None, str]:
    """A fresh non-editable install in ``folder``; its python, or None and why not."""
    source = folder / "src"
    source.mkdir()
    for name in ("runner", "pyproject.toml", "README.md"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    wheels = folder / "wheels"
    venv = folder / "venv"
    pip = [PYTHON, "-m", "pip", "-q", "--disable-pip-version-check"]
    steps = [
        # build isolation: pyproject.toml needs a newer setuptools than the venv's
        [*pip, "wheel", "--no-deps", str(source), "-w", str(wheels)],
        [PYTHON, "-m", "venv", "--without-pip", str(venv)],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            return None, f"{' '.join(argv[:6])}... failed: {done.stderr.strip()[-500:]}"
    python = venv / "bin" / "python"
    wheel = next(wheels.glob("*.whl"))
    argv = [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        return None, f"pip install of the wheel failed: {done.stderr.strip()[-500:]}"
    # runtime dependencies from the development venv (a plain path: that folder's own .pth
    # files, the editable finder among them, are not processed)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "zz-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(python), "wheel built and installed"
