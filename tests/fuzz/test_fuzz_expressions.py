"""Fuzzing ``${{ }}`` expressions: ``evaluate``, ``find_templates``, ``interpolate``.

Property: the result is a plain value (or text), or an ``ExpressionError``; never another
exception, and always within a time bound. Expressions are drawn three ways: random text, a soup
of the language's tokens, and a grammar that builds well-formed expressions (functions, operators,
indexes, filters ``*``, literals of every kind) over contexts holding random JSON, so that the
evaluator, not only the parser, is exercised.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from typing import Any

import pytest
from fuzzkit import time_limit
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import ExpressionError
from runner.expressions import FunctionSpec, evaluate, find_templates, interpolate, to_string

FUZZ = settings.get_profile("runner-fuzz")
TIME_LIMIT = 5.0

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
#: the contexts every expression sees; only ``inputs`` is drawn (cheap), the rest is fixed
BASE_CONTEXTS: dict[str, object] = {
    "github": {"ref": "refs/heads/main", "sha": "a" * 40, "event": {"inputs": {"x": [1, None]}}},
    "steps": {
        "build": {"outputs": {"x": "1", "list": "[1,2]"}},
        "gate": {"outputs": {"approved": "false", "notes": "#{x} ${{ y }}"}},
    },
    "env": {"A": "a", "EMPTY": ""},
    "vars": {"nested": {"a": [{"b": 1.5}, {"b": None}]}, "nan": math.nan, "inf": -math.inf},
}
CONTEXTS = st.dictionaries(st.sampled_from(["version", "a", "B", "list"]), JSON, max_size=3).map(
    lambda inputs: {**BASE_CONTEXTS, "inputs": inputs}
)


def host_functions() -> dict[str, Any]:
    """Host functions like the runner's: status functions and a hashFiles stand-in."""
    return {
        "success": FunctionSpec(lambda: True, 0, 0),
        "failure": FunctionSpec(lambda: False, 0, 0),
        "always": FunctionSpec(lambda: True, 0, 0),
        "cancelled": FunctionSpec(lambda: False, 0, 0),
        "hashFiles": FunctionSpec(lambda *patterns: "0" * 64, 1, None),
    }


