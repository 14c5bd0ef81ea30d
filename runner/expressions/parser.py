"""Recursive-descent parser with GitHub's precedence, depth limit and error messages.

The structure, the depth accounting and the error texts follow ``expressions/src/parser.ts`` of
actions/languageservices. Precedence, loosest first::

    ||   &&   == !=   < <= > >=   !   . [ ] ( )

Depth is counted as upstream: one level per parenthesised or argument sub-expression, per ``!``,
per ``.``/``[]`` access, and one per ``&&``/``||`` chain. More than 50 levels is an error, raised
while descending, so the recursion here never goes deeper than about 500 Python frames.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import NamedTuple

from msgspec import Struct

from runner.errors import ExpressionError
from runner.expressions.ast import (
    Call,
    Compare,
    Index,
    Literal,
    Logical,
    NamedValue,
    Node,
    Not,
    Wildcard,
    walk,
)
from runner.expressions.lexer import MAX_LENGTH, Token, TokenType, lex, position, utf16_length

#: ``MAX_PARSER_DEPTH`` in languageservices, ``ExpressionConstants.MaxDepth`` in the runner.
MAX_DEPTH = 50


class Arity(Struct, frozen=True):
    """How many arguments a function takes (``max_args=None``: no upper limit)."""

    min_args: int = 0
    max_args: int | None = None


#: The functions of the language (``wellKnownFunctions``); names are case-insensitive.
BUILTIN_ARITY: dict[str, Arity] = {
    "case": Arity(3, None),
    "contains": Arity(2, 2),
    "endswith": Arity(2, 2),
    "format": Arity(1, 255),
    "fromjson": Arity(1, 1),
    "join": Arity(1, 2),
    "startswith": Arity(2, 2),
    "tojson": Arity(1, 1),
}


def parsing_error(description: str, token: Token, expression: str) -> ExpressionError:
    """``<description>: '<token>'. Located at position N within expression: <expression>``."""
    return ExpressionError(
        f"{description}: '{token.display()}'. Located at position "
        f"{position(expression, token.offset)} within expression: {expression}",
        kind="parsing",
    )


def depth_error() -> ExpressionError:
    """The error for an expression nested more than ``MAX_DEPTH`` levels."""
    return ExpressionError(f"Exceeded max expression depth {MAX_DEPTH}", kind="parsing")


def length_error() -> ExpressionError:
    """The error for an expression longer than ``MAX_LENGTH``."""
    return ExpressionError(f"Exceeded max expression length {MAX_LENGTH}", kind="parsing")


class _Parser:
    def __init__(
        self,
        expression: str,
        tokens: list[Token],
        named_values: frozenset[str] | None,
        functions: Mapping[str, Arity] | None,
    ) -> None:
        self.expression = expression
        self.tokens = tokens
        self.named_values = named_values  # None: accept any name (syntax check only)
        self.functions = functions
        self.offset = 0
        self.depth = 0
        self.deepest = 0  # the most levels open at once, for ``syntax``

    # -- grammar -------------------------------------------------------------------------------

    def parse(self) -> Node | None:
        if self._at_end():
            return None
        result = self._expression()
        if not self._at_end():
            raise self._unexpected(self._peek())
        return result

    def _expression(self) -> Node:
        self._enter()
        result = self._logical(TokenType.OR)
        self.depth -= 1
        return result

    def _logical(self, operator: TokenType) -> Node:
        # || binds looser than &&, && looser than == and !=.
        inner = self._logical_and if operator is TokenType.OR else self._equality
        first = inner()
        if not self._check(operator):
            return first
        self._enter()
        args = [first]
        while self._match(operator):
            args.append(inner())
        self.depth -= 1
        return Logical(operator.value, tuple(args))

    def _logical_and(self) -> Node:
        return self._logical(TokenType.AND)

    def _equality(self) -> Node:
        return self._chain(self._comparison, (TokenType.EQUAL_EQUAL, TokenType.BANG_EQUAL))

    def _comparison(self) -> Node:
        return self._chain(
            self._unary,
            (TokenType.GREATER, TokenType.GREATER_EQUAL, TokenType.LESS, TokenType.LESS_EQUAL),
        )

    def _chain(self, read: Callable[[], Node], operators: tuple[TokenType, ...]) -> Node:
        # Left-associative: ``a == b != c`` is ``(a == b) != c``.
        first = read()
        rest: list[tuple[str, Node]] = []
        while self._peek().type in operators:
            op = self._next().type.value
            rest.append((op, read()))
        return Compare(first, tuple(rest)) if rest else first

    def _unary(self) -> Node:
        if self._match(TokenType.BANG):
            self._enter()
            operand = self._unary()
            self.depth -= 1
            return Not(operand)
        return self._index()

    def _index(self) -> Node:
        node, indexable = self._call()
        if not indexable:
            return node
        entered = 0
        while True:
            if self._match(TokenType.LEFT_BRACKET):
                key: Node | Wildcard = (
                    Wildcard() if self._match(TokenType.STAR) else self._expression()
                )
                self._consume(TokenType.RIGHT_BRACKET)
                self._enter()
                entered += 1
                node = Index(node, key)
            elif self._match(TokenType.DOT):
                self._enter()
                entered += 1
                if self._match(TokenType.IDENTIFIER):
                    node = Index(node, Literal(self._previous().lexeme))
                elif self._match(TokenType.STAR):
                    node = Index(node, Wildcard())
                else:
                    raise self._unexpected(self._peek())
            else:
                break
        self.depth -= entered
        return node

    def _call(self) -> tuple[Node, bool]:
        """A context, a function call or a primary; and whether ``.``/``[]`` may follow it."""
        if not self._check(TokenType.IDENTIFIER):
            return self._primary()
        identifier = self._next()
        if not self._match(TokenType.LEFT_PAREN):
            name = identifier.lexeme.lower()
            if self.named_values is not None and name not in self.named_values:
                raise parsing_error("Unrecognized named-value", identifier, self.expression)
            return NamedValue(name, identifier.lexeme), True
        args: list[Node] = []
        while not self._match(TokenType.RIGHT_PAREN):
            args.append(self._expression())
            if not self._check(TokenType.RIGHT_PAREN):
                self._consume(TokenType.COMMA)
        name = identifier.lexeme.lower()
        self._validate_call(name, identifier, len(args))
        return Call(name, identifier.lexeme, tuple(args)), True

    def _validate_call(self, name: str, identifier: Token, count: int) -> None:
        problem = call_problem(name, count, self.functions)
        if problem is not None:
            raise parsing_error(problem, identifier, self.expression)

    def _primary(self) -> tuple[Node, bool]:
        token = self._peek()
        if token.type in _LITERALS:
            self._next()
            return Literal(token.value), False
        if self._match(TokenType.LEFT_PAREN):
            inner = self._expression()
            if self._at_end():
                raise self._end_error()
            self._consume(TokenType.RIGHT_PAREN)
            return inner, True
        if self._at_end():
            raise self._end_error()
        raise self._unexpected(token)

    # -- token helpers -------------------------------------------------------------------------

    def _enter(self) -> None:
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        if self.depth > MAX_DEPTH:
            raise depth_error()

    def _peek(self) -> Token:
        return self.tokens[self.offset]

    def _previous(self) -> Token:
        return self.tokens[self.offset - 1]

    def _at_end(self) -> bool:
        return self.tokens[self.offset].type is TokenType.EOF

    def _next(self) -> Token:
        if not self._at_end():
            self.offset += 1
        return self._previous()

    def _check(self, token_type: TokenType) -> bool:
        return self.tokens[self.offset].type is token_type

    def _match(self, token_type: TokenType) -> bool:
        if self.tokens[self.offset].type is token_type:
            self.offset += 1
            return True
        return False

    def _consume(self, token_type: TokenType) -> None:
        if not self._match(token_type):
            raise self._unexpected(self._peek())

    def _end_error(self) -> ExpressionError:
        # Points at the last token before the end, as upstream does.
        return parsing_error("Unexpected end of expression", self._previous(), self.expression)

    def _unexpected(self, token: Token) -> ExpressionError:
        if token.type is TokenType.EOF:
            # Running out of tokens (``foo[1``, ``f(1``) reads as the end of the expression, as in
            # the runner, rather than as an "unexpected symbol: 'EOF'".
            return self._end_error()
        return parsing_error("Unexpected symbol", token, self.expression)


def call_problem(name: str, count: int, functions: Mapping[str, Arity] | None) -> str | None:
    """What is wrong with calling function ``name`` (lower-cased) with ``count`` arguments, if
    anything; ``functions`` ``None`` accepts any function that is not built in."""
    arity = BUILTIN_ARITY.get(name)
    if arity is None and functions is not None:
        arity = functions.get(name)
        if arity is None:
            return "Unrecognized function"
    if arity is None:  # syntax check only: unknown functions are not validated
        return None
    if count < arity.min_args:
        return "Too few parameters supplied"
    if arity.max_args is not None and count > arity.max_args:
        return "Too many parameters supplied"
    if name == "case" and count % 2 == 0:
        return "Even number of parameters supplied, requires an odd number of parameters"
    return None


_LITERALS = frozenset(
    {TokenType.TRUE, TokenType.FALSE, TokenType.NULL, TokenType.NUMBER, TokenType.STRING}
)


def parse_tree(
    expression: str,
    named_values: frozenset[str] | None,
    functions: Mapping[str, Arity] | None,
) -> Node | None:
    """Parse ``expression``; ``None`` for an empty one.

    ``named_values`` are lower-cased context names and ``functions`` maps lower-cased host function
    names to their arity; ``None`` for either accepts any name (a syntax check). Raises
    ``ExpressionError`` of kind ``lexing`` or ``parsing``."""
    return _parse(expression, named_values, functions)[0]


def _parse(
    expression: str,
    named_values: frozenset[str] | None,
    functions: Mapping[str, Arity] | None,
) -> tuple[Node | None, int]:
    """The tree, and the most depth levels its parse had open at once."""
    _check_length(expression)
    tokens = lex(expression)
    parser = _Parser(expression, tokens, named_values, functions)
    try:
        return parser.parse(), parser.deepest
    except RecursionError:  # pragma: no cover - the depth limit keeps recursion shallow
        raise depth_error() from None


def _check_length(expression: str) -> None:
    if len(expression) > MAX_LENGTH // 2 and utf16_length(expression) > MAX_LENGTH:
        raise length_error()


#: how the runner wraps a condition that calls no status function, as GitHub's runner does
IMPLICIT_SUCCESS = ("success() && (", ")")


class Syntax(NamedTuple):
    """A text's syntax tree, its most depth levels open at once, and the names it uses."""

    node: Node | None
    deepest: int
    named_values: frozenset[str]
    calls: frozenset[tuple[str, int]]  # (function name, number of arguments)


