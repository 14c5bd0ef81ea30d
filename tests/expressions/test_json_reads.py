"""``json_reads`` (what an expression reads out of ``fromJSON``) and ``json_parts`` (every string
and number of a JSON text), which a masker compares to tell a part of a secret that was read."""

from __future__ import annotations

import json

import pytest

from runner import expressions
from runner.masking import Masker

DOC = json.dumps({"user": "bot", "pw": 'a"b\\c', "pin": 42, "on": True, "hosts": [{"n": "h1"}]})
CONTEXTS = {
    "secrets": {"DOC": DOC, "N": "3", "INNER": json.dumps({"doc": DOC})},
    "env": {"KEY": "user"},
    "matrix": {"i": 0},
}


def reads(expression: str) -> list[str]:
    return expressions.json_reads(expression, CONTEXTS)


@pytest.mark.parametrize(
    ("expression", "read"),
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
        # the secret wrapped in another document: what the reads give, as evaluated
        ("fromJSON(format('[{0}]', secrets.DOC))[0].user", ["bot"]),
        # nested: the inner call reads a document's text, the outer one its field
        ("fromJSON(fromJSON(secrets.INNER).doc).user", ["bot", DOC, json.dumps(DOC)[1:-1]]),
    ],
)
def test_the_values_each_call_and_its_reads_give(expression: str, read: list[str]) -> None:
    assert sorted(reads(expression)) == sorted(read)


def test_a_whole_document_gives_every_string_and_number_it_holds() -> None:
    assert sorted(reads("toJSON(fromJSON(secrets.DOC))")) == sorted(
        ["bot", 'a"b\\c', 'a\\"b\\\\c', "42", "h1"]
    )


def test_an_argument_that_is_no_json_or_an_expression_without_fromjson_reads_nothing() -> None:
    assert reads("fromJSON(matrix.i)") == ["0"]  # a number is a JSON document too
    assert reads("format('{0}', secrets.DOC)") == []
    assert reads("fromJSON(env.KEY)") == []  # not JSON: the expression's own error says so


def test_parts_are_found_at_any_depth_and_inside_json_texts_a_string_holds() -> None:
    parts = expressions.json_parts(CONTEXTS["secrets"]["INNER"])
    assert {"bot", 'a"b\\c', "42", "h1", DOC} <= set(parts)
    assert expressions.json_parts("not json") == []
    assert expressions.json_parts('{"a": ') == []


def test_the_masker_registers_a_value_read_only_when_it_is_a_part_of_a_secret() -> None:
    masker = Masker()
    masker.add(DOC)
    masker.add_parts(["bot-not-a-part", 'a"b\\c', "h1", "true"], expressions.json_parts)
    assert masker.mask('pw a"b\\c') == "pw ***"
    # too short to mask (as any secret), or no part of one
    assert masker.mask("h1 bot-not-a-part") == "h1 bot-not-a-part"
    # a part of a secret registered after the first call is known at the next
    masker.add(json.dumps({"token": "tok-5b7c9e"}))
    masker.add_parts(["tok-5b7c9e"], expressions.json_parts)
    assert masker.mask("token tok-5b7c9e") == "token ***"


@pytest.mark.parametrize(
    ("secret", "parts"),
    [
        # a number secret as ${{ }} prints it
        ("12345678.0", ["12345678"]),
        (" 8.7654321e7", ["87654321"]),
        # a string holding a number, read with fromJSON again
        ('{"pin": "98765432.0"}', ["98765432.0", "98765432"]),
        ("not json", []),
        ("-", []),
    ],
)
def test_numbers_are_parts_as_printed(secret: str, parts: list[str]) -> None:
    assert sorted(expressions.json_parts(secret)) == sorted(parts)


def test_documents_held_in_strings_are_followed_at_any_depth() -> None:
    value: object = {"pw": "deep-secret-1"}
    for _ in range(12):
        value = {"a": json.dumps(value)}
    assert "deep-secret-1" in expressions.json_parts(json.dumps(value))


def test_fromjson_turns_a_half_character_into_a_replacement_character() -> None:
    """A lone ``\\ud800`` decoded could not be written to a script or an environment (an
    internal error); .NET writes it as U+FFFD, and a pair escaped in halves is one character."""
    doc = '{"u": "ab\\ud800cd", "ok": "\\ud83d\\ude00"}'
    value = expressions.evaluate("fromJSON(secrets.DOC)", {"secrets": {"DOC": doc}})
    assert value == {"u": "ab\ufffdcd", "ok": "\U0001f600"}
