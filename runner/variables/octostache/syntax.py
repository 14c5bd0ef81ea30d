"""The syntax tree of a template, and its normalised text.

The node types mirror Octostache's ``Templates/Tokens`` classes, and :func:`render` mirrors their
``ToString()`` overrides: an unresolved ``#{...}`` is echoed back in that normalised form (single
spaces around ``|``, filter options re-quoted, ``#{`` in literal text re-escaped as ``##{``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Identifier:
    """One dotted part of a name, e.g. ``Action`` in ``Octopus.Action``."""

    text: str
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Names match case-insensitively (OrdinalIgnoreCase); fold once, not on every lookup.
        object.__setattr__(self, "key", self.text.lower())


@dataclass(frozen=True, slots=True)
class Indexer:
    """``[Name]`` (``index``) or ``[#{Other.Variable}]`` (``symbol``)."""

    index: str | None = None
    symbol: Symbol | None = None


Step = Identifier | Indexer


@dataclass(frozen=True, slots=True)
class Symbol:
    """A variable path such as ``Octopus.Action[Step A].Name``; empty before a leading ``|``.

    ``dynamic`` tells whether a step is ``[#{...}]``, which must be looked up first."""

    steps: tuple[Step, ...]
    dynamic: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        dynamic = any(isinstance(s, Indexer) and s.symbol is not None for s in self.steps)
        object.__setattr__(self, "dynamic", dynamic)


@dataclass(frozen=True, slots=True)
class Call:
    """One ``| Filter option option`` of a filter chain; ``offset`` is where the name starts."""

    name: str
    options: tuple[Token, ...]
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Chain:
    """``base | F1 ... | F2 ...``: Octostache's nested ``FunctionCallExpression``, flattened."""

    base: Symbol
    calls: tuple[Call, ...]


Expression = Symbol | Chain


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text, already unescaped (``##{`` became ``#{``)."""

    text: str


@dataclass(frozen=True, slots=True)
class Substitution:
    """``#{expression}``."""

    expression: Expression


@dataclass(frozen=True, slots=True)
class Condition:
    """An ``#{if}`` test: truthiness of ``left``, or ``left ==``/``!=`` text or an expression."""

    left: Expression
    equal: bool = True
    right_text: str | None = None
    right: Expression | None = None


@dataclass(frozen=True, slots=True)
class Conditional:
    """``#{if}``/``#{unless}``; ``unless`` and ``elseif`` are desugared as Octostache does."""

    condition: Condition
    truthy: tuple[Token, ...]
    falsy: tuple[Token, ...]


@dataclass(frozen=True, slots=True)
class Repetition:
    """``#{each enumerator in collection}body#{/each}``."""

    enumerator: str
    collection: Symbol
    body: tuple[Token, ...]


Token = Text | Substitution | Conditional | Repetition


def render_symbol(symbol: Symbol) -> str:
    """``SymbolExpression.ToString()``: identifiers joined by dots, indexers appended."""
    parts: list[str] = []
    join = ""
    for step in symbol.steps:
        if isinstance(step, Identifier):
            parts.append(join + step.text)
        elif step.symbol is not None:
            parts.append("[#{" + render_symbol(step.symbol) + "}]")
        else:
            parts.append("[" + (step.index or "") + "]")
        join = "."
    return "".join(parts)


def render_expression(expression: Expression) -> str:
    """``FunctionCallExpression.ToString()``: text options are wrapped in double quotes."""
    if isinstance(expression, Symbol):
        return render_symbol(expression)
    text = render_symbol(expression.base)
    for call in expression.calls:
        options = " ".join(
            f'"{render(option)}"' if isinstance(option, Text) else render(option)
            for option in call.options
        )
        text = f"{text} | {call.name}" + (" " + options if options else "")
    return text


def _render_condition(condition: Condition) -> str:
    text = render_expression(condition.left)
    op = "==" if condition.equal else "!="
    if condition.right_text is not None:
        return f'{text} {op} "{condition.right_text}" '
    if condition.right is not None:
        return f"{text} {op} {render_expression(condition.right)} "
    return text


def render_all(tokens: tuple[Token, ...]) -> str:
    """The normalised text of a token sequence."""
    return "".join(render(token) for token in tokens)


def render(token: Token) -> str:
    """The normalised text of one token, as Octostache echoes it when it cannot be evaluated."""
    if isinstance(token, Text):
        return token.text.replace("#{", "##{")
    if isinstance(token, Substitution):
        return "#{" + render_expression(token.expression) + "}"
    if isinstance(token, Conditional):
        # ConditionalToken.ToString() always says "if" (an unless has its branches swapped).
        falsy = "#{else}" + render_all(token.falsy) if token.falsy else ""
        head = "#{if " + _render_condition(token.condition) + "}"
        return head + render_all(token.truthy) + falsy + "#{/if}"
    body = render_all(token.body)
    head = f"#{{each {token.enumerator} in {render_symbol(token.collection)}}}"
    return head + body + "#{/each}"
