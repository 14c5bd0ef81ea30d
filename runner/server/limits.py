"""How big what the server accepts may be (issue #17: a 60 MB ``instructions`` was stored).

The body of every request is bounded before it is parsed (413, by ``runner.server.bodies`` with
:func:`body_limit`), and each field of an interruption after it is parsed (422), so that a runner
token cannot fill the database, the approvers' pages or the server's memory. The sizes are
documented in docs/approvals.md.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from runner.approvals.request import Interruption
from runner.bounded import holds_half_character
from runner.request_limits import (
    FOLLOWING_STEPS,
    INPUTS_BYTES,
    INSTRUCTIONS_CHARS,
    KIB,
    LIST_ITEMS,
    PATTERN_CHARS,
    TEXT_CHARS,
)

MIB = 1024 * KIB

#: a run record (``PUT /runs/ID``): every step's outputs and approvals
RUN_RECORD_BYTES = 4 * MIB
#: any other request body
BODY_BYTES = 256 * KIB

NOTES_CHARS = 10_000  # a submission's notes


# -- connections (``runner server`` options; docs/approvals.md, limits) -----------------------

#: how long a connection may take to send a request's headers (``runner.server.connections``)
HEADER_SECONDS = 10.0
#: how long a request's body may take to arrive, from its headers (``runner.server.bodies``): a
#: client that sent part of one and stalled held its buffer and connection for ever
BODY_SECONDS = 30.0
#: how long an idle kept-alive connection stays open (uvicorn's own default)
KEEP_ALIVE_SECONDS = 5
#: open connections past which new requests are answered 503: each waiting runner holds one
#: long-poll, so this is well above the 1,000 waiting runners the benchmarks measure
CONNECTIONS = 2_000


def body_limit(scope: MutableMapping[str, Any]) -> int:
    """The most a request to this route may send (``runner.server.bodies`` refuses more)."""
    path = str(scope.get("path", ""))
    if scope.get("method") == "PUT" and path.startswith("/api/v1/runs/"):
        return RUN_RECORD_BYTES
    return BODY_BYTES


def request_problem(request: Interruption) -> str | None:
    """Why an interruption's fields are too big to keep, or None."""
    if len(request.instructions) > INSTRUCTIONS_CHARS:
        return f"`instructions` is over {INSTRUCTIONS_CHARS} characters"
    texts = {
        "step_name": request.step_name,
        "title": request.title,
        "environment": request.environment,
        "workflow": request.workflow,
        "digest": request.digest,
        "commit": request.commit or "",
        "created": request.created,
        "deadline": request.deadline or "",
        "started_by": request.started_by,
        "run_started": request.run_started,
        "step_id": request.step_id,
    }
    for name, value in texts.items():
        if not isinstance(value, str) or len(value) > TEXT_CHARS:
            return f"`{name}` must be text of at most {TEXT_CHARS} characters"
    lists: dict[str, tuple[Any, ...]] = {
        "teams": request.teams,
        "quorum": request.quorum,
        "fields": request.fields,
        "sources": request.sources,
    }
    for name, items in lists.items():
        if len(items) > LIST_ITEMS:
            return f"`{name}` has more than {LIST_ITEMS} items"
    words = [*request.teams, *(rule[0] for rule in request.quorum), *request.sources]
    if any(len(word) > TEXT_CHARS for word in words):
        return f"a team or source name is over {TEXT_CHARS} characters"
    for name, steps in (("following_steps", request.following_steps), ("skipped", request.skipped)):
        if len(steps) > FOLLOWING_STEPS or any(
            not isinstance(step, str) or len(step) > TEXT_CHARS for step in steps
        ):
            return f"`{name}` must be at most {FOLLOWING_STEPS} names of {TEXT_CHARS} chars"
    for spec in request.fields:
        if len(spec.options) > LIST_ITEMS:
            return f"field {spec.name!r} has more than {LIST_ITEMS} options"
        parts = [spec.name, spec.type, spec.label, *spec.options]
        if any(not isinstance(part, str) or len(part) > TEXT_CHARS for part in parts):
            return f"field {str(spec.name)[:50]!r}: each text is at most {TEXT_CHARS} characters"
        if spec.pattern is not None and len(spec.pattern) > PATTERN_CHARS:
            return f"field {spec.name!r}: `pattern` is over {PATTERN_CHARS} characters"
    try:
        size = len(json.dumps(request.inputs))
    except (TypeError, ValueError, RecursionError):
        return "`inputs` must be JSON"
    if size > INPUTS_BYTES:
        return f"`inputs` is over {INPUTS_BYTES // KIB} KiB"
    return None


def unwritable(value: Any) -> str | None:
    """Why JSON ``value`` (a parsed request or submission) cannot be kept and shown again, or
    None: half of a character (a lone ``\\ud800`` escape is valid JSON, but no answer, page or
    log can be written with it), or a number JSON cannot write (``NaN``, ``Infinity``). Stored,
    either made every listing that held it answer 500 (attack pass)."""
    if holds_half_character(value):
        return "it holds half of a character (a lone \\ud800-\\udfff escape)"
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return "it holds a number JSON cannot write (NaN or Infinity)"
    return None


def submission_problem(notes: str, fields: dict[str, str]) -> str | None:
    """Why a submission's notes or fields are too big to keep, or None (the web form's
    submissions skipped these limits when only the API checked them: attack pass)."""
    if len(notes) > NOTES_CHARS:
        return f"notes are at most {NOTES_CHARS:,} characters"
    if len(fields) > LIST_ITEMS or any(
        len(k) > TEXT_CHARS or len(v) > TEXT_CHARS for k, v in fields.items()
    ):
        return (
            f"at most {LIST_ITEMS} fields, each name and value of at most {TEXT_CHARS:,} characters"
        )
    return None
