"""The snippet under a diagnostic: actionlint's gutter and caret, and a bounded width."""

from __future__ import annotations

from runner.diagnostics import SNIPPET_WIDTH, render_text
from runner.errors import Diagnostic, Location


def _render(line: str, column: int, length: int = 1) -> list[str]:
    d = Diagnostic(Location("w.yml", 1, column, length), "bad", "syntax-check")
    return render_text([d], lambda _path: [line]).splitlines()


def test_a_short_line_is_shown_whole_with_the_caret_under_the_token() -> None:
    out = _render("on: [push, pull]", 12, 4)
    assert out == [
        "w.yml:1:12: bad [syntax-check]",
        "  |",
        "1 | on: [push, pull]",
        "  |            ^~~~",
    ]


def test_a_huge_line_is_cut_around_the_column_and_the_caret_still_points_at_it() -> None:
    line = "x" * 500_000 + "BAD" + "y" * 500_000
    out = _render(line, 500_001, 3)
    source, marker = out[2].removeprefix("1 | "), out[3].removeprefix("  | ")
    assert len(source) <= SNIPPET_WIDTH + 2
    assert source.startswith("…") and source.endswith("…")
    caret = marker.index("^")
    assert source[caret : caret + 3] == "BAD"
    assert marker.endswith("^~~")


def test_a_column_near_either_end_of_a_long_line_keeps_that_end() -> None:
    line = "a" * 1000
    start = _render(line, 1)
    assert start[2] == "1 | " + "a" * SNIPPET_WIDTH + "…"
    assert start[3] == "  | ^"
    end = _render(line, 1000)
    assert end[2] == "1 | …" + "a" * SNIPPET_WIDTH
    assert end[3].index("^") == len(end[2]) - 1
