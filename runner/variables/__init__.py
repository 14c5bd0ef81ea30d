"""Variables: Octopus's ``#{}`` substitution language (and, in ``resolve``, scoped values).

Public API::

    substitute(template, variables, *, now=None, derived=None) -> str
    check(template) -> list[Problem]          # Problem(offset, message, verbatim)
    escape(value) -> str                      # a value as text that is never a template
    is_truthy(value) -> bool                  # Octopus truthiness
    references(template) -> set[str]          # variable names a template uses
"""

from __future__ import annotations

from runner.variables.octostache import (
    Derived,
    Problem,
    SubstitutionLimitError,
    check,
    escape,
    is_truthy,
    references,
    substitute,
)

__all__ = [
    "Derived",
    "Problem",
    "SubstitutionLimitError",
    "check",
    "escape",
    "is_truthy",
    "references",
    "substitute",
]
