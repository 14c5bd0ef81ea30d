"""Fixtures for the attack tests, borrowed from the suites that own them.

``tests/engine/conftest.py`` (a workspace, runs in-process and as a subprocess) is loaded under
the module name ``run_helpers`` (as ``tests/steps`` does) and ``tests/approvals/conftest.py``
(real ssh-keygen keys and the git world of the ``file`` source) under ``approval_world``; their
fixtures are re-exported here so that pytest finds them.
"""

from __future__ import annotations

from helpers.paths import ROOT, borrow

TESTS = ROOT / "tests"


run_helpers = borrow("run_helpers", TESTS / "engine" / "conftest.py")
approval_world = borrow("approval_world", TESTS / "approvals" / "conftest.py")

workspace = run_helpers.workspace
keys = approval_world.keys
world_template = approval_world.world_template
world = approval_world.world
server_helpers = borrow("server_helpers", TESTS / "server" / "conftest.py")
