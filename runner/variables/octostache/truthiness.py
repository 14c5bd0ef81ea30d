"""Octopus truthiness (``TemplateEvaluator.IsTruthy``)."""

from __future__ import annotations

from runner.variables.octostache.chars import trim


def is_truthy(value: str | None) -> bool:
    """False for undefined, ``""``, ``"0"``, and ``no``/``false`` in any case around whitespace.

    Mirrors Octostache exactly: ``"0"`` must be exact (``" 0"`` is true), while ``no`` and
    ``false`` are compared after trimming and ignoring case.
    """
    if value is None or value in ("", "0"):
        return False
    return trim(value).lower() not in ("no", "false")
