"""Built-in functions, host functions and number/string conversions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runner.errors import ExpressionError
from runner.expressions import FunctionSpec, evaluate, to_string

CONTEXTS: dict[str, object] = {
    "list": ["Hello", 1, True, None],
    "obj": {"name": "mona", "nested": {"k": [1, 2]}},
    "text": "Hello World",
}


def ev(expression: str, **functions: object) -> object:
    return evaluate(expression, CONTEXTS, functions=functions or None)  # type: ignore[arg-type]


def evaluation_error(expression: str) -> str:
    with pytest.raises(ExpressionError) as caught:
        ev(expression)
    assert caught.value.kind == "evaluation"
    return caught.value.message


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("contains(text, 'WORLD')", True),
        ("contains(text, 'planet')", False),
        ("contains(list, 'hello')", True),  # items compare with ==
        ("contains(list, '1')", True),
        ("contains(list, null)", True),
        ("contains(obj, 'name')", False),  # objects contain nothing
        ("contains(123, 2)", True),
        ("startsWith(text, 'hello')", True),
        ("startsWith(text, 'World')", False),
        ("startsWith(obj, '')", False),
        ("endsWith(text, 'WORLD')", True),
        ("endsWith(12.5, 5)", True),
        ("endsWith(text, list)", False),
        ("CONTAINS(text, 'o')", True),  # function names ignore case
    ],
)
def test_search_functions(expression: str, expected: bool) -> None:
    assert ev(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("format('{0} {1}', 'a', 'b')", "a b"),
        ("format('{1}{0}{1}', 'a', 'b')", "bab"),
        ("format('{{0}} is {0}', 1)", "{0} is 1"),
        ("format('{0}', null)", ""),
        ("format('{0}', true)", "true"),
        ("format('{0}', 1.50)", "1.5"),
        ("format('{0}', obj)", "Object"),
        ("format('{0}', list)", "Array"),
        ("format('no placeholders', 'unused')", "no placeholders"),
        ("join(list)", "Hello,1,true,"),
        ("join(list, ' | ')", "Hello | 1 | true | "),
        ("join(obj.nested.k, obj)", "1,2"),  # a non-primitive separator is ignored
        ("join('text')", "text"),
        ("join(obj)", ""),
        ("join(obj.*)", "mona,Object"),
    ],
)
def test_format_and_join(expression: str, expected: str) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("format('{0')", "The following format string is invalid: {0"),
        ("format('{x}', 1)", "The following format string is invalid: {x}"),
        ("format('{0x}', 1)", "The following format string is invalid: {0x}"),
        ("format('}', 1)", "The following format string is invalid: }"),
        ("format('{1}', 1)", "The following format string references more arguments than"),
        ("format('{0:yyyy}', 1)", "The format specifiers 'yyyy' are not valid for objects of type"),
    ],
)
def test_format_errors(expression: str, message: str) -> None:
    assert message in evaluation_error(expression)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("toJSON(null)", "null"),
        ("toJSON('a\"b')", '"a\\"b"'),
        ("toJSON(1.0)", "1"),
        ("toJSON(0.1)", "0.1"),
        (
            "toJSON(obj)",
            '{\n  "name": "mona",\n  "nested": {\n    "k": [\n      1,\n      2\n    ]\n  }\n}',
        ),
        ("toJSON(fromJSON('[[], {}]'))", "[\n  [],\n  {}\n]"),
        ("toJSON(obj.*.k)", "[\n  [\n    1,\n    2\n  ]\n]"),
        ("toJSON('\u2028')", '"\\u2028"'),
        ("toJSON('é\t')", '"é\\t"'),
    ],
)
def test_to_json(expression: str, expected: str) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('fromJSON(\'{"a": [1, true, null, "x"]}\')', {"a": [1, True, None, "x"]}),
        ("fromJSON(' 42 ')", 42),
        ("fromJSON('\"text\"')", "text"),
        ('fromJSON(\'{"A": 1, "a": 2}\')', {"A": 1}),  # the first of keys differing in case
        ('fromJSON(\'{"a": 1, "a": 2}\')', {"a": 2}),  # the last of identical keys
        ("fromJSON('{\"Key\": 1}').KEY", 1),
        ("fromJSON(toJSON(obj)) == obj", False),  # a new object
    ],
)
def test_from_json(expression: str, expected: object) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    "text", ["", "  ", "{", "[1,]", "NaN", "Infinity", "{'a': 1}", "1 2", "[" * 5000]
)
def test_from_json_errors(text: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate("fromJSON(x)", {"x": text})
    assert caught.value.kind == "evaluation"
    assert "Error parsing JSON when evaluating fromJson" in caught.value.message


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("case(true, 'a', 'b')", "a"),
        ("case(false, 'a', 'b')", "b"),
        ("case(false, 'a', true, 'b', 'c')", "b"),
        ("case(1 == 2, 'a', text == 'hello world', 'b', 'c')", "b"),
        ("case(false, 1, false, 2, obj)", CONTEXTS["obj"]),
        ("CASE(true, null, 1)", None),
        # only what is needed is evaluated: the bad fromJSON calls are never made
        ("case(true, 'a', fromJSON(''))", "a"),
        ("case(false, fromJSON(''), true, 'b', fromJSON(''))", "b"),
    ],
)
def test_case(expression: str, expected: object) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    "expression", ["case(1, 'a', 'b')", "case('true', 'a', 'b')", "case(null, 1, 2)"]
)
def test_case_predicate_must_be_boolean(expression: str) -> None:
    assert evaluation_error(expression) == "case predicate must evaluate to a boolean value"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("case(true, 'a')", "Too few parameters supplied: 'case'"),
        ("case(true, 'a', false, 'b')", "Even number of parameters supplied, requires an odd"),
        ("contains('a')", "Too few parameters supplied: 'contains'"),
        ("startsWith('a', 'b', 'c')", "Too many parameters supplied: 'startsWith'"),
        ("toJSON()", "Too few parameters supplied: 'toJSON'"),
        ("nope(1)", "Unrecognized function: 'nope'. Located at position 1 within expression"),
    ],
)
def test_arity_is_checked_when_parsing(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        ev(expression)
    assert caught.value.kind == "parsing"
    assert message in caught.value.message


def test_host_functions_get_evaluated_arguments() -> None:
    seen: list[tuple[object, ...]] = []

    def hash_files(*patterns: object) -> str:
        seen.append(patterns)
        return "abc123"

    functions: dict[str, Callable[..., object]] = {
        "hashFiles": FunctionSpec(hash_files, 1),
        "success": lambda: True,
    }
    result = evaluate(
        "success() && HASHFILES('**/x', format('{0}.lock', obj.name))",
        CONTEXTS,
        functions=functions,
    )
    assert result == "abc123"
    assert seen == [("**/x", "mona.lock")]


def test_host_function_arity_from_function_spec() -> None:
    functions: dict[str, Callable[..., object]] = {
        "hashFiles": FunctionSpec(lambda *a: "", 1),
        "always": FunctionSpec(lambda: 1, 0, 0),
    }
    with pytest.raises(ExpressionError, match="Too few parameters supplied: 'hashFiles'"):
        evaluate("hashFiles()", {}, functions=functions)
    with pytest.raises(ExpressionError, match="Too many parameters supplied: 'always'"):
        evaluate("always(1)", {}, functions=functions)


def test_host_function_failure_is_an_evaluation_error() -> None:
    def broken() -> object:
        raise OSError("disk on fire")

    with pytest.raises(ExpressionError) as caught:
        evaluate("broken()", {}, functions={"broken": broken})
    assert caught.value.kind == "evaluation"
    assert "disk on fire" in caught.value.message


def test_builtins_cannot_be_replaced() -> None:
    assert evaluate("contains('abc', 'b')", {}, functions={"contains": lambda *a: "host"}) is True


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (1, "1"),
        (1.0, "1"),
        (-0.0, "0"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (123456789, "123456789"),
        (1e15, "1E+15"),
        (123456789012345678, "1.23456789012346E+17"),
        (12345.678901234567, "12345.6789012346"),
        (0.0001, "0.0001"),
        (0.00001, "1E-05"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (float("nan"), "NaN"),
        ("text", "text"),
        ([1, "a"], '[\n  1,\n  "a"\n]'),
        ({"a": None}, '{\n  "a": null\n}'),
    ],
)
def test_to_string(value: object, text: str) -> None:
    assert to_string(value) == text
