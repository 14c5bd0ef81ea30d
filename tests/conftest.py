from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import collected
from helpers.paths import ROOT, conformance_dir

from runner.steps.scratch import SHARED_MEMORY, safe_parent

__all__ = ["ROOT", "conformance_dir"]

# The tests start `runner` hundreds of times (and xdist's workers start after this file loads):
# with PYTHONDONTWRITEBYTECODE, which some images set, every start would compile the package's
# modules again instead of reading the bytecode cache (.ci/run and bench/common.py drop it too).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.fixture
def conformance() -> Path:
    path = conformance_dir()
    if not path.is_dir():
        pytest.skip(f"conformance vectors not found at {path}")
    return path


def pytest_itemcollected(item: pytest.Item) -> None:
    collected.note(item)


@pytest.fixture(scope="session", autouse=True)
def runtime_dir() -> Iterator[Path]:
    """A private ``$XDG_RUNTIME_DIR`` for this session (each xdist worker has its own), removed at
    its end. The runner makes each run's scratch folder there (``runner/steps/scratch.py``),
    also in the runs the tests start as processes: a run killed with SIGKILL cannot remove its
    folder, which would otherwise stay in ``/dev/shm``. A folder of ours, mode 0700, is one the
    runner takes; made in ``/dev/shm`` it stays in memory, as the runner's own would."""
    parent = (
        SHARED_MEMORY if safe_parent(SHARED_MEMORY) and os.access(SHARED_MEMORY, os.W_OK) else None
    )
    folder = Path(tempfile.mkdtemp(prefix="pytest-runner-", dir=parent))
    folder.chmod(0o700)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(folder))
        yield folder
    shutil.rmtree(folder, ignore_errors=True)
