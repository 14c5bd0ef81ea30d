"""``check``, ``references`` and ``is_truthy``."""

from __future__ import annotations

import pytest

from runner.variables import Problem, check, is_truthy, references


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        (" False ", False),
        ("NO", False),
        ("no ", False),
        ("True", True),
        ("yes", True),
        ("1", True),
        (" 0", True),
        ("00", True),
        (" ", True),
    ],
)
def test_is_truthy(value: str | None, expected: bool) -> None:
    assert is_truthy(value) is expected


@pytest.mark.parametrize(
    "template",
    [
        "",
        "plain",
        "#{A} #{B | ToUpper}",
        "#{if A}x#{else}y#{/if}",
        "##{not a token",
        "#{each a in B}#{a}#{/each}",
    ],
)
def test_valid_templates_have_no_problems(template: str) -> None:
    assert check(template) == []


@pytest.mark.parametrize(
    ("template", "offset", "fragment"),
    [
        ("abc #{Foo", 4, "unterminated"),
        ("#{if A}#{each x in L}y#{/if}", 22, "#{/if} where #{/each} was expected"),
        ("#{unless A}y#{/if}", 12, "closes a block that is not open"),
        ("#{each a in L}y", 0, "#{each} has no matching #{/each}"),
        ("ok #{/if}", 3, "closes a block that is not open"),
        ("#{if A}#{B | }#{/if}", 7, "cannot parse"),
        ("#{Fo[o}", 0, "cannot parse"),
        ("#{}", 0, "cannot parse"),
    ],
)
def test_verbatim_templates_are_reported(template: str, offset: int, fragment: str) -> None:
    problems = check(template)
    assert len(problems) == 1
    assert problems[0].offset == offset
    assert fragment in problems[0].message
    assert problems[0].verbatim


def test_unknown_filters_are_reported_with_their_offset() -> None:
    template = "#{A | ToUpper} #{B | Bazooka 6}"
    assert check(template) == [
        Problem(21, "unknown filter 'Bazooka': the token will be left unreplaced", verbatim=False)
    ]


def test_unbalanced_if_is_a_warning_not_verbatim() -> None:
    # Octostache parses "#{if A}" without "#{/if}" as a variable named "if A".
    problems = check("x #{if A}y")
    assert [(p.offset, p.verbatim) for p in problems] == [(2, False)]
    assert "no matching #{/if}" in problems[0].message
    assert check("#{else}")[0].message.startswith("#{else} outside #{if}")


def test_references() -> None:
    template = (
        "#{A} #{B.C | ToUpper} #{D[#{E}].F} #{if G == H}#{I}#{/if}"
        "#{each x in Items}#{x.Name}#{Octopus.Template.Each.Index}#{J}#{/each}"
        "#{K | Replace #{L} y}"
    )
    assert references(template) == {
        "A", "B.C", "D[#{E}].F", "E", "G", "H", "I", "Items", "J", "K", "L",
    }  # fmt: skip


def test_references_of_unparseable_template_is_empty() -> None:
    assert references("#{A") == set()
