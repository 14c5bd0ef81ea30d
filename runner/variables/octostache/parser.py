"""A packrat parser for Octostache templates, mirroring ``TemplateParser.cs`` (a Sprache grammar).

Each method mirrors one Sprache parser and returns ``(node, end)`` or ``None``. Sprache's ``Or``
backtracks fully, its ``Many`` keeps what succeeded, and ``Token()`` skips whitespace around; the
quirks that change results are kept and commented. Memoising ``#{``-tokens by position keeps the
backtracking linear (an unterminated ``#{if}`` is otherwise re-parsed once per enclosing
alternative, exponentially), and nesting deeper than :data:`MAX_NESTING` aborts the whole parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from msgspec import Struct

from runner.variables.octostache.chars import is_identifier, is_ws, trim
from runner.variables.octostache.limits import MAX_NESTING
from runner.variables.octostache.syntax import (
    Arithmetic,
    Calculation,
    Call,
    Chain,
    Condition,
    Conditional,
    Expression,
    Identifier,
    Indexer,
    Number,
    Operand,
    Repetition,
    Step,
    Substitution,
    Symbol,
    Text,
    Token,
    Variable,
)

Tokens = tuple[Token, ...]
# A fast path for runs of name characters; non-ASCII runs are re-checked character by character
# (``\w`` is wider than .NET's letters and decimal digits).
_NAME_RUN = re.compile(r"[\w\-:/~()@]+")
# In ``#{calc}`` a bare name cannot hold parentheses: they group.
_CALC_NAME_RUN = re.compile(r"[\w\-:/~@]+")
# Names of variables are mostly plain dotted paths with simple indexes: parsed without a Parser.
_PLAIN = r"[A-Za-z0-9_\-:/~()@]+"
_SIMPLE_NAME = re.compile(rf"{_PLAIN}(?:\.{_PLAIN}|\[(?:[^\[\]\s#][^\[\]#]*)?\])*")
_SIMPLE_STEP = re.compile(rf"\.?({_PLAIN})|\[([^\[\]#]*)\]")
# Simple "#{...}" tokens (no "#{" inside) parse the same wherever they appear, so they are
# shared between parses: key (text, ends the source) -> (node, nesting depth it needed).
_SIMPLE_CACHE: dict[tuple[str, bool], tuple[Substitution, int]] = {}
_SIMPLE_CACHE_SIZE = 4096
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class TooDeep(Exception):
    """Nesting beyond :data:`MAX_NESTING`; ``offset`` is where it happened."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class _Header(Struct, frozen=True):
    keyword: str
    condition: Condition
    body: int


