"""Tokens of the ``${{ }}`` expression language.

Mirrors the lexer of actions/languageservices (``expressions/src/lexer.ts``): the whole expression
is tokenised before parsing, so a token that cannot be read at all is a *lexing* error even when a
parse error would come earlier. Positions are absolute (counted in UTF-16 code units, 1-based, as
GitHub's runner reports them: ``Located at position 43 within expression``), not line/column.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from runner.errors import ExpressionError
from runner.expressions.values import JS_WHITESPACE, parse_number

#: ``MAX_EXPRESSION_LENGTH`` in languageservices, ``ExpressionConstants.MaxLength`` in the runner.
MAX_LENGTH = 21000


class TokenType(enum.Enum):
    """Kinds of token, named as in languageservices' ``TokenType``."""

    LEFT_PAREN = "("
    RIGHT_PAREN = ")"
    LEFT_BRACKET = "["
    RIGHT_BRACKET = "]"
    COMMA = ","
    DOT = "."
    BANG = "!"
    BANG_EQUAL = "!="
    EQUAL_EQUAL = "=="
    GREATER = ">"
    GREATER_EQUAL = ">="
    LESS = "<"
    LESS_EQUAL = "<="
    AND = "&&"
    OR = "||"
    STAR = "*"
    NUMBER = "number"
    STRING = "string"
    IDENTIFIER = "identifier"
    TRUE = "true"
    FALSE = "false"
    NULL = "null"
    EOF = "eof"


class Token(NamedTuple):
    """One token: its kind, the text it was read from, its parsed value and its start offset."""

    type: TokenType
    lexeme: str
    value: object
    offset: int

    def display(self) -> str:
        """The token as GitHub's error messages show it (``tokenString`` upstream)."""
        if self.type is TokenType.EOF:
            return "EOF"
        if self.type is TokenType.STRING:
            return str(self.value)
        return self.lexeme


def position(expression: str, offset: int) -> int:
    """The 1-based position of ``offset``, counted in UTF-16 code units like C# and JavaScript."""
    head = expression[:offset]
    if head.isascii():
        return offset + 1
    return offset + 1 + sum(1 for ch in head if ord(ch) > 0xFFFF)


def utf16_length(expression: str) -> int:
    """Length in UTF-16 code units: the unit GitHub's length limit is measured in."""
    if expression.isascii():
        return len(expression)
    return len(expression) + sum(1 for ch in expression if ord(ch) > 0xFFFF)


def symbol_error(expression: str, symbol: str, offset: int, *, kind: str) -> ExpressionError:
    """``Unexpected symbol: 'x'. Located at position N within expression: ...``."""
    return ExpressionError(
        f"Unexpected symbol: '{symbol}'. Located at position {position(expression, offset)} "
        f"within expression: {expression}",
        kind=kind,
    )


# Characters that end an identifier or a number (``isBoundary`` upstream; ``\s`` in JavaScript).
_BOUNDARY = frozenset("([)],.!><=&|")
_SKIPPED = frozenset(" \t\r\n")  # the only whitespace the upstream lexer skips between tokens
_PUNCTUATION = {
    "(": TokenType.LEFT_PAREN,
    ")": TokenType.RIGHT_PAREN,
    "[": TokenType.LEFT_BRACKET,
    "]": TokenType.RIGHT_BRACKET,
    ",": TokenType.COMMA,
    "*": TokenType.STAR,
}
_KEYWORDS = {
    "true": (TokenType.TRUE, True),
    "false": (TokenType.FALSE, False),
    "null": (TokenType.NULL, None),
    "NaN": (TokenType.NUMBER, float("nan")),
    "Infinity": (TokenType.NUMBER, float("inf")),
}
_BY_TEXT = {kind.value: kind for kind in TokenType}  # faster than calling TokenType(text)
# After these a "." is the dereference operator; anywhere else it starts a number such as ".5".
_DOT_FOLLOWS = frozenset(
    {TokenType.IDENTIFIER, TokenType.RIGHT_BRACKET, TokenType.RIGHT_PAREN, TokenType.STAR}
)


