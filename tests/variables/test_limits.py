"""Pathological templates and variables end cleanly (behaviour asserted, not timings)."""

from __future__ import annotations

import itertools

import pytest

from runner.errors import SubstitutionError
from runner.variables import SubstitutionLimitError, check, substitute
from runner.variables.octostache.limits import MAX_DEPTH, MAX_NESTING


def test_ten_thousand_nested_openers_come_back_verbatim() -> None:
    template = "#{" * 10_000 + "x" + "}" * 10_000
    assert substitute(template, {"x": "1"}) == template
    assert check(template)


def test_ten_thousand_nested_indexers_come_back_verbatim() -> None:
    template = "#{A[" * 10_000 + "x" + "]}" * 10_000
    assert substitute(template, {}) == template
    problems = check(template)
    assert problems and "nested more than" in problems[0].message


def test_nesting_up_to_the_limit_works_and_beyond_is_verbatim() -> None:
    inside = MAX_NESTING - 1
    ok = "#{if A}" * inside + "x" + "#{/if}" * inside
    assert substitute(ok, {"A": "1"}) == "x"
    too_deep = "#{if A}" * (MAX_NESTING + 1) + "x" + "#{/if}" * (MAX_NESTING + 1)
    assert substitute(too_deep, {"A": "1"}) == too_deep


def test_ten_thousand_unterminated_ifs_are_verbatim() -> None:
    template = "#{if a}" * 10_000
    assert substitute(template, {"a": "1"}) == template


def test_huge_each_completes() -> None:
    items = ",".join(str(i) for i in range(100_000))
    result = substitute("#{each i in L}#{i};#{/each}", {"L": items})
    assert result.count(";") == 100_000
    assert result.startswith("0;1;2;") and result.endswith("99999;")


def test_huge_each_over_indexed_variables_completes() -> None:
    variables = {f"A[{i}].Name": f"n{i}" for i in range(20_000)}
    result = substitute("#{each a in A}#{a.Name},#{/each}", variables)
    assert result.count(",") == 20_000


def test_self_reference_is_left_unreplaced() -> None:
    assert substitute("#{A}", {"A": "#{A}"}) == "#{A}"
    # Octostache compares the symbols being resolved case-sensitively, so "a" -> "A" expands
    # once more before "A" is seen again.
    assert substitute("#{a}", {"A": "x#{A}"}) == "xx#{A}"


def test_reference_cycle_is_left_unreplaced() -> None:
    variables = {"A": "#{B}", "B": "#{C}", "C": "#{A}"}
    assert substitute("#{A}", variables) == "#{A}"


def test_long_reference_chain_stops_at_depth_limit() -> None:
    variables = {f"V{i}": f"#{{V{i + 1}}}" for i in range(5_000)}
    variables["V5000"] = "end"
    result = substitute("#{V0}", variables)
    assert result.startswith("#{V") and result.endswith("}")
    assert substitute("#{V4990}", variables) == "end"  # a short chain resolves
    assert MAX_DEPTH < 5_000


def test_exponential_expansion_raises_limit_error() -> None:
    names = [f"L{i}" for i in range(40)]
    variables = {a: f"#{{{b}}}#{{{b}}}" for a, b in itertools.pairwise(names)}
    variables[names[-1]] = "x"
    with pytest.raises(SubstitutionLimitError) as raised:
        substitute("#{L0}", variables)
    assert isinstance(raised.value, SubstitutionError)


def test_moderate_expansion_is_fine() -> None:
    names = [f"L{i}" for i in range(11)]
    variables = {a: f"#{{{b}}}#{{{b}}}" for a, b in itertools.pairwise(names)}
    variables[names[-1]] = "x"
    assert substitute("#{L0}", variables) == "x" * 1024


def test_nested_loops_over_huge_lists_raise_limit_error() -> None:
    items = ",".join("x" * 100_000)
    with pytest.raises(SubstitutionLimitError):
        substitute("#{each i in L}#{each j in L}.#{/each}#{/each}", {"L": items})


def test_very_long_filter_chain() -> None:
    assert substitute("#{A" + " | ToUpper" * 10_000 + "}", {"A": "a"}) == "A"


def test_big_text_is_not_counted_against_the_budget() -> None:
    text = "a" * 5_000_000
    assert substitute(text + "#{A}", {"A": "b"}) == text + "b"


def test_deep_json_value_is_not_a_path() -> None:
    assert substitute("#{A.x}", {"A": "[" * 100_000}) == "#{A.x}"
