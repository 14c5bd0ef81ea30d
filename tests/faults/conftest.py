"""Fixtures for the fault-injection tests, borrowed from the suites that own them.

``tests/engine/conftest.py`` (a workspace, runs in-process and as a subprocess) is loaded under
the module name ``run_helpers`` (as ``tests/steps`` does) and ``tests/approvals/conftest.py``
(real ssh-keygen keys and the git world of the ``file`` source) under ``approval_world``; their
fixtures are re-exported here so that pytest finds them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parents[1]


def borrow(name: str, path: Path) -> ModuleType:
    """Load another folder's conftest under a module name of its own (once per session)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


run_helpers = borrow("run_helpers", TESTS / "engine" / "conftest.py")
approval_world = borrow("approval_world", TESTS / "approvals" / "conftest.py")

workspace = run_helpers.workspace
keys = approval_world.keys
world_template = approval_world.world_template
world = approval_world.world
