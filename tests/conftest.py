from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def conformance_dir() -> Path:
    """The shared conformance vectors: ``../shared/conformance`` beside the project root."""
    override = os.environ.get("RUNNER_CONFORMANCE_DIR")
    return Path(override) if override else ROOT.parent / "shared" / "conformance"


@pytest.fixture
def conformance() -> Path:
    path = conformance_dir()
    if not path.is_dir():
        pytest.skip(f"conformance vectors not found at {path}")
    return path
