"""Where things are: the project's root, its tests, the shared conformance vectors."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def conformance_dir() -> Path:
    """The shared conformance vectors: ``../shared/conformance`` beside the project root."""
    override = os.environ.get("RUNNER_CONFORMANCE_DIR")
    return Path(override) if override else ROOT.parent / "shared" / "conformance"
