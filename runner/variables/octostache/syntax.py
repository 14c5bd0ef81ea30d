"""The syntax tree of a template, and its normalised text.

The node types mirror Octostache's ``Templates/Tokens`` classes, and :func:`render` mirrors their
``ToString()`` overrides: an unresolved ``#{...}`` is echoed back in that normalised form (single
spaces around ``|``, filter options re-quoted, ``#{`` in literal text re-escaped as ``##{``).
"""

from __future__ import annotations

from msgspec import Struct, structs


class Identifier(Struct, frozen=True):
    """One dotted part of a name, e.g. ``Action`` in ``Octopus.Action``. ``key`` is set from
    ``text``, whatever is passed."""

    text: str
    key: str = ""

    def __post_init__(self) -> None:
        # Names match case-insensitively (OrdinalIgnoreCase); fold once, not on every lookup.
        structs.force_setattr(self, "key", self.text.lower())


class Indexer(Struct, frozen=True):
    """``[Name]`` (``index``) or ``[#{Other.Variable}]`` (``symbol``)."""

    index: str | None = None
    symbol: Symbol | None = None


Step = Identifier | Indexer


class Symbol(Struct, frozen=True, cache_hash=True):
    """A variable path such as ``Octopus.Action[Step A].Name``; empty before a leading ``|``.

    ``dynamic`` tells whether a step is ``[#{...}]``, which must be looked up first; it is set
    from ``steps``, whatever is passed. The hash is kept (``cache_hash``): an expansion looks its
    symbols up in dicts (the recursion guard) at every level, and hashing the steps each time
    was a quarter of a deep expansion's time."""

    steps: tuple[Step, ...]
    dynamic: bool = False

    def __post_init__(self) -> None:
        dynamic = any(isinstance(s, Indexer) and s.symbol is not None for s in self.steps)
        structs.force_setattr(self, "dynamic", dynamic)


class Call(Struct, frozen=True):
    """One ``| Filter option option`` of a filter chain; ``offset`` is where the name starts."""

    name: str
    options: tuple[Token, ...]
    offset: int = 0


class Chain(Struct, frozen=True):
    """``base | F1 ... | F2 ...``: Octostache's nested ``FunctionCallExpression``, flattened."""

    base: Symbol
    calls: tuple[Call, ...]


Expression = Symbol | Chain


class Text(Struct, frozen=True):
    """Literal text, already unescaped (``##{`` became ``#{``)."""

    text: str


class Substitution(Struct, frozen=True):
    """``#{expression}``."""

    expression: Expression


class Condition(Struct, frozen=True):
    """An ``#{if}`` test: truthiness of ``left``, or ``left ==``/``!=`` text or an expression."""

    left: Expression
    equal: bool = True
    right_text: str | None = None
    right: Expression | None = None


class Conditional(Struct, frozen=True):
    """``#{if}``/``#{unless}``; ``unless`` and ``elseif`` are desugared as Octostache does."""

    condition: Condition
    truthy: tuple[Token, ...]
    falsy: tuple[Token, ...]


class Repetition(Struct, frozen=True):
    """``#{each enumerator in collection}body#{/each}``."""

    enumerator: str
    collection: Symbol
    body: tuple[Token, ...]


class Number(Struct, frozen=True):
    """A constant in ``#{calc}``: digits, optionally ``.`` and more digits."""

    value: float


class Variable(Struct, frozen=True):
    """A variable in ``#{calc}``: ``{Name}``, or a bare name (no parentheses)."""

    symbol: Symbol


class Arithmetic(Struct, frozen=True):
    """Operands of one precedence level, left to right: ``first (op operand)*``.

    A flat list instead of Octostache's binary ``CalculationOperation`` tree, so a long sum does
    not nest (and recurse) once per operator; parentheses still nest, up to ``MAX_NESTING``."""

    first: Operand
    rest: tuple[tuple[str, Operand], ...]

    @property
    def additive(self) -> bool:
        return self.rest[0][0] in "+-"


Operand = Number | Variable | Arithmetic


class Calculation(Struct, frozen=True):
    """``#{calc expression}`` (Octostache's ``CalculationToken``)."""

    expression: Operand


Token = Text | Substitution | Conditional | Repetition | Calculation


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
    if isinstance(token, Calculation):
        return "#{" + render_operand(token.expression) + "}"
    if isinstance(token, Conditional):
        # ConditionalToken.ToString() always says "if" (an unless has its branches swapped).
        falsy = "#{else}" + render_all(token.falsy) if token.falsy else ""
        head = "#{if " + _render_condition(token.condition) + "}"
        return head + render_all(token.truthy) + falsy + "#{/if}"
    body = render_all(token.body)
    head = f"#{{each {token.enumerator} in {render_symbol(token.collection)}}}"
    return head + body + "#{/each}"


def format_number(value: float) -> str:
    """``double.ToString()`` of .NET Core: the shortest text that reads back as ``value``, in
    scientific notation (``1E+15``, ``1E-05``) outside ``1e-5 < |value| < 1e15``."""
    if value == 0:
        return "0"  # .NET Core writes -0 as "-0"; a deployment has no use for it
    sign = "-" if value < 0 else ""
    digits, exponent = _shortest(abs(value))
    if -5 < exponent < 15:
        if exponent < 0:
            return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
        whole = digits[: exponent + 1].ljust(exponent + 1, "0")
        fraction = digits[exponent + 1 :]
        return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}E{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def _shortest(value: float) -> tuple[str, int]:
    """The significant digits of ``repr(value)`` (shortest round trip) and the power of ten of
    the first one."""
    mantissa, _, power = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = (whole + fraction).lstrip("0")
    if whole.strip("0"):
        exponent = int(power or 0) + len(whole) - 1
    else:  # 0.000ddd
        exponent = int(power or 0) - (len(fraction) - len(fraction.lstrip("0"))) - 1
    return raw.rstrip("0") or "0", exponent


_LEVEL = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2}


def render_operand(operand: Operand) -> str:
    """``CalculationOperation.ToString()``: a variable by its name (no braces, as Octostache
    does), constants as .NET writes them; parentheses are kept where they group, where
    Octostache drops them (its echo of ``C*(2+2)`` reads ``C*2+2``)."""
    if isinstance(operand, Number):
        return format_number(operand.value)
    if isinstance(operand, Variable):
        return render_symbol(operand.symbol)
    level = _LEVEL[operand.rest[0][0]]
    parts = [_grouped(operand.first, level)]
    for op, right in operand.rest:
        parts.append(op + _grouped(right, level))
    return "".join(parts)


def _grouped(operand: Operand, level: int) -> str:
    text = render_operand(operand)
    if isinstance(operand, Arithmetic) and _LEVEL[operand.rest[0][0]] <= level:
        return f"({text})"
    return text
