"""A text is parsed once, whatever names it is checked against, with the same trees and errors."""

from __future__ import annotations

import contextlib

import pytest

from runner.errors import ExpressionError
from runner.expressions import check, evaluate, parse, uses_status_function
from runner.expressions.parser import (
    IMPLICIT_SUCCESS,
    MAX_DEPTH,
    Arity,
    _parse,
    checked_tree,
    parse_tree,
    syntax,
)

NAMES = frozenset({"github", "steps", "inputs"})
FUNCTIONS = {"success": Arity(0, 0), "hashfiles": Arity(1, None)}

CASES = [
    "github.ref == 'main' && steps.build.outputs.ok == 'true'",
    "success() && contains(inputs.list, 'a')",
    "format('{0}', github.sha)",
    # an unknown name before a syntax error: the name is what GitHub reports
    "nope.x == (",
    # a syntax error before an unknown name
    "== nope",
    "nope.x",
    "github.ref == nope",
    "unknown(1)",
    "success(1)",
    "contains('a')",
    "case(true, 1)",
    "hashFiles()",
    "",
    "'unterminated",
]


def outcome(call: object) -> object:
    try:
        return ("tree", call() if callable(call) else call)
    except ExpressionError as exc:
        return ("error", exc.kind, exc.message)


@pytest.mark.parametrize("expression", CASES)
def test_checked_tree_is_exactly_what_the_checking_parse_gives(expression: str) -> None:
    expected = outcome(lambda: parse_tree(expression, NAMES, FUNCTIONS))
    assert outcome(lambda: checked_tree(expression, NAMES, FUNCTIONS)) == expected


def test_an_unknown_name_before_asyntax_error_is_the_error_reported() -> None:
    with pytest.raises(ExpressionError, match="Unrecognized named-value: 'nope'"):
        checked_tree("nope.x == (", NAMES, FUNCTIONS)


def test_checking_evaluating_and_listing_functions_share_one_parse() -> None:
    syntax.cache_clear()
    text = "success() && steps.a.outputs.ok == 'true' && inputs.parse_once == 'yes'"
    check(text, ["steps", "inputs"], ["success"])
    parse(text, ["steps", "inputs", "github"], ["success", "failure"])
    assert uses_status_function(text)
    evaluate(text, {"steps": {}, "inputs": {}}, functions={"success": lambda: True})
    info = syntax.cache_info()
    assert info.misses == 1  # one parse of the text
    assert info.hits >= 2  # the other three asked it, or a cache in front of it


def test_a_name_unknown_in_one_place_is_still_refused_after_being_accepted_in_another() -> None:
    text = "secrets.token_for_parse_once == 'x'"
    check(text, ["secrets"])
    with pytest.raises(ExpressionError, match="Unrecognized named-value: 'secrets'"):
        check(text, ["github"])


def deep(levels: int) -> str:
    return "!" * levels + "true"


WRAPPED_INNER = [
    "steps.build.outputs.ok == 'true'",
    "a && b || c",
    "(a || b) && c",
    "contains(format('{0}', a), 'x')",
    "a)",  # the wrapped text parses, the inner one alone does not
    "a) || (b",
    "a == (",
    "",
    "'it''s' == a[0].b",
    deep(MAX_DEPTH - 3),
    deep(MAX_DEPTH - 2),  # the wrapped text is exactly at the limit
    deep(MAX_DEPTH - 1),  # the wrapped text is one level past it
    deep(MAX_DEPTH),
    "(" * 24 + "a" + ")" * 24,
    "(" * 25 + "a" + ")" * 25,
]


@pytest.mark.parametrize("inner", WRAPPED_INNER)
def test_a_wrapped_condition_has_exactly_the_tree_or_error_of_parsing_it(inner: str) -> None:
    head, tail = IMPLICIT_SUCCESS
    wrapped = f"{head}{inner}{tail}"
    syntax.cache_clear()
    with contextlib.suppress(ExpressionError):
        syntax(inner)  # the inner text parsed first, as when loading
    expected = outcome(lambda: _parse(wrapped, None, None)[0])
    assert outcome(lambda: syntax(wrapped)[0]) == expected


def test_a_wrapped_condition_reuses_the_parse_of_its_text() -> None:
    head, tail = IMPLICIT_SUCCESS
    inner = "steps.reuse.outputs.ok == 'true'"
    syntax.cache_clear()
    first = syntax(inner)[0]
    wrapped = syntax(f"{head}{inner}{tail}")[0]
    assert wrapped is not None and wrapped.args[1] is first  # type: ignore[union-attr]
