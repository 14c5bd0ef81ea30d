"""Static checks of a template: what would make Octostache echo it verbatim, and what it uses."""

from __future__ import annotations

import re

from msgspec import Struct

from runner.variables.octostache.filters import is_known
from runner.variables.octostache.limits import MAX_NESTING
from runner.variables.octostache.parser import Parser, TooDeep, parse
from runner.variables.octostache.syntax import (
    Arithmetic,
    Calculation,
    Chain,
    Conditional,
    Expression,
    Identifier,
    Indexer,
    Operand,
    Repetition,
    Substitution,
    Symbol,
    Text,
    Token,
    Variable,
    render,
    render_symbol,
)


class Problem(Struct, frozen=True):
    """A problem at ``offset`` (0-based, in characters) of a template.

    ``verbatim`` is true when the whole template would come back unsubstituted; false for a
    problem that only leaves one token unreplaced (an unknown filter)."""

    offset: int
    message: str
    verbatim: bool = True


def _tag(source: str, pos: int) -> str:
    end = source.find("}", pos)
    text = source[pos : end + 1] if 0 <= end - pos < 40 else source[pos : pos + 20] + "..."
    return text.replace("\n", " ")


def _block_problem(parser: Parser, pos: int) -> Problem | None:
    """An ``#{if}``/``#{each}`` whose header parses but whose block does not close."""
    source = parser.s
    header = parser.conditional_header(pos)
    if header is not None:
        keyword, body = header.keyword, header.body
        _, q = parser.template(body, stop_at_else=True)
        while parser.at_else(q):
            if source.startswith("#{else}", q):
                _, q = parser.template(q + 7, stop_at_else=False)
                break
            end = source.find("}", q)
            if end < 0:
                break
            _, q = parser.template(end + 1, stop_at_else=True)
    else:
        repetition = parser.repetition_header(pos)
        if repetition is None:
            return None
        keyword = "each"
        _, q = parser.template(repetition[2], stop_at_else=False)
    close = "#{/" + keyword + "}"
    if q < parser.n and not source.startswith("#{/", q):
        return _diagnose(parser, q)
    if q < parser.n:
        found = _tag(source, q)
        return Problem(q, f"{found} where {close} was expected to close #{{{keyword}}} at {pos}")
    return Problem(pos, f"#{{{keyword}}} has no matching {close}")


def _diagnose(parser: Parser, pos: int) -> Problem:
    source = parser.s
    if source.startswith("#{/", pos):
        return Problem(pos, f"{_tag(source, pos)} closes a block that is not open")
    block = _block_problem(parser, pos)
    if block is not None:
        return block
    if source.find("}", pos) < 0:
        return Problem(pos, "unterminated #{: no closing }")
    return Problem(pos, f"cannot parse {_tag(source, pos)}")


def _filters(tokens: tuple[Token, ...], offsets: list[Problem]) -> None:
    for token in tokens:
        if isinstance(token, Substitution):
            _expression_filters(token.expression, offsets)
        elif isinstance(token, Conditional):
            _expression_filters(token.condition.left, offsets)
            if token.condition.right is not None:
                _expression_filters(token.condition.right, offsets)
            _filters(token.truthy, offsets)
            _filters(token.falsy, offsets)
        elif isinstance(token, Repetition):
            _filters(token.body, offsets)


def _expression_filters(expression: Expression, problems: list[Problem]) -> None:
    if isinstance(expression, Chain):
        for call in expression.calls:
            if not is_known(call.name):
                message = f"unknown filter {call.name!r}: the token will be left unreplaced"
                problems.append(Problem(call.offset, message, verbatim=False))
            _filters(call.options, problems)


