"""Run inputs: ``--input name=value`` checked against the workflow's typed ``inputs``."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from runner.errors import UsageError
from runner.masking import MASK
from runner.model import Input

InputValue = str | int | float | bool


def parse_pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` to ``{"a": "1", "b": "x=y"}``; a pair without ``=`` is a usage error."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{option} {pair!r} must look like name=value")
        result[name] = value
    return result


def resolve_inputs(spec: Mapping[str, Input], given: Mapping[str, str]) -> dict[str, InputValue]:
    """Typed input values: the given ones converted, defaults filled in, unknown ones refused."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        known = ", ".join(spec) or "none"
        raise UsageError(f"unknown input {unknown[0]!r}", hint=f"this workflow's inputs: {known}")
    values: dict[str, InputValue] = {}
    for name, item in spec.items():
        if name in given:
            values[name] = _convert(item, given[name])
        elif item.default is not None:
            values[name] = item.default
        elif item.required:
            raise UsageError(f"input {name!r} is required", hint=f"add --input {name}=VALUE")
        else:
            values[name] = False if item.type == "boolean" else ""
    return values


def _convert(item: Input, raw: str) -> InputValue:
    # a secret input's value is never shown, not even a wrong one (it reaches CI logs)
    got = "a value that is not shown (the input is secret)" if item.secret else repr(raw)
    if item.type == "number":
        try:
            number = float(raw)
        except ValueError:
            raise UsageError(f"input {item.name!r} must be a number, got {got}") from None
        if not math.isfinite(number):
            # nan, inf and 1e999 parse as floats, and wrote NaN/Infinity, which is not JSON, into
            # the run record and the approval server's copy of it
            raise UsageError(f"input {item.name!r} must be a finite number, got {got}")
        return int(number) if number.is_integer() and "." not in raw else number
    if item.type == "boolean":
        lowered = raw.strip().lower()
        if lowered not in ("true", "false"):
            raise UsageError(f"input {item.name!r} must be true or false, got {got}")
        return lowered == "true"
    if item.type == "choice" and raw not in item.options:
        options = ", ".join(item.options)
        raise UsageError(f"input {item.name!r} must be one of {options}, got {got}")
    return raw


def shown_inputs(
    inputs: Mapping[str, Any], secret: Collection[str], mask: Callable[[str], str]
) -> dict[str, Any]:
    """The inputs as a run records and shows them: a secret one as ``***``, any other with
    the secrets it holds masked (``https://ci:TOKEN@registry``, where ``TOKEN`` is a secret
    input or variable: the record, the approval request, the plan and the server showed it in
    clear); a number or a boolean stays as it is unless its text is a secret."""
    shown: dict[str, Any] = {}
    for name, value in inputs.items():
        if name in secret:
            shown[name] = MASK
        elif isinstance(value, str):
            shown[name] = mask(value)
        else:
            masked = mask(str(value))
            shown[name] = value if masked == str(value) else masked
    return shown
