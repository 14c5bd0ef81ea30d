from __future__ import annotations

from pathlib import Path

import pytest
from helpers import collected
from helpers.paths import ROOT, conformance_dir

__all__ = ["ROOT", "conformance_dir"]


@pytest.fixture
def conformance() -> Path:
    path = conformance_dir()
    if not path.is_dir():
        pytest.skip(f"conformance vectors not found at {path}")
    return path


def pytest_itemcollected(item: pytest.Item) -> None:
    collected.note(item)
