"""Shared test helpers, importable from any test folder as ``support`` (``conftest`` is not:
each folder may have its own)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def conformance_dir() -> Path:
    """The shared conformance vectors: ``../shared/conformance`` beside the project root."""
    override = os.environ.get("RUNNER_CONFORMANCE_DIR")
    return Path(override) if override else ROOT.parent / "shared" / "conformance"