def check(template: str) -> list[Problem]:
    """Problems that make ``template`` come back verbatim, else unknown filters."""
    parser = Parser(template)
    try:
        tokens, end = parser.template(0, stop_at_else=False)
    except TooDeep as deep:
        return [Problem(deep.offset, f"#{{ nested more than {MAX_NESTING} levels deep")]
    if end != len(template):
        try:
            return [_diagnose(Parser(template), end)]
        except TooDeep as deep:
            return [Problem(deep.offset, f"#{{ nested more than {MAX_NESTING} levels deep")]
    problems: list[Problem] = []
    _filters(tokens, problems)
    _stray_keywords(parser, problems)
    return sorted(problems, key=lambda p: p.offset)


_KEYWORD = re.compile(r"(if|unless|each|elseif)\s.*|else", re.I | re.S)


def _stray_keywords(parser: Parser, problems: list[Problem]) -> None:
    """``#{if A}`` without ``#{/if}`` parses, as a variable named ``if A``: worth a warning."""
    for offset, token in parser.placed.items():
        if not isinstance(token, Substitution) or not isinstance(token.expression, Symbol):
            continue
        first = token.expression.steps[0]
        if isinstance(first, Identifier) and _KEYWORD.fullmatch(first.text):
            keyword = first.text.split()[0].lower()
            closing = {"each": "#{/each}", "unless": "#{/unless}"}.get(keyword, "#{/if}")
            message = (
                f"{render(token)} has no matching {closing}: "
                f"it is read as a variable named {render_symbol(token.expression)!r}"
            )
            if keyword == "else":
                message = "#{else} outside #{if}: it is read as a variable named 'else'"
            problems.append(Problem(offset, message, verbatim=False))


def _symbol_names(symbol: Symbol, names: set[str], scope: frozenset[str]) -> None:
    if not symbol.steps:
        return
    text = render_symbol(symbol)
    first = symbol.steps[0]
    head = first.text.lower() if isinstance(first, Identifier) else ""
    own = head in scope or (bool(scope) and text.lower().startswith("octopus.template.each."))
    if not own:
        names.add(text)
    for step in symbol.steps:
        if isinstance(step, Indexer) and step.symbol is not None:
            _symbol_names(step.symbol, names, scope)


def _expression_names(expression: Expression, names: set[str], scope: frozenset[str]) -> None:
    if isinstance(expression, Symbol):
        _symbol_names(expression, names, scope)
        return
    _symbol_names(expression.base, names, scope)
    for call in expression.calls:
        _names(call.options, names, scope)


def _operand_names(operand: Operand, names: set[str], scope: frozenset[str]) -> None:
    if isinstance(operand, Variable):
        _symbol_names(operand.symbol, names, scope)
    elif isinstance(operand, Arithmetic):
        _operand_names(operand.first, names, scope)
        for _, right in operand.rest:
            _operand_names(right, names, scope)


def _names(tokens: tuple[Token, ...], names: set[str], scope: frozenset[str]) -> None:
    for token in tokens:
        if isinstance(token, Text):
            continue
        if isinstance(token, Calculation):
            _operand_names(token.expression, names, scope)
        elif isinstance(token, Substitution):
            _expression_names(token.expression, names, scope)
        elif isinstance(token, Conditional):
            _expression_names(token.condition.left, names, scope)
            if token.condition.right is not None:
                _expression_names(token.condition.right, names, scope)
            _names(token.truthy, names, scope)
            _names(token.falsy, names, scope)
        else:
            _symbol_names(token.collection, names, scope)
            _names(token.body, names, scope | {token.enumerator.lower()})


def references(template: str) -> set[str]:
    """Names the template refers to, normalised (``Octopus.Action[A].Name``, ``[#{X}]`` kept).

    Names inside ``#{each a in ...}`` that start with the loop variable ``a`` or are
    ``Octopus.Template.Each.*`` are the loop's own and left out; the collection is included, as
    in Octostache's ``ParseTemplateAndGetArgumentNames``. A template that does not parse refers
    to nothing (it comes back verbatim)."""
    tokens = parse(template)
    names: set[str] = set()
    if tokens is not None:
        _names(tokens, names, frozenset())
    return names
