"""``#{calc}``: the arithmetic cases of Octostache's CalculationFixture, and our bounds."""

from __future__ import annotations

import pytest

from runner.variables import substitute
from runner.variables.octostache import check, references
from runner.variables.octostache.limits import MAX_NESTING
from runner.variables.octostache.syntax import format_number

VARIABLES = {"A": "5", "B": "7", "The/Var": "9", "Another-Var": "11"}

# (expression inside "#{calc ...}", expected output): CalculationFixture's cases.
FIXTURE = [
    ("3+2", "5"),
    ("3-2", "1"),
    ("3*2", "6"),
    ("3/2", "1.5"),
    ("3*2+2*4", "14"),
    ("3*(2+2)*4", "48"),
    ("A+2", "7"),
    ("A+B", "12"),
    ("C+2", "#{C+2}"),
    ("{B}-2", "5"),
    ("2-B", "-5"),
    ("2-4", "-2"),
    ("(B*2)-2", "12"),
    ("2-(B*2)", "-12"),
    ("{B}/2", "3.5"),
    ("2/B", "0.2857142857142857"),
    ("2/{B}", "0.2857142857142857"),
    ("2/4", "0.5"),
    ("0.2*B", "1.4000000000000001"),
    ("B*0.2", "1.4000000000000001"),
    ("{B}*0.2", "1.4000000000000001"),
    ("{Another-Var}-2", "9"),
    ("{The/Var}-2", "7"),
    ("7%2", "1"),
    ("7%7", "0"),
    ("2%7", "2"),
    ("A%B", "5"),
    ("B%A", "2"),
    ("{B}%2", "1"),
    ("B%2", "1"),
    ("{The/Var}%4", "1"),
    ("2+7%4", "5"),
    ("7%4+2", "5"),
    ("2-9%4", "1"),
    ("10%4*2", "4"),
    ("10*4%3", "1"),
    ("(B+3)%4", "2"),
    ("20%(B+1)", "4"),
    # Modulo has no answer for fractions or a zero divisor: echoed, as an unknown variable.
    ("5.5%2", "#{5.5%2}"),
    ("5%2.5", "#{5%2.5}"),
    ("7%0", "#{7%0}"),
    ("C%2", "#{C%2}"),
    # "-" and "/" are name characters: "B-2" is a variable named so, hence {B}-2 above.
    ("B-2", "#{B-2}"),
    ("B/2", "#{B/2}"),
]


@pytest.mark.parametrize(("expression", "expected"), FIXTURE)
def test_calculation_fixture(expression: str, expected: str) -> None:
    assert substitute("#{calc " + expression + "}", VARIABLES) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("#{CALC 3+2}", "5"),  # the keyword is case-insensitive
        ("#{ calc  3 + 2 }", "5"),
        ("#{calc A + B}", "12"),
        ("Total: #{calc A*B} items", "Total: 35 items"),
        ("#{calc -5}", "#{-5}"),  # no unary minus: "-" is a name character, "-5" a name
        ("#{calc 3+}", "#{calc 3+}"),  # does not parse: the template comes back verbatim
        ("#{calc 1+2 x}", "#{calc 1+2 x}"),  # more after the sum: verbatim too
        ("#{calc}", "#{calc}"),  # a variable named "calc", unknown
        ("#{calc 1/0}", "#{1/0}"),  # .NET prints "∞"; a deployment gets the token back
        ("#{calc (C*(2+2))+1}", "#{C*(2+2)+1}"),  # grouping kept in the echo
        ("#{calc 2-(3-C)}", "#{2-(3-C)}"),
        ("#{calc 07.50*2}", "15"),
    ],
)
def test_calc_syntax(template: str, expected: str) -> None:
    assert substitute(template, VARIABLES) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e3", "1003"),
        (" 4 ", "7"),
        ("-2.5", "0.5"),
        ("1,000", "#{X+3}"),  # culture-dependent separators are not numbers
        ("1_000", "#{X+3}"),  # Python's float() would read this; .NET does not
        ("NaN", "#{X+3}"),
        ("Infinity", "#{X+3}"),
        ("1e400", "#{X+3}"),
        ("five", "#{X+3}"),
        ("", "#{X+3}"),
        ("#{A}", "8"),  # a value is a template: A is 5
    ],
)
def test_variable_values_must_be_numbers(value: str, expected: str) -> None:
    assert substitute("#{calc X+3}", {**VARIABLES, "X": value}) == expected


def test_output_variables_and_indexers_are_operands() -> None:
    variables = {"Octopus.Action[Count rows].Output.Rows": "40", "Step": "Count rows"}
    template = "#{calc {Octopus.Action[#{Step}].Output.Rows}/8}"
    assert substitute(template, variables) == "5"
    assert substitute("#{calc Octopus.Action[Count rows].Output.Rows + 2}", variables) == "42"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e15, "1E+15"),
        (1e14, "100000000000000"),
        (123456789012345678.0, "1.2345678901234568E+17"),
        (0.0001, "0.0001"),
        (0.00001, "1E-05"),
        (-1.5e-7, "-1.5E-07"),
        (-0.0, "0"),
        (5e-324, "5E-324"),
        (12345.678, "12345.678"),
    ],
)
def test_numbers_are_written_as_dotnet_writes_doubles(value: float, text: str) -> None:
    assert format_number(value) == text


def test_modulo_is_truncated_like_csharp() -> None:
    assert substitute("#{calc X%3}", {"X": "-7"}) == "-1"
    assert substitute("#{calc 7%X}", {"X": "-3"}) == "1"
    # Beyond a 64-bit integer there is no whole number to take
    assert substitute("#{calc X%3}", {"X": "1e19"}) == "#{X%3}"


def test_parentheses_nest_only_so_deep() -> None:
    deep = "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1)
    assert substitute("#{calc " + deep + "}", {}) == "#{calc " + deep + "}"
    assert check("#{calc " + deep + "}")  # reported, not a crash
    fine = "(" * 10 + "1+1" + ")" * 10
    assert substitute("#{calc " + fine + "}", {}) == "2"


def test_a_long_sum_does_not_recurse() -> None:
    template = "#{calc " + "+".join(["A"] * 20_000) + "}"
    assert substitute(template, VARIABLES) == "100000"


def test_references_name_the_operands() -> None:
    assert references("#{calc {The/Var} * A + 2}") == {"The/Var", "A"}
    assert check("#{calc A+2}") == []
