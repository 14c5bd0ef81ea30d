"""``format()`` with a written format string fails the same whatever its arguments: ``format('{0}
and {1}', x)`` passed ``validate`` and failed when its step ran, after the steps before it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.load import check_file

WORKFLOW = """\
name: f
steps:
  - id: a
    name: A
    env:
      X: "${{{{ {expression} }}}}"
    run: echo "$X"
"""


def errors(tmp_path: Path, expression: str) -> list[str]:
    path = tmp_path / "w.yml"
    path.write_text(WORKFLOW.format(expression=expression), encoding="utf-8")
    return [
        f"{d.location.line}:{d.location.column}: {d.message}"
        for d in check_file(path).diagnostics
        if d.severity == "error"
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "format('{0} and {1}', 'a')",
            "The following format string references more arguments than were supplied: {0} and {1}",
        ),
        (
            "format('{0}', )",
            "The following format string references more arguments than were supplied: {0}",
        ),
        ("format('bad {', env.X)", "The following format string is invalid: bad {"),
    ],
)
def test_a_format_that_fails_whatever_its_arguments_is_an_error(
    tmp_path: Path, expression: str, message: str
) -> None:
    assert errors(tmp_path, expression) == [f"6:14: {message}"]


@pytest.mark.parametrize(
    "expression",
    [
        "format('{0} and {1}', 'a', env.X)",
        "format('{{0}} is literal, {0} is not', 'a')",
        "format(env.FORMAT, 'a')",  # not written: known when the step runs
    ],
)
def test_a_format_that_can_work_is_not(tmp_path: Path, expression: str) -> None:
    assert errors(tmp_path, expression) == []
