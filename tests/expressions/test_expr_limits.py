"""Malformed, deeply nested and huge expressions fail cleanly with GitHub's messages."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from runner.errors import ExpressionError
from runner.expressions import MAX_DEPTH, MAX_LENGTH, evaluate

CONTEXTS: dict[str, object] = {"github": {"ref": "main"}, "foo": None}


def error(expression: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, CONTEXTS)
    return caught.value


@pytest.mark.parametrize(
    ("expression", "kind", "message"),
    [
        (
            "1 <",
            "parsing",
            "Unexpected end of expression: '<'. Located at position 3 within expression: 1 <",
        ),
        (
            "1 < )",
            "parsing",
            "Unexpected symbol: ')'. Located at position 5 within expression: 1 < )",
        ),
        ("(1", "parsing", "Unexpected end of expression: '1'. Located at position 2"),
        ("github[0", "parsing", "Unexpected end of expression: '0'. Located at position 8"),
        ("format('x',", "parsing", "Unexpected end of expression: ','. Located at position 11"),
        ("github.", "parsing", "Unexpected end of expression: '.'"),
        ("github.1", "parsing", "Unexpected symbol: '1'. Located at position 8"),
        ("1 1", "parsing", "Unexpected symbol: '1'. Located at position 3"),
        ("1 'x'", "parsing", "Unexpected symbol: 'x'. Located at position 3"),
        ("'a'[0]", "parsing", "Unexpected symbol: '['"),
        ("github()", "parsing", "Unrecognized function: 'github'"),
        ("secrets.token", "parsing", "Unrecognized named-value: 'secrets'. Located at position 1"),
        (
            "github.ref\n&& env.x",
            "parsing",
            "Unrecognized named-value: 'env'. Located at position 15",
        ),
        ("😊 == github", "lexing", "Unexpected symbol: '😊'. Located at position 1"),
        (
            "'😊' == env",
            "parsing",
            "Unrecognized named-value: 'env'. Located at position 9",
        ),  # UTF-16
        ("1 = 1", "lexing", "Unexpected symbol: '='. Located at position 3"),
        ("a & b", "lexing", "Unexpected symbol: '&'"),
        ("a | b", "lexing", "Unexpected symbol: '|'"),
        ("'open", "lexing", "Unexpected symbol: ''open'. Located at position 1"),
        ("1.2.3", "lexing", "Unexpected symbol: '1.2.3'"),
        ("1 == 1x", "lexing", "Unexpected symbol: '1x'"),
        ("$x", "lexing", "Unexpected symbol: '$x'"),
        ("1 2 @", "lexing", "Unexpected symbol: '@'"),  # the whole expression is lexed first
    ],
)
def test_syntax_errors(expression: str, kind: str, message: str) -> None:
    caught = error(expression)
    assert caught.kind == kind
    assert message in caught.message


@pytest.mark.parametrize(
    ("template", "limit_ok"),
    [
        ("{}false", "!" * (MAX_DEPTH - 1)),
        ("foo{}", "._x" * (MAX_DEPTH - 1)),
        ("foo{}", "[0]" * (MAX_DEPTH - 1)),
        ("foo{}", ".*" * (MAX_DEPTH - 1)),
        ("{}1{}", None),
    ],
)
def test_depth_limit_boundary(template: str, limit_ok: str | None) -> None:
    if limit_ok is None:  # parentheses: each group is a level
        ok = "(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1)
        too_deep = "(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH
    else:
        unit = limit_ok[: len(limit_ok) // (MAX_DEPTH - 1)]
        ok = template.format(limit_ok)
        too_deep = template.format(limit_ok + unit)
    evaluate(ok, CONTEXTS)
    caught = error(too_deep)
    assert caught.kind == "parsing"
    assert caught.message == f"Exceeded max expression depth {MAX_DEPTH}"


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 10_000 + "1" + ")" * 10_000,
        "(" * 10_000,
        "!" * 20_000 + "true",
        "github" + ".x" * 10_000,
        "github" + "[0]" * 6_000,
        "format(" * 3_000 + "'x'" + ")" * 3_000,
        "[" * 20_000,
    ],
)
def test_deep_nesting_fails_cleanly(expression: str) -> None:
    caught = error(expression)
    assert caught.kind in {"lexing", "parsing"}
    assert "RecursionError" not in caught.message


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 100_000 + "1" + ")" * 100_000,
        "!" * 100_000 + "true",
        "'" + "a" * MAX_LENGTH + "'",
        " == ".join(["1"] * 10_000),
    ],
)
def test_length_limit(expression: str) -> None:
    caught = error(expression)
    assert caught.kind == "parsing"
    assert caught.message == f"Exceeded max expression length {MAX_LENGTH}"


def test_longest_allowed_expression() -> None:
    assert evaluate("'" + "a" * (MAX_LENGTH - 2) + "'", {}) == "a" * (MAX_LENGTH - 2)


def test_long_flat_chains_are_not_deep() -> None:
    # && / || chains are one level, and == chains are kept flat: no depth error, no recursion.
    assert evaluate(" && ".join(["1"] * 4_000), {}) == 1
    assert evaluate("1" + "==1" * 6_000, {}) is True


def test_memory_limit_over_the_whole_evaluation() -> None:
    # Two strings of 0.75 MB each are fine one at a time but not held together (the runner's
    # 1 MB evaluation memory).
    big = "x" * 190_000
    contexts = {"big": big}
    assert len(evaluate("format('{0}{0}', big)", contexts)) == 380_000  # type: ignore[arg-type]
    caught = error_with("startsWith(format('{0}{0}', big), format('{0}{0}', big))", contexts)
    assert caught.kind == "evaluation"
    assert "The maximum allowed memory size was exceeded" in caught.message


@pytest.mark.parametrize(
    "expression",
    [
        "format('{0}{0}{0}', big)",
        'join(fromJSON(format(\'["{0}", "{0}", "{0}"]\', big)), big)',
        'toJSON(fromJSON(format(\'["{0}", "{0}", "{0}"]\', big)))',
    ],
)
def test_memory_limit_of_one_function(expression: str) -> None:
    caught = error_with(expression, {"big": "y" * 200_000})
    assert caught.kind == "evaluation"
    assert "The maximum allowed memory size was exceeded" in caught.message


def test_cyclic_value_runs_into_the_memory_limit() -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    caught = error_with("toJSON(c)", {"c": cyclic})
    assert "The maximum allowed memory size was exceeded" in caught.message


def error_with(expression: str, contexts: Mapping[str, object]) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, contexts)
    return caught.value
