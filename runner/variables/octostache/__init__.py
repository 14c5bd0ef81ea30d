"""Octopus Deploy's ``#{}`` variable substitution language (Octostache), in pure Python.

Behaviour mirrors OctopusDeploy/Octostache (``source/Octostache/Templates``); modules name the
C# file each one follows. Bounds that Octostache lacks are documented in :mod:`.limits`.
"""

from __future__ import annotations

import re
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


#: a run of ``#`` before ``{``: how Octostache reads one depends on its length
_HASHES = re.compile(r"#+(?=\{)")


def escape(value: str) -> str:
    """``value`` as Octostache text that reads as text, never as a template (a step's output,
    an input, an approver's notes, an error).

    Octostache reads an even run of ``2k`` ``#`` before ``{`` as ``2k - 1`` of them and a
    ``{`` (``##{`` is ``#{``), and an odd run as a template (``#{``, or ``#`` then ``#{`` for
    three). Doubling each ``#{`` into ``##{`` made an odd run of an even one, but an even run
    (``##{DbPassword | Substring 0 3}``, three letters of the secret) odd: a template again. An
    odd run gets one ``#`` more and reads as itself; an even one two more (no text reads as an
    even run before ``{``), so it shows one ``#`` more than written, never a template."""
    if "#" not in value:
        return value
    return _HASHES.sub(lambda run: run.group() + ("#" if len(run.group()) % 2 else "##"), value)


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
