"""GitHub Actions' ``${{ }}`` expression language, with GitHub's semantics to the letter.

The reference implementations are actions/languageservices (``expressions/src``, TypeScript,
whose published test vectors this package passes) and actions/runner (``src/Sdk/Expressions``,
C#); where they differ, GitHub's own vectors decide (absolute error positions, the 1 MB memory
limit, numbers printed with 15 significant digits, lazy ``case``).

Typical use::

    evaluate("success() && github.ref == 'refs/heads/main'", contexts, functions=functions)

- ``contexts`` maps context names (``github``, ``steps``...) to plain values: ``None``, ``bool``,
  ``int``/``float``, ``str``, ``list``/``tuple``, ``dict``/``Mapping``. Only these names are
  recognised; any other name is a parsing error, as on GitHub. Names are case-insensitive.
- ``functions`` maps host function names (``success``, ``hashFiles``...) to callables, which are
  called with already evaluated arguments (plain values as above) and return a plain value. Wrap
  one in ``FunctionSpec`` to have its argument count checked when the expression is parsed.
  Built-in functions (``contains``, ``format``, ``case``...) cannot be overridden.
- Every problem is an ``ExpressionError`` (``runner.errors.ExpressionError``) whose ``kind`` is
  ``lexing``, ``parsing`` or ``evaluation`` and whose message is GitHub's, e.g.
  ``Unexpected symbol: ')'. Located at position 5 within expression: 1 < )``.

Parsing is cached per (expression, context names, function names and arities), so evaluating the
same condition again only runs the compiled closures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

from msgspec import Struct

from runner.errors import ExpressionError, UnterminatedTemplateError
from runner.expressions.ast import Node
from runner.expressions.evaluate import Compiled, compile_tree, run
from runner.expressions.interpolate import (
    Template,
    find_templates,
    interpolate_with,
    template_string,
)
from runner.expressions.json_reads import json_parts
from runner.expressions.json_reads import json_reads as _json_reads
from runner.expressions.lexer import MAX_LENGTH
from runner.expressions.parser import MAX_DEPTH, Arity, checked_tree, syntax
from runner.expressions.values import is_truthy

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "STATUS_FUNCTIONS",
    "ExpressionError",
    "FunctionSpec",
    "Node",
    "Template",
    "UnterminatedTemplateError",
    "check",
    "evaluate",
    "find_templates",
    "interpolate",
    "is_truthy",
    "json_parts",
    "json_reads",
    "parse",
    "referenced_functions",
    "referenced_named_values",
    "to_string",
    "uses_status_function",
]

#: The job-status functions; calling any of them turns off the implicit ``success() && (...)``.
STATUS_FUNCTIONS = frozenset({"success", "failure", "always", "cancelled"})


class FunctionSpec(Struct, frozen=True):
    """A host function with the number of arguments it accepts (``max_args=None``: no limit).

    A wrong number of arguments is then a parsing error (``Too few parameters supplied`` /
    ``Too many parameters supplied``), as for the built-in functions."""

    func: Callable[..., object]
    min_args: int = 0
    max_args: int | None = None

    def __call__(self, *args: object) -> object:
        return self.func(*args)


HostFunctions = Mapping[str, Callable[..., object]]
_Specs = tuple[tuple[str, int, int | None], ...]


class _Prepared(Struct, frozen=True):
    node: Node | None
    compiled: Compiled | None


@functools.lru_cache(maxsize=4096)
def _checked(
    expression: str, context_names: frozenset[str], function_names: frozenset[str], specs: _Specs
) -> Node | None:
    arity = {name.lower(): Arity() for name in function_names}
    arity.update((name.lower(), Arity(low, high)) for name, low, high in specs)
    return checked_tree(expression, frozenset(name.lower() for name in context_names), arity)


@functools.lru_cache(maxsize=4096)
def _prepare(
    expression: str, context_names: frozenset[str], function_names: frozenset[str], specs: _Specs
) -> _Prepared:
    node = _checked(expression, context_names, function_names, specs)
    if node is None:
        return _Prepared(None, None)
    # Keyed on the names exactly as the caller spells them, so that the compiled evaluator can
    # read the caller's mappings directly (no lower-cased copy per evaluation).
    return _Prepared(node, compile_tree(node, _keys(context_names), _keys(function_names)))


def _keys(names: frozenset[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for name in sorted(names):
        keys.setdefault(name.lower(), name)
    return keys


def _specs(functions: Iterable[str] | HostFunctions) -> _Specs:
    if not isinstance(functions, Mapping):
        return ()
    return _mapping_specs(functions)


def _mapping_specs(functions: HostFunctions) -> _Specs:
    specs = [
        (name, function.min_args, function.max_args)
        for name, function in functions.items()
        if function.__class__ is FunctionSpec
    ]
    return tuple(specs) if specs else ()


def _prepared(
    expression: str,
    named_values: Iterable[str],
    functions: Iterable[str] | HostFunctions,
) -> _Prepared:
    return _prepare(expression, frozenset(named_values), frozenset(functions), _specs(functions))


def _checked_tree(
    expression: str,
    named_values: Iterable[str],
    functions: Iterable[str] | HostFunctions,
) -> Node | None:
    return _checked(expression, frozenset(named_values), frozenset(functions), _specs(functions))


def parse(
    expression: str,
    named_values: Iterable[str],
    functions: Iterable[str] | HostFunctions = (),
) -> Node | None:
    """Parse ``expression`` (cached); ``None`` for an empty expression.

    ``named_values`` are the recognised context names and ``functions`` the host function names
    (or a mapping of names to callables / ``FunctionSpec``), all case-insensitive. Raises
    ``ExpressionError`` (kind ``lexing`` or ``parsing``)."""
    return _checked_tree(expression, named_values, functions)


def check(
    expression: str,
    allowed_named_values: Iterable[str],
    allowed_functions: Iterable[str] | HostFunctions = (),
) -> None:
    """Raise the parse-time ``ExpressionError`` if ``expression`` does not parse with only these
    contexts and host functions (e.g. ``secrets`` is not allowed in ``if:``)."""
    _checked_tree(expression, allowed_named_values, allowed_functions)


def referenced_named_values(expression: str) -> set[str]:
    """The lower-cased context names ``expression`` uses, e.g. ``{'steps', 'inputs'}``. Raises
    ``ExpressionError`` when it is not even syntactically valid."""
    return set(syntax(expression).named_values)


def referenced_functions(expression: str) -> set[str]:
    """The lower-cased names of the functions ``expression`` calls (built-in ones included)."""
    return {name for name, _ in syntax(expression).calls}


def uses_status_function(expression: str) -> bool:
    """Whether ``expression`` calls ``success()``, ``failure()``, ``always()`` or ``cancelled()``
    anywhere; GitHub wraps a condition that does not in ``success() && (...)``."""
    return not STATUS_FUNCTIONS.isdisjoint(referenced_functions(expression))


def evaluate(
    expression: str,
    contexts: Mapping[str, object],
    *,
    functions: HostFunctions | None = None,
) -> object:
    """Evaluate ``expression`` (without the ``${{ }}``) and return a plain Python value: ``None``,
    ``bool``, a number, ``str``, ``list`` or a mapping. An empty expression gives ``None``.

    Context names are the keys of ``contexts``; host functions, called with evaluated arguments,
    the keys of ``functions`` (both case-insensitive; of two keys differing only in case, the
    first in sorted order is used). A host function may be called a second time in the rare
    evaluation that comes near the 1 MB memory limit (see ``evaluate.py``), so it should have no
    side effects. Raises ``ExpressionError``."""
    if functions:
        compiled = _prepare(
            expression, frozenset(contexts), frozenset(functions), _mapping_specs(functions)
        ).compiled
    else:
        compiled = _prepare(expression, frozenset(contexts), _NO_NAMES, ()).compiled
        functions = _NO_FUNCTIONS
    if compiled is None:
        return None
    return run(compiled, expression, contexts, functions)


def json_reads(
    expression: str,
    contexts: Mapping[str, object],
    *,
    functions: HostFunctions | None = None,
) -> list[str]:
    """What ``expression`` reads out of ``fromJSON(x)``: the strings and numbers each such call
    gives with the reads on it (``fromJSON(x).a[0]``), evaluated with these contexts; a run's
    masker registers those that are parts of a secret (see ``json_reads.py``)."""
    if "fromjson" not in expression.lower():
        return []
    functions = functions or _NO_FUNCTIONS
    node = _prepare(
        expression, frozenset(contexts), frozenset(functions), _mapping_specs(functions)
    ).node
    if node is None:
        return []
    return _json_reads(
        node, contexts, functions, _keys(frozenset(contexts)), _keys(frozenset(functions))
    )


_NO_NAMES: frozenset[str] = frozenset()
_NO_FUNCTIONS: HostFunctions = {}


def to_string(value: object) -> str:
    """A value as GitHub writes it into text: null as '', 'true'/'false', numbers with up to
    15 significant digits (``1.0`` -> ``1``), strings unchanged, arrays and objects as JSON."""
    return template_string(value)


def interpolate(
    text: str,
    contexts: Mapping[str, object],
    *,
    functions: HostFunctions | None = None,
) -> str:
    """Replace each ``${{ expression }}`` of ``text`` by its value as ``to_string`` writes it,
    in a single pass (a value containing ``${{`` stays as it is). Raises ``ExpressionError``;
    an unclosed ``${{`` raises ``UnterminatedTemplateError`` (with an ``offset``)."""
    return interpolate_with(
        text, lambda expression: evaluate(expression, contexts, functions=functions)
    )
