"""The approval-source interface and its registry.

A source shows an interruption to people and reports what they submit; it never decides. The
runner polls every source of a step together and judges all submissions as one quorum
(:mod:`runner.approvals.quorum`). A source that fails to answer reports nothing: a failure is
never a decision.
"""

from __future__ import annotations

from typing import Protocol

from runner.approvals.request import Interruption, Submission


class ApprovalSource(Protocol):
    name: str
    #: how often (seconds) the waiting loop should poll this source
    interval: float

    def register(self, request: Interruption) -> None:
        """Make the request visible (create it on a server, start a prompt); idempotent."""

    def poll(self, request: Interruption) -> list[Submission]:
        """Every submission seen so far for ``request`` (the runner de-duplicates)."""

    def cancel(self, request: Interruption, reason: str) -> None:
        """Withdraw the request (timed out, cancelled, or decided elsewhere)."""

    def instructions(self, request: Interruption) -> list[str]:
        """How a person approves through this source: a command to paste or a link."""
