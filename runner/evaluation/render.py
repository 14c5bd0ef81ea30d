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
from collections.abc import Callable, Mapping

from runner import expressions
from runner import variables as octostache
from runner.errors import ExpressionError

_PLACEHOLDER = re.compile("\x00(\\d+)\x00")


def render_text(
    template: str,
    variables: Mapping[str, str],
    contexts: Mapping[str, object],
    functions: Mapping[str, Callable[..., object]] | None = None,
    *,
    derived: octostache.Derived | None = None,
) -> str:
    """Substitute ``#{}`` with Octostache's rules, then the ``${{ }}`` of the original text.

    ``derived`` is told of each computation Octostache makes (a run passes its masker's
    :meth:`~runner.masking.Masker.derive`: ``#{Password | ToUpper}`` is a secret too), and of
    each read out of ``fromJSON`` (``${{ fromJSON(secrets.DB).password }}`` is one too).
    """

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
            raise
        if derived is not None:
            for source, read in expressions.json_reads(
                found.expression, contexts, functions=functions
            ):
                derived(source, read)
        return expressions.to_string(result)

    return _PLACEHOLDER.sub(value, text)


def escape_octostache(value: str) -> str:
    """A value as Octostache text that stays literal: ``#{`` becomes ``##{``.

    Octostache expands variables inside variable values, recursively. That is right for values
    the workflow's author wrote, and wrong for values people or steps supply (run inputs, step
    outputs, manual notes): notes containing ``#{DatabasePassword}`` must not expand to it.
    """
    return value.replace("#{", "##{")
