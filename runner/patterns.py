"""Field patterns (``manual.fields[].pattern``), matched in time linear in the value.

A pattern is written by whoever writes the workflow and matched against what an approver types,
on the runner and on the approval server. Python's ``re`` backtracks: ``^(a+)+$`` against 28 ``a``
and a ``!`` took the server 9 seconds inside a write transaction (issue #17). Patterns are
therefore RE2 syntax, compiled and matched by google-re2 (no backreferences or lookaround: those
are refused when the workflow is validated, and by the server when the request is registered).
"""

from __future__ import annotations

import functools
from typing import Any

import re2

#: the longest pattern accepted (RE2 also bounds the compiled program's memory)
MAX_PATTERN_CHARS = 1_000


class PatternError(ValueError):
    """A pattern that is not RE2 syntax, or too long."""


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; PatternError saying why it cannot be one."""

    if not isinstance(pattern, str):
        raise PatternError("a pattern must be text")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"a pattern is at most {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"{reason} (patterns are RE2 syntax: no backreferences or lookaround)"
        ) from None


def fullmatch(pattern: str, value: str) -> bool:
    """Whether the whole of ``value`` matches ``pattern`` (which must compile)."""
    return compile_pattern(pattern).fullmatch(value) is not None
