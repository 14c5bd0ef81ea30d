"""Kept for the tests that import ``support``: the helpers live in :mod:`helpers` now."""

from __future__ import annotations

from helpers.paths import ROOT, borrow, conformance_dir

__all__ = ["ROOT", "borrow", "conformance_dir"]
