"""Octopus Deploy's ``#{}`` variable substitution language (Octostache), in pure Python.

Behaviour mirrors OctopusDeploy/Octostache (``source/Octostache/Templates``); modules name the
C# file each one follows. Bounds that Octostache lacks are documented in :mod:`.limits`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from runner.variables.octostache.binding import build
from runner.variables.octostache.check import Problem, check, references
from runner.variables.octostache.evaluator import Derived, run
from runner.variables.octostache.limits import SubstitutionLimitError
from runner.variables.octostache.parser import parse
from runner.variables.octostache.truthiness import is_truthy


def _local_now() -> datetime:
    return datetime.now().astimezone()


def substitute(
    template: str,
    variables: Mapping[str, str],
    *,
    now: Callable[[], datetime] | None = None,
    derived: Derived | None = None,
) -> str:
    """Evaluate ``template`` against ``variables``, as Octostache's ``VariableDictionary.Evaluate``.

    Names are case-insensitive; ``#{each}`` over indexed names follows the mapping's order. An
    unknown variable (or filter) is echoed back as its normalised token; a template that does not
    parse comes back verbatim. ``now`` is the clock of ``NowDate``/``NowDateUtc`` (default: the
    system clock, local time); a naive value is local wall-clock time. ``derived`` is told of
    each value computed from another (see :data:`~.evaluator.Derived`).

    Raises :class:`SubstitutionLimitError` when evaluation needs more work than allowed (see
    :mod:`runner.variables.octostache.limits`).
    """
    tokens = parse(template)
    if tokens is None:
        return template
    result = run(tokens, build(variables), now or _local_now, len(template), derived)
    return template if result is None else result


__all__ = [
    "Derived",
    "Problem",
    "SubstitutionLimitError",
    "check",
    "is_truthy",
    "references",
    "substitute",
]
