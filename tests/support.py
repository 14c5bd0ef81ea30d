"""Kept for the tests that import ``support``: the helpers live in :mod:`helpers` now."""

from __future__ import annotations

from helpers.paths import ROOT, conformance_dir

__all__ = ["ROOT", "conformance_dir"]
