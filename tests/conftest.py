from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import collected
from helpers.paths import ROOT, conformance_dir

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
