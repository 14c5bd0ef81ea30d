"""``${{ }}`` templates inside strings: finding them and substituting their values.

Finding follows the runner's template reader (``TemplateReader.ParseScalar``): after ``${{`` the
first ``}}`` outside a single-quoted string ends the expression (a doubled quote ``''`` toggles the
string state twice, so escaped quotes need no special case).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from msgspec import Struct

from runner.errors import ExpressionError, UnterminatedTemplateError
from runner.expressions.functions import MemoryExceeded, dump_json
from runner.expressions.values import ARRAY, OBJECT, kind_of
from runner.expressions.values import to_string as coerce_string

OPEN = "${{"
CLOSE = "}}"


class Template(Struct, frozen=True):
    """One ``${{ ... }}``: ``text[start:end]`` is the whole template, ``expression`` the text
    between the braces (not stripped)."""

    start: int
    end: int
    expression: str


def find_templates(text: str) -> list[Template]:
    """Every ``${{ ... }}`` of ``text`` in order. A ``}}`` inside a single-quoted string does not
    end an expression. Raises ``UnterminatedTemplateError`` (an ``ExpressionError`` of kind
    ``parsing`` with an ``offset`` attribute) for a ``${{`` that is never closed."""
    found: list[Template] = []
    start = text.find(OPEN)
    while start >= 0:
        in_string = False
        end = -1
        for i in range(start + len(OPEN), len(text)):
            ch = text[i]
            if ch == "'":
                in_string = not in_string
            elif not in_string and ch == "}" and text[i - 1] == "}":
                end = i + 1
                break
        if end < 0:
            raise UnterminatedTemplateError(start)
        found.append(Template(start, end, text[start + len(OPEN) : end - len(CLOSE)]))
        start = text.find(OPEN, end)
    return found


def template_string(value: object) -> str:
    """A value as it is written into a string: null as '', booleans as 'true'/'false', numbers
    as GitHub prints them (``1``, ``1.5``, ``1E+15``), strings unchanged, arrays and objects as
    their ``toJSON`` text."""
    kind = kind_of(value)
    if kind == ARRAY or (kind == OBJECT and isinstance(value, Mapping)):
        try:
            return dump_json(value)
        except MemoryExceeded:
            raise ExpressionError(
                "The maximum allowed memory size was exceeded while writing a value as text",
                kind="evaluation",
            ) from None
    return coerce_string(value)


def interpolate_with(
    text: str,
    evaluate: Callable[[str], object],
) -> str:
    """Replace each template of ``text`` by ``template_string(evaluate(expression))``, in one
    pass: substituted values are never scanned again."""
    if OPEN not in text:
        return text
    parts: list[str] = []
    last = 0
    for template in find_templates(text):
        expression = template.expression.strip()
        if not expression:
            raise ExpressionError(
                f"An expression was expected (at offset {template.start}).", kind="parsing"
            )
        parts.append(text[last : template.start])
        parts.append(template_string(evaluate(expression)))
        last = template.end
    parts.append(text[last:])
    return "".join(parts)
