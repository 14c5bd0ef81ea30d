"""Templates in strings, and the helpers the workflow validator and the engine use."""

from __future__ import annotations

import pytest

from runner.errors import ExpressionError
from runner.expressions import (
    STATUS_FUNCTIONS,
    Template,
    UnterminatedTemplateError,
    check,
    evaluate,
    find_templates,
    interpolate,
    parse,
    referenced_functions,
    referenced_named_values,
    uses_status_function,
)

CONTEXTS: dict[str, object] = {
    "github": {"ref": "refs/heads/main", "event": {"n": 1}},
    "inputs": {"name": "${{ github.ref }}", "count": 3.0},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no templates", []),
        ("${{ a }}", [Template(0, 8, " a ")]),
        ("x ${{a}} y ${{ b }}", [Template(2, 8, "a"), Template(11, 19, " b ")]),
        ("${{ '}}' }}", [Template(0, 11, " '}}' ")]),  # }} inside a string does not close
        ("${{ 'it''s }}' }}", [Template(0, 17, " 'it''s }}' ")]),
        ("${{ a }}}", [Template(0, 8, " a ")]),
        ("${{}}", [Template(0, 5, "")]),
        ("$${{ a }}", [Template(1, 9, " a ")]),
        ("${ { a }}", []),
    ],
)
def test_find_templates(text: str, expected: list[Template]) -> None:
    assert find_templates(text) == expected


@pytest.mark.parametrize(
    ("text", "offset"), [("${{ a", 0), ("ok ${{ 'a }}", 3), ("${{ a }} ${{", 9)]
)
def test_unterminated_template(text: str, offset: int) -> None:
    with pytest.raises(UnterminatedTemplateError) as caught:
        find_templates(text)
    assert isinstance(caught.value, ExpressionError)
    assert caught.value.kind == "parsing"
    assert caught.value.offset == offset
    assert "not closed" in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("ref=${{ github.ref }}", "ref=refs/heads/main"),
        ("${{ inputs.count }} items", "3 items"),  # 3.0 prints as 3
        ("[${{ null }}]", "[]"),
        ("${{ true }}/${{ 1 == 2 }}", "true/false"),
        ("${{ 0.5 }} ${{ 1e20 }}", "0.5 1E+20"),
        ("${{ github.event }}", '{\n  "n": 1\n}'),
        ("${{ fromJSON('[1]') }}", "[\n  1\n]"),
        ("${{ '${{ literal }}' }}", "${{ literal }}"),
        # a value is never scanned again
        ("${{ inputs.name }}", "${{ github.ref }}"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, CONTEXTS) == expected


def test_interpolate_errors() -> None:
    with pytest.raises(ExpressionError, match="An expression was expected"):
        interpolate("x ${{   }}", CONTEXTS)
    with pytest.raises(ExpressionError, match="Unrecognized named-value: 'secrets'"):
        interpolate("${{ secrets.x }}", CONTEXTS)
    with pytest.raises(UnterminatedTemplateError):
        interpolate("${{ github.ref", CONTEXTS)


def test_interpolate_passes_host_functions() -> None:
    assert interpolate("${{ hello('x') }}", {}, functions={"hello": lambda s: f"hi {s}"}) == "hi x"


@pytest.mark.parametrize(
    ("expression", "names", "functions"),
    [
        ("steps.build.outputs.x == inputs.y", {"steps", "inputs"}, set()),
        ("Github.ref", {"github"}, set()),
        ("success() && contains(github.ref, 'x')", {"github"}, {"success", "contains"}),
        ("hashFiles('a') || format('{0}', env.X)", {"env"}, {"hashfiles", "format"}),
        ("github['steps']", {"github"}, set()),
        ("'steps.x'", set(), set()),
        ("", set(), set()),
    ],
)
def test_references(expression: str, names: set[str], functions: set[str]) -> None:
    assert referenced_named_values(expression) == names
    assert referenced_functions(expression) == functions


@pytest.mark.parametrize(
    ("expression", "uses"),
    [
        ("always()", True),
        ("ALWAYS()", True),
        ("github.ref == 'x' || failure()", True),
        ("!cancelled() && steps.a.outcome == 'success'", True),
        ("github.ref == 'refs/heads/main'", False),
        ("'success()'", False),
        ("github.success", False),
    ],
)
def test_uses_status_function(expression: str, uses: bool) -> None:
    assert uses_status_function(expression) is uses
    assert sorted(STATUS_FUNCTIONS) == ["always", "cancelled", "failure", "success"]


def test_references_of_invalid_syntax_raise() -> None:
    with pytest.raises(ExpressionError):
        referenced_named_values("github.ref ==")


def test_check_enforces_allowed_names() -> None:
    check("github.ref == 'x' && success()", ["github"], ["success"])
    check("GITHUB.ref", ["github"], [])
    with pytest.raises(ExpressionError) as caught:
        check("secrets.TOKEN == ''", ["github", "env"], ["success"])
    assert caught.value.kind == "parsing"
    assert caught.value.message == (
        "Unrecognized named-value: 'secrets'. Located at position 1 within expression: "
        "secrets.TOKEN == ''"
    )
    with pytest.raises(ExpressionError, match="Unrecognized function: 'hashFiles'"):
        check("hashFiles('x')", ["github"], ["success"])


def test_parse_is_cached() -> None:
    first = parse("github.ref == 'x'", ["github"], [])
    assert parse("github.ref == 'x'", ["github"], []) is first
    assert parse("", ["github"], []) is None


def test_evaluate_accepts_any_mapping_of_contexts() -> None:
    from types import MappingProxyType

    contexts = MappingProxyType({"Github": MappingProxyType({"Ref": "main"})})
    assert evaluate("github.ref", contexts) == "main"
    assert evaluate("toJSON(github)", contexts) == '{\n  "Ref": "main"\n}'
