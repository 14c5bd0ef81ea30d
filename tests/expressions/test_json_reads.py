"""``json_reads``: what an expression reads out of ``fromJSON(x)``, applied to another text."""

from __future__ import annotations

import json

import pytest

from runner import expressions

DOC = json.dumps({"user": "bot", "pw": 'a"b\\c', "pin": 42, "on": True, "hosts": [{"n": "h1"}]})
CONTEXTS = {"secrets": {"DOC": DOC, "N": "3"}, "env": {"KEY": "user"}, "matrix": {"i": 0}}


def reads(expression: str, text: str = DOC) -> list[tuple[str, list[str]]]:
    return [(source, read(text)) for source, read in expressions.json_reads(expression, CONTEXTS)]


@pytest.mark.parametrize(
    ("expression", "made"),
    [
        ("fromJSON(secrets.DOC).user", ["bot"]),
        ("fromJSON(secrets.DOC)[env.KEY]", ["bot"]),
        ("fromJSON(secrets.DOC).PIN", ["42"]),
        ("fromJSON(secrets.DOC).hosts[matrix.i].n", ["h1"]),
        ("join(fromJSON(secrets.DOC).hosts.*.n, ',')", ["h1"]),
        # a quote or a backslash also as toJSON prints it inside a document
        ("fromJSON(secrets.DOC).pw", ['a"b\\c', 'a\\"b\\\\c']),
        # true, false and null tell nothing worth masking everywhere
        ("fromJSON(secrets.DOC).on", []),
        ("fromJSON(secrets.DOC).missing", []),
    ],
)
def test_the_chain_read_on_the_call_is_applied_to_the_other_text(
    expression: str, made: list[str]
) -> None:
    assert reads(expression) == [(DOC, made)]


def test_a_whole_document_gives_every_string_and_number_it_holds() -> None:
    [(source, made)] = reads("toJSON(fromJSON(secrets.DOC))")
    assert source == DOC
    assert sorted(made) == sorted(["bot", 'a"b\\c', 'a\\"b\\\\c', "42", "h1"])


def test_a_text_that_is_no_json_or_lacks_the_field_makes_nothing() -> None:
    assert reads("fromJSON(secrets.DOC).user", "not json") == [(DOC, [])]
    assert reads("fromJSON(secrets.DOC).user", '{"other": 1}') == [(DOC, [])]


def test_each_call_is_read_even_inside_another_ones_key() -> None:
    # the outer read takes the field the inner call names; the inner call reads it all
    found = reads("fromJSON(secrets.DOC)[fromJSON(secrets.N)]", '{"3": "x"}')
    assert sorted(found) == [("3", ["x"]), (DOC, ["x"])]


def test_an_argument_that_is_not_a_text_or_an_expression_without_fromjson_reads_nothing() -> None:
    assert reads("fromJSON(matrix.i)") == []
    assert reads("format('{0}', secrets.DOC)") == []
    assert reads("secrets.DOC") == []