class Parser:
    """One parse of one source string (memo tables are per source)."""

    def __init__(self, source: str) -> None:
        self.s = source
        self.n = len(source)
        self.depth = 0
        self.deepest = 0
        self._conditionals: dict[int, tuple[Conditional, int] | None] = {}
        self._repetitions: dict[int, tuple[Repetition, int] | None] = {}
        self._substitutions: dict[int, tuple[Substitution, int] | None] = {}
        # Where each token of a token list started (for check(): the parse is deterministic per
        # position, so these are the final tree's positions, plus a few from failed attempts).
        self.placed: dict[int, Token] = {}

    # -- helpers ---------------------------------------------------------------------------

    def ws(self, pos: int) -> int:
        """``Parse.WhiteSpace.Many()``."""
        s, n = self.s, self.n
        while pos < n and is_ws(s[pos]):
            pos += 1
        return pos

    def _word(self, pos: int) -> str:
        """The (lower-cased) start of a ``#{`` token, to skip alternatives that cannot match."""
        q = self.ws(pos + 2)
        return self.s[q : q + 6].lower()

    def _enter(self, pos: int) -> None:
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        if self.depth > MAX_NESTING:
            raise TooDeep(pos)

    def _keyword(self, pos: int, word: str) -> bool:
        """``Parse.IgnoreCase(word)``."""
        return self.s[pos : pos + len(word)].lower() == word

    def _opens(self, pos: int) -> bool:
        """``LDelim``: ``#{`` but not ``#{/``."""
        return self.s.startswith("#{", pos) and not self.s.startswith("#{/", pos)

    # -- names -----------------------------------------------------------------------------

    def identifier(
        self, pos: int, whitespace: bool = True, parens: bool = True
    ) -> tuple[str, int] | None:
        """``Identifier`` (names may hold whitespace) or ``IdentifierWithoutWhitespace``;
        ``parens=False`` for a bare name in ``#{calc}``."""
        s, n = self.s, self.n
        names = _NAME_RUN if parens else _CALC_NAME_RUN
        i = pos
        while i < n:
            run = names.match(s, i)
            if run is not None and (run.group().isascii() or all(map(is_identifier, run.group()))):
                i = run.end()
                if i >= n:
                    break
            c = s[i]
            if is_identifier(c) and (parens or c not in "()"):
                i += 1
                continue
            if not (whitespace and is_ws(c)):
                break
            after = i + 1
            # Except(WhiteSpace.FollowedBy("|" / "}")); Octostache's FollowedBy also fails when
            # the lookahead is the last character of the source, hence "after < n - 1".
            if after < n - 1 and s[after] in "|}":
                break
            # ExceptWhiteSpaceBeforeKeyword: whitespace, "in", whitespace ends a name ("==" and
            # "!=" need no check: "=" and "!" are not name characters).
            if after + 2 < n and s.startswith("in", after) and is_ws(s[after + 2]):
                break
            i += 1
        if i == pos:
            return None
        return trim(s[pos:i]), i

    def symbol(self, pos: int, parens: bool = True) -> tuple[Symbol, int] | None:
        """``Symbol``: an identifier, then ``.identifier`` and ``[index]`` steps."""
        first = self.identifier(pos, parens=parens)
        if first is None:
            return None
        steps: list[Step] = [Identifier(first[0])]
        p = first[1]
        s, n = self.s, self.n
        while p < n:
            if s[p] == ".":
                nxt = self.identifier(p + 1, parens=parens)
                if nxt is None:
                    break
                steps.append(Identifier(nxt[0]))
                p = nxt[1]
            elif s[p] == "[":
                index = self.indexer(p)
                if index is None:
                    break
                steps.append(index[0])
                p = index[1]
            else:
                break
        return Symbol(tuple(steps)), p

    def indexer(self, pos: int) -> tuple[Indexer, int] | None:
        """``Indexer``: ``[#{Symbol}]``, else a literal ``[text]`` (brackets may nest)."""
        self._enter(pos)
        try:
            q = self.ws(pos + 1)
            sub = self.substitution(q)
            if sub is not None and isinstance(sub[0].expression, Symbol):
                q = self.ws(sub[1])
                if q < self.n and self.s[q] == "]":
                    return Indexer(symbol=sub[0].expression), q + 1
            literal = self._string_index(pos)
            if literal is None:
                return None
            return Indexer(index=literal[0]), literal[1]
        finally:
            self.depth -= 1

    def _string_index(self, pos: int) -> tuple[str, int] | None:
        """``StringIndexer``: leading whitespace dropped, ``[a[0].b]`` kept as ``a[0].b``."""
        s, n = self.s, self.n
        q = self.ws(pos + 1)
        parts: list[str] = []
        while q < n and s[q] != "]":
            if s[q] == "[":
                self._enter(q)
                try:
                    inner = self._string_index(q)
                finally:
                    self.depth -= 1
                if inner is None:
                    break
                parts.append("[" + inner[0] + "]")
                q = inner[1]
            else:
                end = q
                while end < n and s[end] not in "[]":
                    end += 1
                parts.append(s[q:end])
                q = end
        if q < n and s[q] == "]":
            return "".join(parts), q + 1
        return None

    # -- expressions -----------------------------------------------------------------------

    def expression(self, pos: int) -> tuple[Expression, int] | None:
        """``FilterChain.Or(Symbol)``, with the symbol parsed once instead of twice."""
        symbol = self.symbol(pos)
        q = self.ws(symbol[1]) if symbol is not None else pos
        calls: list[Call] = []
        while q < self.n and self.s[q] == "|":
            call = self.call(q + 1)
            if call is None:
                break
            calls.append(call[0])
            q = call[1]
        if calls:
            base = symbol[0] if symbol is not None else Symbol(())
            return Chain(base, tuple(calls)), q
        return symbol

    def call(self, pos: int) -> tuple[Call, int] | None:
        """One ``| Name option...``: the name has no whitespace, options follow."""
        start = self.ws(pos)
        name = self.identifier(start, whitespace=False)
        if name is None:
            return None
        q = self.ws(name[1])
        options: list[Token] = []
        while True:
            option = self.option(q)
            if option is None:
                break
            options.append(option[0])
            q = option[1]
        return Call(name[0], tuple(options), start), q

    def option(self, pos: int) -> tuple[Token, int] | None:
        """A filter option: a ``#{}`` token (whitespace before it not skipped, as in Octostache),
        a bare word, ``"quoted"`` (no ``#`` inside) or ``\\"escaped quoted\\"``."""
        if self._opens(pos):
            token = self._block(pos) or self.substitution(pos)
            if token is not None:
                return token
        q = self.ws(pos)
        word = self.identifier(q, whitespace=False)
        if word is not None:
            return Text(word[0]), self.ws(word[1])
        quoted = self.quoted(pos)
        if quoted is not None:
            return Text(quoted[0]), quoted[1]
        return None

    def quoted(self, pos: int) -> tuple[str, int] | None:
        """``QuotedText.Or(EscapedQuotedText)``, each wrapped in ``Token()``."""
        s = self.s
        q = self.ws(pos)
        if s.startswith('"', q):
            end = q + 1
            while end < self.n and s[end] not in '"#':
                end += 1
            if end < self.n and s[end] == '"':
                return s[q + 1 : end], self.ws(end + 1)
            return None
        if s.startswith('\\"', q):
            end = s.find('\\"', q + 2)
            if end >= 0:
                return s[q + 2 : end], self.ws(end + 2)
        return None

    # -- tokens ----------------------------------------------------------------------------

    def substitution(self, pos: int) -> tuple[Substitution, int] | None:
        """``#{ expression }``."""
        if not self._opens(pos):
            return None
        if pos in self._substitutions:
            return self._substitutions[pos]
        close = self.s.find("}", pos)
        key = (self.s[pos : close + 1], close == self.n - 1)
        simple = close > 0 and "#{" not in self.s[pos + 2 : close]
        cached = _SIMPLE_CACHE.get(key) if simple else None
        if cached is not None:
            if self.depth + cached[1] > MAX_NESTING:
                raise TooDeep(pos)
            return cached[0], close + 1
        base, self.deepest = self.depth, self.depth
        self._enter(pos)
        try:
            result: tuple[Substitution, int] | None = None
            q = self.ws(pos + 2)
            expression = self.expression(q)
            if expression is not None:
                q = self.ws(expression[1])
                if q < self.n and self.s[q] == "}":
                    result = Substitution(expression[0]), q + 1
        finally:
            self.depth -= 1
        self._substitutions[pos] = result
        if simple and result is not None and result[1] == close + 1:
            if len(_SIMPLE_CACHE) >= _SIMPLE_CACHE_SIZE:
                _SIMPLE_CACHE.clear()
            _SIMPLE_CACHE[key] = result[0], self.deepest - base
        return result

    def condition(self, pos: int) -> tuple[Condition, int] | None:
        """``TokenMatch.Or(StringMatch).Or(TruthyMatch)``, plus ``"text" == expression``."""
        q = self.ws(pos)
        quoted = self.quoted(q)
        if quoted is not None:
            op = self._operator(quoted[1])
            if op is None:
                return None
            right = self.expression(self.ws(op[1]))
            if right is None:
                return None
            return Condition(right[0], op[0], right_text=quoted[0]), self.ws(right[1])
        left = self.expression(q)
        if left is None:
            return None
        q = self.ws(left[1])
        op = self._operator(q)
        if op is not None:
            r = self.ws(op[1])
            text = self.quoted(r)
            if text is not None:
                return Condition(left[0], op[0], right_text=text[0]), text[1]
            right = self.expression(r)
            if right is not None:
                return Condition(left[0], op[0], right=right[0]), self.ws(right[1])
        return Condition(left[0]), q

    def _operator(self, pos: int) -> tuple[bool, int] | None:
        if self.s.startswith("==", pos):
            return True, pos + 2
        if self.s.startswith("!=", pos):
            return False, pos + 2
        return None

    def _header(self, pos: int, keywords: tuple[str, ...]) -> tuple[str, int] | None:
        """``#{`` whitespace? keyword whitespace+ (keyword matched case-insensitively)."""
        if not self._opens(pos):
            return None
        q = self.ws(pos + 2)
        for keyword in keywords:
            if self._keyword(q, keyword):
                after = q + len(keyword)
                if after < self.n and is_ws(self.s[after]):
                    return keyword, self.ws(after)
                return None
        return None

    def conditional_header(self, pos: int) -> _Header | None:
        """``#{if condition}`` / ``#{unless condition}`` up to the body."""
        head = self._header(pos, ("if", "unless"))
        if head is None:
            return None
        condition = self.condition(head[1])
        if condition is None:
            return None
        q = self.ws(condition[1])
        if q < self.n and self.s[q] == "}":
            return _Header(head[0], condition[0], q + 1)
        return None

    def at_else(self, pos: int) -> bool:
        """Where an ``#{if}`` branch stops: ``#{else}`` or ``#{elseif ...}``."""
        s = self.s
        if s.startswith("#{else}", pos):
            return True
        return s.startswith("#{elseif", pos) and pos + 8 < self.n and is_ws(s[pos + 8])

    def conditional(self, pos: int) -> tuple[Conditional, int] | None:
        """``#{if c}...[#{elseif c}...]*[#{else}...]#{/if}`` (``#{unless}`` likewise).

        ``#{elseif}`` (Octostache PR #132) is desugared into a nested conditional in the falsy
        branch, so it renders back as nested ``#{if}``s, as in Octostache."""
        if not self._opens(pos):
            return None
        if pos in self._conditionals:
            return self._conditionals[pos]
        self._enter(pos)
        try:
            result = self._conditional(pos)
        finally:
            self.depth -= 1
        self._conditionals[pos] = result
        return result

    def _conditional(self, pos: int) -> tuple[Conditional, int] | None:
        header = self.conditional_header(pos)
        if header is None:
            return None
        truthy, q = self.template(header.body, stop_at_else=True)
        clauses: list[tuple[Condition, Tokens]] = []
        while self.s.startswith("#{elseif", q) and self.at_else(q):
            test = self.condition(self.ws(q + 8))
            if test is None:
                return None
            r = self.ws(test[1])
            if not (r < self.n and self.s[r] == "}"):
                return None
            body, q = self.template(r + 1, stop_at_else=True)
            clauses.append((test[0], body))
        falsy: Tokens = ()
        if self.s.startswith("#{else}", q):
            falsy, q = self.template(q + 7, stop_at_else=False)
        close = "#{/" + header.keyword + "}"
        if not self.s.startswith(close, q):
            return None
        for condition, body in reversed(clauses):
            falsy = (Conditional(condition, body, falsy),)
        if header.keyword == "if":
            return Conditional(header.condition, truthy, falsy), q + len(close)
        return Conditional(header.condition, falsy, truthy), q + len(close)

    def repetition_header(self, pos: int) -> tuple[str, Symbol, int] | None:
        """``#{each name in Collection}`` up to the body."""
        head = self._header(pos, ("each",))
        if head is None:
            return None
        name = self.identifier(head[1])
        if name is None:
            return None
        q = self.ws(name[1])
        if not self._keyword(q, "in"):
            return None
        collection = self.symbol(self.ws(q + 2))
        if collection is None:
            return None
        q = self.ws(collection[1])
        if q < self.n and self.s[q] == "}":
            return name[0], collection[0], q + 1
        return None

    def repetition(self, pos: int) -> tuple[Repetition, int] | None:
        """``#{each a in Collection}body#{/each}``."""
        if not self._opens(pos):
            return None
        if pos in self._repetitions:
            return self._repetitions[pos]
        self._enter(pos)
        try:
            result: tuple[Repetition, int] | None = None
            header = self.repetition_header(pos)
            if header is not None:
                body, q = self.template(header[2], stop_at_else=False)
                if self.s.startswith("#{/each}", q):
                    result = Repetition(header[0], header[1], body), q + 8
        finally:
            self.depth -= 1
        self._repetitions[pos] = result
        return result

    def calculation(self, pos: int) -> tuple[Calculation, int] | None:
        """``#{calc expression}``: ``calc`` in any case, whitespace, then arithmetic."""
        head = self._header(pos, ("calc",))
        if head is None:
            return None
        self._enter(pos)
        try:
            expression = self.sum(head[1])
        finally:
            self.depth -= 1
        if expression is None:
            return None
        q = self.ws(expression[1])
        if q < self.n and self.s[q] == "}":
            return Calculation(expression[0]), q + 1
        return None

    def sum(self, pos: int) -> tuple[Operand, int] | None:
        """``term (("+" | "-") term)*``."""
        return self._level(pos, "+-", self.term)

    def term(self, pos: int) -> tuple[Operand, int] | None:
        """``factor (("*" | "/" | "%") factor)*``."""
        return self._level(pos, "*/%", self.factor)

    def _level(
        self, pos: int, operators: str, operand: Callable[[int], tuple[Operand, int] | None]
    ) -> tuple[Operand, int] | None:
        first = operand(self.ws(pos))
        if first is None:
            return None
        rest: list[tuple[str, Operand]] = []
        q = first[1]
        while True:
            r = self.ws(q)
            if not (r < self.n and self.s[r] in operators):
                break
            right = operand(self.ws(r + 1))
            if right is None:
                return None
            rest.append((self.s[r], right[0]))
            q = right[1]
        if not rest:
            return first
        return Arithmetic(first[0], tuple(rest)), q

    def factor(self, pos: int) -> tuple[Operand, int] | None:
        """``(sum)``, a number, ``{Symbol}`` or a bare name (a number wins: ``2A`` fails)."""
        s = self.s
        if pos >= self.n:
            return None
        if s[pos] == "(":
            self._enter(pos)
            try:
                inner = self.sum(pos + 1)
            finally:
                self.depth -= 1
            if inner is None:
                return None
            q = self.ws(inner[1])
            return (inner[0], q + 1) if q < self.n and s[q] == ")" else None
        number = _NUMBER.match(s, pos)
        if number is not None:
            return Number(float(number.group())), number.end()
        if s[pos] == "{":
            symbol = self.symbol(self.ws(pos + 1))
            if symbol is None:
                return None
            q = self.ws(symbol[1])
            return (Variable(symbol[0]), q + 1) if q < self.n and s[q] == "}" else None
        bare = self.symbol(pos, parens=False)
        return (Variable(bare[0]), bare[1]) if bare is not None else None

    def text(self, pos: int) -> tuple[Text, int] | None:
        """``Text``: ``##{`` is a literal ``#{``; ``##`` before ``#{`` is one ``#``."""
        s, n = self.s, self.n
        parts: list[str] = []
        i = pos
        while i < n:
            if s[i] != "#":
                end = s.find("#", i)
                end = n if end < 0 else end
                parts.append(s[i:end])
                i = end
            elif i == n - 1:
                parts.append("#")
                i += 1
            elif s.startswith("##", i) and i + 2 < n - 2 and s.startswith("#{", i + 2):
                # FollowedBy("#{") with Octostache's off-by-one lookahead bound.
                parts.append("#")
                i += 2
            elif s.startswith("##{", i):
                parts.append("#{")
                i += 3
            elif s[i + 1] != "{":
                parts.append(s[i : i + 2])
                i += 2
            else:
                break
        if i == pos:
            return None
        return Text("".join(parts)), i

    def token(self, pos: int) -> tuple[Token, int] | None:
        """``Conditional.Or(Repetition).Or(Substitution).Or(Text)``."""
        if self.s.startswith("#{", pos):
            return self._block(pos) or self.substitution(pos)
        return self.text(pos)

    def _block(self, pos: int) -> tuple[Token, int] | None:
        """``Conditional.Or(Repetition).Or(Calculation)``, tried only when the keyword is there
        (a ``#{calc ...}`` that is not arithmetic is then read as a substitution)."""
        word = self._word(pos)
        if word.startswith(("if", "unless")):
            return self.conditional(pos)
        if word.startswith("each"):
            return self.repetition(pos)
        if word.startswith("calc"):
            return self.calculation(pos)
        return None

    def template(self, pos: int, stop_at_else: bool) -> tuple[Tokens, int]:
        """``Token.Many()`` (``IfTemplate`` stops before ``#{else}``/``#{elseif}``)."""
        tokens: list[Token] = []
        while pos < self.n:
            if stop_at_else and self.at_else(pos):
                break
            token = self.token(pos)
            if token is None:
                break
            tokens.append(token[0])
            self.placed[pos] = token[0]
            pos = token[1]
        return tuple(tokens), pos


def parse(source: str) -> Tokens | None:
    """The tokens of ``source``, or ``None`` when it does not parse (Octostache then echoes it)."""
    parser = Parser(source)
    try:
        tokens, end = parser.template(0, stop_at_else=False)
    except TooDeep:
        return None
    return tokens if end == len(source) else None


def parse_name(name: str) -> Symbol | None:
    """A variable name as a path (``PropertyListBinder``: a prefix parse, not the whole name)."""
    if _SIMPLE_NAME.fullmatch(name):
        steps: list[Step] = []
        for m in _SIMPLE_STEP.finditer(name):
            steps.append(Identifier(m.group(1)) if m.group(1) is not None else Indexer(m.group(2)))
        return Symbol(tuple(steps))
    try:
        result = Parser(name).symbol(0)
    except TooDeep:
        return None
    return result[0] if result is not None else None
