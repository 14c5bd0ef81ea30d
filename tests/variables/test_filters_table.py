"""Every filter name in the table has a function, found whatever the case of its name."""

from __future__ import annotations

from datetime import UTC, datetime

from runner.variables import octostache
from runner.variables.octostache import filters


def test_every_filter_name_but_the_clocks_has_a_function() -> None:
    assert filters.NAMES - set(filters.CLOCK_FILTERS) == set(filters._FILTERS)
    for name, function in filters._FILTERS.items():
        assert callable(function), name


def test_a_filter_is_found_whatever_the_case_of_its_name() -> None:
    values = {"B": "b"}
    assert octostache.substitute("#{B | ToUpper} #{B | toupper} #{B | TOUPPER}", values) == "B B B"


def test_an_unknown_filter_leaves_the_token_unreplaced() -> None:
    assert octostache.substitute("#{B | NoSuchFilter}", {"B": "b"}) == "#{B | NoSuchFilter}"
    clock = lambda: datetime(2026, 1, 2, tzinfo=UTC)  # noqa: E731
    assert filters.invoke("nosuchfilter", "b", [], clock) is None
