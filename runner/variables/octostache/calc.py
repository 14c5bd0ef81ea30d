"""Arithmetic of ``#{calc}``, mirroring Octostache's ``CalculationToken.cs``.

Operands are doubles. A variable that is missing or is not a number, a modulo that has no whole
answer (fractional operands, a zero divisor, beyond a 64-bit integer) and, here only, a result
that is not finite (Octostache would print ``∞`` or ``NaN``: not something to deploy with) make
the whole token come back as written, as an unknown variable does."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from runner.variables.octostache.syntax import Arithmetic, Number, Operand, Symbol

Resolve = Callable[[Symbol], "str | None"]
# double.TryParse with invariant digits: sign, digits, fraction, exponent, surrounding
# whitespace. Not "NaN"/"Infinity", not Python's "1_000", not culture-dependent separators.
_NUMERIC = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
_LONG = 2.0**63


def number(text: str) -> float | None:
    """A variable's value as a finite double, or ``None``."""
    if not _NUMERIC.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def evaluate(operand: Operand, resolve: Resolve, spend: Callable[[int], None]) -> float | None:
    """The value of ``operand``; ``None`` when it has none (the token is then echoed)."""
    spend(1)
    if isinstance(operand, Number):
        return operand.value
    if not isinstance(operand, Arithmetic):
        text = resolve(operand.symbol)
        return None if text is None else number(text)
    value = evaluate(operand.first, resolve, spend)
    for op, right in operand.rest:
        if value is None:
            return None
        other = evaluate(right, resolve, spend)
        if other is None:
            return None
        value = _apply(op, value, other)
    if value is None or not math.isfinite(value):
        return None
    return value


def _apply(op: str, left: float, right: float) -> float | None:
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return left / right if right else None
    return _modulo(left, right)


def _modulo(left: float, right: float) -> float | None:
    """C#'s ``long % long``: whole numbers only, the sign of the dividend."""
    a, b = _whole(left), _whole(right)
    if a is None or b is None or b == 0:
        return None
    remainder = abs(a) % abs(b)
    return float(-remainder if a < 0 else remainder)


def _whole(value: float) -> int | None:
    if not value.is_integer() or not -_LONG <= value < _LONG:
        return None
    return int(value)