# The next boundary after a word, or after a number (whose "." is part of it).
_WORD_END = re.compile("[" + re.escape("".join(sorted(_BOUNDARY | JS_WHITESPACE))) + "]")
_NUMBER_END = re.compile(
    "[" + re.escape("".join(sorted((_BOUNDARY - {"."}) | JS_WHITESPACE))) + "]"
)
_IDENTIFIER = re.compile("[A-Za-z_][A-Za-z0-9_-]*")


def is_legal_identifier(text: str) -> bool:
    """``[A-Za-z_][A-Za-z0-9_-]*``: the names of contexts, properties and functions."""
    return _IDENTIFIER.fullmatch(text) is not None


def lex(expression: str) -> list[Token]:
    """Split ``expression`` into tokens ending with an EOF token; raises a ``lexing`` error."""
    tokens: list[Token] = []
    n = len(expression)
    i = 0

    def previous() -> TokenType:
        return tokens[-1].type if tokens else TokenType.EOF

    def scan_word(start: int, allow_dot: bool) -> int:
        found = (_NUMBER_END if allow_dot else _WORD_END).search(expression, start)
        return n if found is None else found.start()

    while i < n:
        ch = expression[i]
        start = i
        if ch in _SKIPPED:
            i += 1
            continue
        punctuation = _PUNCTUATION.get(ch)
        if punctuation is not None:
            tokens.append(Token(punctuation, ch, None, start))
            i += 1
            continue
        if ch == "." and previous() in _DOT_FOLLOWS:
            tokens.append(Token(TokenType.DOT, ch, None, start))
            i += 1
            continue
        if ch in "!<>":
            if i + 1 < n and expression[i + 1] == "=":
                tokens.append(Token(_BY_TEXT[ch + "="], ch + "=", None, start))
                i += 2
            else:
                tokens.append(Token(_BY_TEXT[ch], ch, None, start))
                i += 1
            continue
        if ch in "=&|":
            if i + 1 < n and expression[i + 1] == ch:
                tokens.append(Token(_BY_TEXT[ch * 2], ch * 2, None, start))
                i += 2
                continue
            # A lone "=", "&" or "|": read up to the next boundary and report it (as upstream).
            i = scan_word(i + 1, allow_dot=False)
            raise symbol_error(expression, expression[start:i], start, kind="lexing")
        if ch == "'":
            i = _scan_string(expression, start)
            raw = expression[start + 1 : i - 1]
            tokens.append(
                Token(TokenType.STRING, expression[start:i], raw.replace("''", "'"), start)
            )
            continue
        if ch in "+-." or "0" <= ch <= "9":
            i = scan_word(i + 1, allow_dot=True)
            lexeme = expression[start:i]
            number = parse_number(lexeme)
            if number != number:  # NaN: not a number literal
                raise symbol_error(expression, lexeme, start, kind="lexing")
            tokens.append(Token(TokenType.NUMBER, lexeme, number, start))
            continue
        i = scan_word(i + 1, allow_dot=False)
        lexeme = expression[start:i]
        keyword = _KEYWORDS.get(lexeme) if previous() is not TokenType.DOT else None
        if keyword is not None:
            tokens.append(Token(keyword[0], lexeme, keyword[1], start))
            continue
        if not is_legal_identifier(lexeme):
            raise symbol_error(expression, lexeme, start, kind="lexing")
        tokens.append(Token(TokenType.IDENTIFIER, lexeme, None, start))

    tokens.append(Token(TokenType.EOF, "", None, n))
    return tokens


def _scan_string(expression: str, start: int) -> int:
    """The offset just past the closing quote of the string starting at ``start``."""
    n = len(expression)
    i = start + 1
    while i < n:
        if expression[i] == "'":
            if i + 1 < n and expression[i + 1] == "'":
                i += 2  # '' is an escaped quote
                continue
            return i + 1
        i += 1
    raise symbol_error(expression, expression[start:], start, kind="lexing")
