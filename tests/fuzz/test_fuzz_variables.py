"""Fuzzing Octopus's ``#{}`` substitution: ``substitute`` and ``check``.

Property: ``substitute(template, variables)`` returns text or raises ``SubstitutionLimitError``
(the documented bound on work); ``check(template)`` returns a list of problems; neither raises
anything else, and both end within a time bound. Templates are drawn from the language's
tokens (blocks, filters with options, indexers, JSON paths) and variables hold templates of their
own (recursive expansion), numbers, dates, versions, JSON and URLs, so that filters get inputs
they must refuse.

Not fuzzed: regular expressions in ``Replace``/``Match`` options are kept to literal patterns,
since catastrophic backtracking there is a documented, unbounded gap (``limits.py``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from fuzzkit import time_limit
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.variables import Problem, SubstitutionLimitError, check, references, substitute
from runner.variables.octostache.filters import NAMES

FUZZ = settings.get_profile("runner-fuzz")
TIME_LIMIT = 10.0
NOW = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)

FILTER_NAMES = [*sorted(NAMES), "Markdown", "NoSuchFilter", "TOUPPER"]
NAMES_USED = ["A", "B", "List", "Json", "Date", "Version", "Url", "Octopus.Action[x].Output.y"]

TOKENS = [
    "#{",
    "}",
    "##{",
    "#{A}",
    "#{B}",
    "#{List}",
    "#{Json.a}",
    "#{Json[0]}",
    "#{List[0]}",
    "#{List[#{A}]}",
    "#{if A}",
    "#{if A == B}",
    '#{if A != "x"}',
    "#{unless A}",
    "#{else}",
    "#{/if}",
    "#{/unless}",
    "#{each x in List}",
    "#{each x in Json}",
    "#{x}",
    "#{x.Key}",
    "#{x.Value}",
    "#{Octopus.Template.Each.First}",
    "#{/each}",
    "#{reverse A}",
    "#{calc ",
    "#{calc A*B}",
    "#{calc {Json.a}%(B+1)}",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    "0.5",
    "7",
    " | ",
    "|",
    '"',
    "'",
    "[",
    "]",
    ".",
    "A",
    "x",
    " ",
    "\n",
    "\\",
    "{",
    "$",
    "é",
]


def filter_token() -> st.SearchStrategy[str]:
    option = st.one_of(
        st.sampled_from(['"x"', "1", "-1", "2147483648", '"yyyy-MM-dd"', '"{0:N2}"', '"a" "b"']),
        st.text(alphabet="abc0123456789 -.", max_size=6).map(lambda t: f'"{t}"'),
        st.from_regex(r"[a-z0-9]{0,4}", fullmatch=True),
    )
    return st.tuples(
        st.sampled_from(NAMES_USED), st.lists(st.sampled_from(FILTER_NAMES), max_size=3), option
    ).map(lambda t: "#{" + t[0] + "".join(f" | {name} {t[2]}" for name in t[1]) + "}")


TEMPLATE = st.lists(
    st.sampled_from(TOKENS) | filter_token() | st.text(max_size=3), max_size=25
).map("".join)
VALUE = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "1",
            "-3.5",
            "1e400",
            "NaN",
            "2030-01-31T12:00:00Z",
            "31/01/2030",
            "1.2.3-beta.4+meta",
            "http://user@example.com:8080/a/b?c=d#e",
            '{"a": [1, {"b": "#{A}"}], "c": null}',
            "[1, 2, 3]",
            "x,y,z",
            "#{A}",
            "#{B}#{B}",
            "#{List}",
            "#{A | ToUpper}",
            "#{each x in List}#{x}#{/each}",
        ]
    ),
    TEMPLATE,
)
VARIABLES = st.dictionaries(st.sampled_from([*NAMES_USED, "List[0]", "List[1]", "x"]), VALUE)


def run_substitute(template: str, variables: dict[str, str]) -> None:
    started = time.perf_counter()
    try:
        with time_limit(TIME_LIMIT):
            result = substitute(template, variables, now=lambda: NOW)
    except SubstitutionLimitError as exc:
        assert str(exc)
    else:
        assert isinstance(result, str)
        if "#{" not in template:
            assert result == template
    took = time.perf_counter() - started
    assert took < TIME_LIMIT, f"{template!r} took {took:.1f} s"


@FUZZ
@given(TEMPLATE, VARIABLES)
def test_substitute_gives_text_or_a_limit_error(template: str, variables: dict[str, str]) -> None:
    run_substitute(template, variables)


@FUZZ
@given(st.text(max_size=60), VARIABLES)
def test_substitute_of_random_text(template: str, variables: dict[str, str]) -> None:
    run_substitute(template, variables)


@FUZZ
@given(TEMPLATE | st.text(max_size=60))
def test_check_reports_problems_and_never_raises(template: str) -> None:
    with time_limit(TIME_LIMIT):
        problems = check(template)
        names = references(template)
    assert isinstance(problems, list)
    assert all(isinstance(p, Problem) for p in problems)
    for problem in problems:
        assert 0 <= problem.offset <= len(template)
        assert problem.message
    assert isinstance(names, set) and all(isinstance(n, str) for n in names)


@FUZZ
@given(st.text(max_size=30))
def test_a_value_without_templates_comes_out_as_it_is(value: str) -> None:
    """A value is text: ``#{A}`` with ``A`` = anything free of ``#{`` gives that very text."""
    if "#{" in value:
        value = value.replace("#{", "#(")
    assert substitute("#{A}", {"A": value}) == value


def test_exponential_expansion_is_a_limit_error() -> None:
    """The control for the limit: 2^40 copies are refused, quickly."""
    variables = {f"V{i}": f"#{{V{i + 1}}}#{{V{i + 1}}}" for i in range(40)}
    variables["V40"] = "x"
    started = time.perf_counter()
    try:
        substitute("#{V0}", variables)
    except SubstitutionLimitError:
        pass
    else:
        raise AssertionError("2^40 copies of x were produced")
    assert time.perf_counter() - started < TIME_LIMIT


def test_literal_patterns_only_in_regex_filters() -> None:
    """The documented gap stays documented: Replace takes a regular expression from the
    template (it is not bounded), so these tests keep to literal patterns."""
    assert re.escape("a") == "a"
    assert substitute('#{A | Replace "a" "b"}', {"A": "aaa"}) == "bbb"
