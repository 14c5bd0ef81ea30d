"""Operators, literals, coercions and property access, table by table."""

from __future__ import annotations

import math

import pytest

from runner.expressions import evaluate, is_truthy

CONTEXTS: dict[str, object] = {
    "github": {"ref": "refs/heads/main", "Event_Name": "push", "run_number": 7},
    "obj": {"a": {"b": 1}, "c": {"b": 2}, "d": "text"},
    "arr": [{"b": 1}, {"b": 2}, [10, 20], "x"],
    "nested": [[1, 2], [3], {"k": 4}],
    "empty": {},
    "none": None,
}


def ev(expression: str) -> object:
    return evaluate(expression, CONTEXTS)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("null", None),
        ("true", True),
        ("false", False),
        ("1", 1),
        ("-1.5", -1.5),
        ("+2", 2),
        (".5", 0.5),
        ("-.5", -0.5),
        ("5.", 5),
        ("1.2e2", 120),
        ("1E-2", 0.01),
        ("0xff", 255),
        ("0XFF", 255),
        ("0o17", 15),
        ("0b101", 5),
        ("'it''s'", "it's"),
        ("'a''b''c'", "a'b'c"),
        ("''", ""),
        ("'}}'", "}}"),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("", None),
        ("   ", None),
    ],
)
def test_literals(expression: str, expected: object) -> None:
    assert ev(expression) == expected


def test_nan_literal() -> None:
    assert math.isnan(ev("NaN"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # strings compare case-insensitively
        ("'ABC' == 'abc'", True),
        ("'abc' != 'ABD'", True),
        ("'straße' == 'STRASSE'", True),
        ("'ı' == 'I'", False),  # the dotless i is not upper-cased (toUpperSpecial upstream)
        # number <-> string
        ("1 == '1'", True),
        ("1 == ' 1.0 '", True),
        ("0 == ''", True),
        ("16 == '0x10'", True),
        ("1 == 'one'", False),
        # booleans and null become numbers
        ("true == 1", True),
        ("true == '1'", True),
        ("false == ''", True),
        ("null == 0", True),
        ("null == false", True),
        ("null == ''", True),
        ("null == 'null'", False),
        # NaN equals nothing
        ("NaN == NaN", False),
        ("NaN != NaN", True),
        # collections compare by identity, never coerced
        ("obj == obj", True),
        ("obj.a == obj.a", True),
        ("obj.a == obj.c", False),
        ("empty == 'Object'", False),
        ("arr == arr", True),
        ("fromJSON('[]') == fromJSON('[]')", False),
        ("-0 == 0", True),
    ],
)
def test_equality(expression: str, expected: bool) -> None:
    assert ev(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2", True),
        ("2 >= 3", False),
        ("'a' < 'B'", True),  # case-insensitive ordering
        ("'b' > 'A'", True),
        ("'10' > 9", True),  # string to number
        ("'abc' > 1", False),  # NaN compares false
        ("'abc' < 1", False),
        ("true > false", True),
        ("false < true", True),
        ("null < 1", True),
        ("null >= 0", True),
        ("obj > 1", False),
        ("arr < arr", False),
        ("arr <= arr", True),  # <= is == or <
        ("NaN >= NaN", False),
        ("Infinity > 1e308", True),
    ],
)
def test_comparison(expression: str, expected: bool) -> None:
    assert ev(expression) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 && 'x'", "x"),
        ("0 && 'x'", 0),
        ("'' || 'fallback'", "fallback"),
        ("'first' || 'second'", "first"),
        ("null || false", False),
        ("false || null", None),
        ("obj.missing || 'default'", "default"),
        ("empty && 'object is truthy'", "object is truthy"),
        ("1 || 2 && 3", 1),
        ("(1 || 2) && 3", 3),
        ("!0", True),
        ("!!'0'", True),
        ("!''", True),
        ("!empty", False),
        ("!NaN", True),
        ("!-0", True),
    ],
)
def test_logical(expression: str, expected: object) -> None:
    assert ev(expression) == expected
    assert type(ev(expression)) is type(expected) or isinstance(expected, int | float)


def test_logical_short_circuits() -> None:
    calls: list[str] = []

    def record(name: str) -> bool:
        calls.append(name)
        return True

    functions = {"rec": record}
    assert evaluate("false && rec('and')", {}, functions=functions) is False
    assert evaluate("true || rec('or')", {}, functions=functions) is True
    assert calls == []
    assert evaluate("true && rec('x')", {}, functions=functions) is True
    assert calls == ["x"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("!true == false", True),  # ! binds tighter than ==
        ("!(1 == 2)", True),
        ("1 < 2 == true", True),  # comparison binds tighter than equality
        ("1 == 1 && 2 == 2", True),
        ("false && false || true", True),
        ("3 > 2 > 1", False),  # (3 > 2) > 1 is true > 1 is 1 > 1
        ("!obj.d", False),  # property access binds tighter than !
        ("(!obj).d", None),
    ],
)
def test_precedence(expression: str, expected: object) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("github.ref", "refs/heads/main"),
        ("GitHub.REF", "refs/heads/main"),  # context and property names ignore case
        ("github.event_name", "push"),
        ("github['EVENT_NAME']", "push"),
        ("github.missing", None),
        ("github.ref.length", None),  # properties of a string are null
        ("none.x", None),
        ("obj.a.b", 1),
        ("obj['a']['b']", 1),
        ("arr[1].b", 2),
        ("arr['1'].b", 2),  # indexes coerce to numbers
        ("arr[1.9].b", 2),  # and are floored
        ("arr[-1]", None),
        ("arr[4]", None),
        ("arr[true].b", 2),
        ("arr['x']", None),
        ("obj[1]", None),
        ("(obj).d", "text"),
        ("fromJSON('[5, 6]')[1]", 6),
    ],
)
def test_property_access(expression: str, expected: object) -> None:
    assert ev(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("obj.*.b", [1, 2]),
        ("obj[*].b", [1, 2]),
        ("arr.*.b", [1, 2]),
        ("nested.*[0]", [1, 3]),  # an index applies to each array item, objects are skipped
        ("nested.*.k", [4]),
        ("nested.*.*", [1, 2, 3, 4]),
        ("obj.d.*", []),  # a filter of a non-collection is empty
        ("none.*", []),
        ("empty.*", []),
    ],
)
def test_filters(expression: str, expected: list[object]) -> None:
    result = ev(expression)
    assert type(result) is list
    assert result == expected


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (-0.0, False),
        (math.nan, False),
        ("", False),
        (True, True),
        (1, True),
        (-1, True),
        (math.inf, True),
        ("0", True),
        ("false", True),
        ([], True),
        ({}, True),
    ],
)
def test_is_truthy(value: object, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def test_contexts_are_case_insensitive_and_results_are_the_same_objects() -> None:
    payload = {"x": [1]}
    assert evaluate("Event", {"event": payload}) is payload
    assert evaluate("event.x", {"EVENT": payload}) is payload["x"]
