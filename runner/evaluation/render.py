"""Substitution of a workflow string: ``#{}`` first, then ``${{ }}``, each exactly once.

"Once" matters for safety: a variable whose value contains ``${{ secrets.X }}`` must stay text,
and an expression's result containing ``#{...}`` must not be substituted again. So each
``${{ }}`` of the *original* string is swapped for a NUL-delimited placeholder (NUL cannot occur
in YAML text or in process environment values), Octostache runs on the result, and only the
placeholders that survive (a false ``#{if}`` branch drops its own) are replaced by their
expression's value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from runner import expressions
from runner import variables as octostache
from runner.errors import ExpressionError

_PLACEHOLDER = re.compile("\x00(\\d+)\x00")


class Secrets(Protocol):
    """What a rendering tells of the values it computes from secrets (a run's
    :class:`~runner.masking.Masker`)."""

    def derive(self, source: str, compute: Callable[[str], Iterable[str]]) -> None: ...

    def add_parts(self, found: Iterable[str], parts_of: Callable[[str], Iterable[str]]) -> None: ...


def render_text(
    template: str,
    variables: Mapping[str, str],
    contexts: Mapping[str, object],
    functions: Mapping[str, Callable[..., object]] | None = None,
    *,
    secrets: Secrets | None = None,
) -> str:
    """Substitute ``#{}`` with Octostache's rules, then the ``${{ }}`` of the original text.

    ``secrets`` (a run's masker) is told of each computation Octostache makes
    (``#{Password | ToUpper}`` is a secret too) and of what ``${{ }}`` reads out of
    ``fromJSON`` (``fromJSON(secrets.DB).password`` is one too).
    """
    derived = secrets.derive if secrets is not None else None

    if "${{" not in template:
        if "#{" not in template:
            return template
        return octostache.substitute(template, variables, derived=derived)
    templates = expressions.find_templates(template)
    parts: list[str] = []
    last = 0
    for index, found in enumerate(templates):
        parts.append(template[last : found.start])
        parts.append(f"\x00{index}\x00")
        last = found.end
    parts.append(template[last:])
    text = "".join(parts)
    if "#{" in text:
        text = octostache.substitute(text, variables, derived=derived)

    def value(match: re.Match[str]) -> str:
        found = templates[int(match.group(1))]
        try:
            result = expressions.evaluate(found.expression, contexts, functions=functions)
        except ExpressionError as exc:
            if exc.offset is None:
                exc.offset = found.start  # the caller knows the file; this, where in the text
            if secrets is not None:
                # the message may quote what was read (`format()` quotes its format string)
                note_json_reads(found.expression, contexts, functions, secrets, str(exc))
            raise
        shown = expressions.to_string(result)
        if secrets is not None:
            note_json_reads(found.expression, contexts, functions, secrets, shown)
        return shown

    return _PLACEHOLDER.sub(value, text)


#: candidates x text length up to which only the values read that a text shows are registered;
#: past it (a whole document of thousands of fields), every one read is (about 20 ms here)
_SHOWN_BUDGET = 20_000_000


def note_json_reads(
    expression: str,
    contexts: Mapping[str, object],
    functions: Mapping[str, Callable[..., object]] | None,
    secrets: Secrets,
    shown: str,
) -> None:
    """Tell ``secrets`` what ``expression`` read out of ``fromJSON`` that ``shown`` (its value,
    or its error's message) holds: a field of a secret, but not one that a test of it read
    (``contains(toJSON(fromJSON(secrets.Db)), 'x')`` shows `true`, none of the document)."""
    if "fromjson" not in expression.lower():
        return
    read = expressions.json_reads(expression, contexts, functions=functions)
    if len(read) * len(shown) <= _SHOWN_BUDGET:
        read = [value for value in read if value in shown]
    secrets.add_parts(read, expressions.json_parts)


def escape_octostache(value: str) -> str:
    """A value as Octostache text that stays literal (``octostache.escape``).

    Octostache expands variables inside variable values, recursively. That is right for values
    the workflow's author wrote, and wrong for values people or steps supply (run inputs, step
    outputs, manual notes): notes containing ``#{DatabasePassword}`` must not expand to it, nor
    an input of ``##{DatabasePassword | Substring 0 3}`` (``#{`` doubled made it a template).
    """
    return octostache.escape(value)