def is_plain(value: object) -> bool:
    """A plain value all the way down (iterative: fromJSON can return deeply nested data)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if item is None or isinstance(item, (bool, int, float, str)):
            continue
        if isinstance(item, (list, tuple)):
            pending.extend(item)
        elif isinstance(item, Mapping) and all(isinstance(k, str) for k in item):
            pending.extend(item.values())
        else:
            return False
    return True


def check_evaluate(expression: str, contexts: Mapping[str, object]) -> None:
    started = time.perf_counter()
    try:
        with time_limit(TIME_LIMIT):
            value = evaluate(expression, contexts, functions=host_functions())
    except ExpressionError as exc:
        assert exc.message
        assert exc.kind in ("lexing", "parsing", "evaluation")
    else:
        assert is_plain(value), repr(value)
        # anything evaluate returns can be written into text, or fails as an expression error
        with contextlib.suppress(ExpressionError):
            to_string(value)
    took = time.perf_counter() - started
    assert took < TIME_LIMIT, f"{expression!r} took {took:.1f} s"


TOKENS = [
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "*",
    "!",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "'",
    "''",
    "'a'",
    "1",
    "-1",
    "0x1F",
    "1e308",
    "1.5e-10",
    "NaN",
    "Infinity",
    "-Infinity",
    "true",
    "false",
    "null",
    "github",
    "inputs",
    "steps",
    "env",
    "vars",
    "secrets",
    "version",
    "outputs",
    "contains",
    "startsWith",
    "endsWith",
    "format",
    "join",
    "toJSON",
    "fromJSON",
    "case",
    "hashFiles",
    "success",
    "always",
    "{0}",
    "{{",
    "}}",
    " ",
    "é",
    "\u0000",
    "\U0001f600",
]


@FUZZ
@given(st.text(max_size=60), CONTEXTS)
def test_random_text_is_a_value_or_an_expression_error(expression: str, contexts: Any) -> None:
    check_evaluate(expression, contexts)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=30), CONTEXTS)
def test_token_soup_is_a_value_or_an_expression_error(tokens: list[str], contexts: Any) -> None:
    check_evaluate("".join(tokens), contexts)


# -- well-formed expressions -------------------------------------------------------------------

STRING_LITERAL = st.text(max_size=8).map(lambda s: "'" + s.replace("'", "''") + "'")
NUMBER_LITERAL = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["0x0", "0xFF", "-0", "1e309", "NaN", "Infinity", "-Infinity", ".5"]),
)
LITERAL = st.one_of(
    STRING_LITERAL, NUMBER_LITERAL, st.sampled_from(["true", "false", "null", "TRUE"])
)
REFERENCE = st.one_of(
    st.sampled_from(
        [
            "github.ref",
            "github",
            "inputs.version",
            "inputs.list",
            "inputs.*",
            "steps.build.outputs",
            "steps.*.outputs",
            "steps.gate.outputs.x",
            "env",
            "vars",
            "vars.*.*",
            "inputs['a']",
            "github[0]",
        ]
    ),
)


def expressions(depth: int = 3) -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        call = st.one_of(
            st.tuples(
                st.sampled_from(["contains", "startsWith", "endsWith", "case", "join"]),
                st.lists(inner, min_size=1, max_size=4),
            ),
            st.tuples(st.just("format"), st.lists(inner, min_size=1, max_size=4)),
            st.tuples(
                st.sampled_from(["toJSON", "fromJSON", "hashFiles"]),
                st.lists(inner, min_size=1, max_size=2),
            ),
            st.tuples(st.sampled_from(["success", "always", "failure"]), st.just([])),
        ).map(lambda c: f"{c[0]}({', '.join(c[1])})")
        binary = st.tuples(
            inner, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&&", "||"]), inner
        ).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
        index = st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]")
        member = st.tuples(inner, st.sampled_from(["a", "outputs", "*", "version"])).map(
            lambda t: f"({t[0]}).{t[1]}"
        )
        return st.one_of(
            call, binary, index, member, inner.map(lambda e: f"!{e}"), inner.map(lambda e: f"({e})")
        )

    return st.recursive(LITERAL | REFERENCE, extend, max_leaves=12)


# fromJSON over generated JSON text, including hostile shapes
JSON_TEXT = st.one_of(
    JSON.map(lambda v: __import__("json").dumps(v, allow_nan=True)),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.text(max_size=30),
).map(lambda text: "fromJSON('" + text.replace("'", "''") + "')")


@FUZZ
@given(expressions(), CONTEXTS)
def test_well_formed_expressions_evaluate_or_fail_cleanly(expression: str, contexts: Any) -> None:
    check_evaluate(expression, contexts)


@FUZZ
@given(JSON_TEXT, CONTEXTS)
def test_from_json_of_anything(expression: str, contexts: Any) -> None:
    check_evaluate(expression, contexts)


def test_expensive_shapes_stay_bounded() -> None:
    """Known blow-ups: huge format/join results hit the 1 MB limit, deep nesting the depth limit."""
    contexts: dict[str, object] = {"inputs": {"big": "x" * 100_000, "list": list(range(5000))}}
    for expression in [
        "format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', inputs.big)",
        "join(inputs.list, inputs.big)",
        "toJSON(inputs)",
        "(" * 60 + "1" + ")" * 60,
        "!" * 20000 + "true",
        "contains(" * 40 + "1" + ", 1)" * 40,
        "inputs" + ".*" * 5000,
        "fromJSON(toJSON(fromJSON(toJSON(inputs))))",
    ]:
        check_evaluate(expression, contexts)


# -- templates in text -------------------------------------------------------------------------

TEMPLATE_TEXT = st.lists(
    st.sampled_from(["${{", "}}", "}", "{", "$", "'", " ", "a", "inputs.version", "1 + ", "\n"])
    | st.text(max_size=4),
    max_size=40,
).map("".join)


@FUZZ
@given(TEMPLATE_TEXT)
def test_find_templates_finds_spans_or_an_unterminated_template(text: str) -> None:
    try:
        with time_limit(TIME_LIMIT):
            templates = find_templates(text)
    except ExpressionError as exc:
        assert exc.kind == "parsing"
        offset = getattr(exc, "offset", None)
        assert offset is not None and text[offset : offset + 3] == "${{"
        return
    last = 0
    for template in templates:
        assert last <= template.start < template.end <= len(text)
        assert text[template.start : template.start + 3] == "${{"
        assert text[template.end - 2 : template.end] == "}}"
        assert text[template.start + 3 : template.end - 2] == template.expression
        last = template.end
    if not templates:
        assert "${{" not in text


@FUZZ
@given(TEMPLATE_TEXT, CONTEXTS)
def test_interpolate_gives_text_or_an_expression_error(text: str, contexts: Any) -> None:
    started = time.perf_counter()
    try:
        with time_limit(TIME_LIMIT):
            result = interpolate(text, contexts, functions=host_functions())
    except ExpressionError as exc:
        assert exc.message
    else:
        assert isinstance(result, str)
        if "${{" not in text:
            assert result == text
    assert time.perf_counter() - started < TIME_LIMIT


@FUZZ
@given(st.text(max_size=30), CONTEXTS)
def test_a_value_containing_a_template_is_not_evaluated_again(value: str, contexts: Any) -> None:
    """Single pass: whatever an input holds (``${{ secrets.X }}`` included) comes out as is."""
    contexts = {**contexts, "inputs": {"payload": value}}
    assert interpolate("[${{ inputs.payload }}]", contexts) == f"[{value}]"


def test_numbers_print_as_github_does() -> None:
    """A control for ``is_plain``: floats stay floats, infinities print."""
    assert to_string(math.inf) == "Infinity"


# -- regressions found by this fuzzing ---------------------------------------------------------

DEEP = "[" * 800 + "]" * 800  # 1.6 KB of JSON whose indented text is 1.3 MB


def test_interpolating_a_value_over_1_mb_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        interpolate("${{ fromJSON(inputs.json) }}", {"inputs": {"json": DEEP}})


def test_to_string_of_a_value_over_1_mb_is_an_expression_error() -> None:
    value = evaluate("fromJSON(inputs.json)", {"inputs": {"json": DEEP}})
    with pytest.raises(ExpressionError):
        to_string(value)
