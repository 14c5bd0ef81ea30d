"""How big the parts of a question put to the approval server may be.

The server refuses a larger one (422, :func:`runner.server.limits.request_problem`), so that a
runner token cannot fill its database or its approvers' pages; ``runner validate`` checks the
parts a workflow writes itself (:mod:`runner.load.limit_checks`), so that a gate does not fail
only once a deployment reaches it. The sizes are documented in docs/approvals.md.
"""

from __future__ import annotations

KIB = 1024

INSTRUCTIONS_CHARS = 64 * KIB
TEXT_CHARS = 1_000  # title, step name, environment, workflow, labels, ...
LIST_ITEMS = 100  # teams, quorum rules, fields, choice options
FOLLOWING_STEPS = 1_000
PATTERN_CHARS = 1_000
INPUTS_BYTES = 64 * KIB
