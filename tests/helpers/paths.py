"""Where things are, and how one test folder reuses another's conftest."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def conformance_dir() -> Path:
    """The shared conformance vectors: ``../shared/conformance`` beside the project root."""
    override = os.environ.get("RUNNER_CONFORMANCE_DIR")
    return Path(override) if override else ROOT.parent / "shared" / "conformance"


def borrow(name: str, path: Path) -> ModuleType:
    """Load another folder's conftest under a module name of its own (once per session), so
    that suites can share fixtures without two modules both called ``conftest``."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
