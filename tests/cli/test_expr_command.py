"""``runner expr``: an expression's value as ``toJSON`` writes it."""

from __future__ import annotations

import pytest

from runner.cli.main import main


@pytest.mark.parametrize(
    ("expression", "printed"),
    [
        ("3", "3"),  # numbers are doubles, printed as GitHub prints them: not 3.0
        ("fromJSON('[2, 2.5]')", "[\n  2,\n  2.5\n]"),
        ("'a' == 'A'", "true"),
        ("${{ format('{0}!', 'hi') }}", '"hi!"'),
    ],
)
def test_the_value_is_printed_as_tojson_writes_it(
    capsys: pytest.CaptureFixture[str], expression: str, printed: str
) -> None:
    assert main(["expr", expression]) == 0
    assert capsys.readouterr().out == printed + "\n"


def test_an_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["expr", "format('{1}', 'a')"]) == 1
    assert capsys.readouterr().err == (
        "error: The following format string references more arguments than were supplied: {1}\n"
    )