@functools.lru_cache(maxsize=8192)
def syntax(expression: str) -> Syntax:
    """``parse_tree`` accepting any context and function name, and the names the tree uses
    (cached per text)."""
    # A condition the runner wrapped in ``success() && (...)`` shares the parse of its own text,
    # which was parsed when the workflow was checked: the wrapped tree is that tree under an
    # ``&&`` with ``success()``, two levels deeper. When the inner text does not parse alone, or
    # the two levels would pass the depth limit, the wrapped text is parsed as it is, so every
    # error stays the one that parse gives.
    head, tail = IMPLICIT_SUCCESS
    if expression.startswith(head) and expression.endswith(tail):
        _check_length(expression)
        try:
            inner = syntax(expression[len(head) : -len(tail)])
        except ExpressionError:
            pass
        else:
            if inner.node is not None and inner.deepest + 2 <= MAX_DEPTH:
                wrapped = Logical("&&", (Call("success", "success", ()), inner.node))
                with_success = inner.calls | {("success", 0)}
                return Syntax(wrapped, inner.deepest + 2, inner.named_values, with_success)
    node, deepest = _parse(expression, None, None)
    if node is None:
        return Syntax(None, deepest, frozenset(), frozenset())
    names: set[str] = set()
    called: set[tuple[str, int]] = set()
    for current in walk(node):
        if isinstance(current, NamedValue):
            names.add(current.name)
        elif isinstance(current, Call):
            called.add((current.name, len(current.args)))
    return Syntax(node, deepest, frozenset(names), frozenset(called))


def checked_tree(
    expression: str, named_values: frozenset[str], functions: Mapping[str, Arity]
) -> Node | None:
    """``parse_tree(expression, named_values, functions)``, parsing each text only once.

    The names only add checks to the parse, never change the tree: the text's cached syntax tree
    is returned when every name in it is known. Otherwise the text is parsed again with the names,
    so that the error is exactly the one that parse raises first (an unknown name can come before
    a syntax error)."""
    try:
        parsed = syntax(expression)
    except ExpressionError:
        pass
    else:
        if parsed.named_values <= named_values and not any(
            call_problem(name, count, functions) for name, count in parsed.calls
        ):
            return parsed.node
    return parse_tree(expression, named_values, functions)
