"""Checks of ``${{ }}`` and ``#{}`` text in a workflow (filled in with the expressions issue)."""

from __future__ import annotations

from runner.errors import Diagnostic
from runner.model import Workflow


def check_expressions(workflow: Workflow) -> list[Diagnostic]:
    return []
