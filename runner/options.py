"""What the command line asks of a run beyond the workflow: ``runner run`` and ``runner resume``
pass it to the engine, the step kinds and the approval sources."""

from __future__ import annotations

from msgspec import Struct


class RunOptions(Struct, frozen=True):
    #: ``--detach-on-wait``: save the run and exit 75 at a manual step instead of waiting
    detach_on_wait: bool = False
    #: ``--insecure-local-trust``: read trust files from the working tree (a local try only)
    insecure_local_trust: bool = False
    #: ``--break-glass REASON``: override the freeze and promotion rules the policy lets one
    break_glass: str | None = None
