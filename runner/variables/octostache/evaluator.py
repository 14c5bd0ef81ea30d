"""Evaluation, mirroring ``TemplateEvaluator.cs`` and ``EvaluationContext.cs``.

A context is a binding plus a parent: ``#{each}`` bodies get a child context holding the loop
variable and ``Octopus.Template.Each.*``; a name not found in a context is looked up again, whole,
in its parent. A found value is itself evaluated as a template (in a child of the context where it
was found), which is how ``InstallPath = C:\\#{Directory}`` works. Octostache detects a variable
that refers back to itself through the symbols being resolved by every ancestor context and
throws; here that reference is left unreplaced instead (see :mod:`.limits`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from runner.variables.octostache import calc, jsonish
from runner.variables.octostache.binding import Binding, fold
from runner.variables.octostache.filters import invoke
from runner.variables.octostache.limits import (
    MAX_CACHED_TEMPLATES,
    MAX_DEPTH,
    MAX_WORK,
    SubstitutionLimitError,
)
from runner.variables.octostache.parser import parse
from runner.variables.octostache.syntax import (
    Calculation,
    Chain,
    Conditional,
    Expression,
    Identifier,
    Indexer,
    Repetition,
    Substitution,
    Symbol,
    Text,
    Token,
    format_number,
    render,
)
from runner.variables.octostache.truthiness import is_truthy

Clock = Callable[[], datetime]
#: told of each computation on a value (a filter chain on its input, a JSON field or the
#: ``#{each}`` items of a document, a calc on the values it read), as ``derived(source,
#: compute)``: ``compute(text)`` gives what the same computation makes of ``text``. The run's
#: masker applies it to each secret ``source`` holds, and masks what comes out
Derived = Callable[[str, Callable[[str], list[str]]], None]
# Work units for evaluating a #{} token or starting a loop iteration, next to one per character
# written: roughly what they cost compared with copying a character, so that MAX_WORK bounds time.
STEP_COST = 8


class _Unresolvable(Exception):
    """A self-reference (Octostache: ``RecursiveDefinitionException``) or :data:`MAX_DEPTH`."""


class Evaluation:
    """State shared by one ``substitute`` call: clock, work budget, parse cache."""

    def __init__(self, clock: Clock, budget: int, derived: Derived | None = None) -> None:
        self.clock = clock
        self.derived = derived
        self.work = 0
        self.budget = budget
        self.level = 0
        # How many contexts are resolving each symbol right now: a quick "certainly not
        # recursive" before the exact walk up the ancestor contexts.
        self.active: dict[Symbol, int] = {}
        self._templates: dict[str, tuple[Token, ...] | None] = {}

    def spend(self, units: int) -> None:
        """Count work; raise :class:`SubstitutionLimitError` past the budget."""
        self.work += units
        if self.work > self.budget:
            self.exhausted()

    def exhausted(self) -> None:
        """Raise :class:`SubstitutionLimitError`."""
        raise SubstitutionLimitError(
            f"substitution needs more than {self.budget:,} units of work "
            "(exponential or runaway expansion)",
            hint="check for variables that expand to many copies of each other",
        )

    def template(self, text: str) -> tuple[Token, ...] | None:
        """A variable value parsed as a template, cached as ``TemplateParser`` caches."""
        if text in self._templates:
            return self._templates[text]
        tokens = parse(text)
        if len(self._templates) >= MAX_CACHED_TEMPLATES:
            self._templates.clear()
        self._templates[text] = tokens
        return tokens


class Context:
    """``EvaluationContext``: a binding, a parent, and the symbols being resolved here."""

    __slots__ = ("binding", "evaluation", "parent", "resolving")

    def __init__(self, evaluation: Evaluation, binding: Binding, parent: Context | None) -> None:
        self.evaluation = evaluation
        self.binding = binding
        self.parent = parent
        # Symbols compare by steps, case-sensitively: Octostache's StepsComparer.
        self.resolving: list[Symbol] = []

    def child(self, binding: Binding | None = None) -> Context:
        """``BeginChild`` / ``new EvaluationContext(new Binding(), output, this)``."""
        return Context(self.evaluation, binding if binding is not None else Binding(), self)

    # -- resolution ------------------------------------------------------------------------

    def walk(self, symbol: Symbol, inherited: int = 0) -> Binding | None:
        """``WalkTo``: the binding a path leads to (its value evaluated), or ``None``.

        ``inherited`` counts pushes of ``symbol`` by the descendants that handed the lookup up
        here: they are not ancestors, so they cannot make it recursive."""
        active = self.evaluation.active
        count = active.get(symbol, 0)
        if count > inherited:
            ancestor: Context | None = self
            while ancestor is not None:
                if symbol in ancestor.resolving:
                    raise _Unresolvable
                ancestor = ancestor.parent
        self.resolving.append(symbol)
        active[symbol] = count + 1
        try:
            target = self._copy(symbol) if symbol.dynamic else symbol
            return self._walk(target, inherited + 1 if target is symbol else 0)
        finally:
            self.resolving.pop()
            if count:
                active[symbol] = count
            else:
                del active[symbol]

    def _copy(self, symbol: Symbol) -> Symbol:
        """``CopyExpression``: ``[#{X}]`` steps looked up now, in this context."""
        if not symbol.dynamic:
            return symbol
        steps: list[Identifier | Indexer] = []
        for step in symbol.steps:
            if isinstance(step, Indexer) and step.symbol is not None:
                found = self.walk(step.symbol)
                step = (
                    Indexer(symbol=self._copy(step.symbol))
                    if found is None
                    else Indexer(found.item)
                )
            steps.append(step)
        return Symbol(tuple(steps))

    def _walk(self, symbol: Symbol, inherited: int) -> Binding | None:
        node = self.binding
        for step in symbol.steps:
            found: Binding | None
            if isinstance(step, Identifier):
                found = node.children.get(step.key)
                if found is None:
                    found = self._custom(node, step.text)
            else:
                if step.symbol is not None or step.index is None:
                    # The lookup of the index failed in _copy: not found (no parent retry).
                    return None
                if step.index == "*" and node.indexable:
                    found = next(iter(node.indexable.values()))
                else:
                    found = node.indexable.get(fold(step.index))
                    if found is None:
                        found = self._custom(node, step.index)
            if found is None:
                # parent.WalkTo(expression): the whole (copied) path again, one context up.
                return None if self.parent is None else self.parent.walk(symbol, inherited)
            node = found
        return self._expand(node)

    def _expand(self, node: Binding) -> Binding:
        """``ParseTemplate``: a value is a template; the result is a new leaf binding. Not a
        part of a value already evaluated (:func:`literal`)."""
        if node.item is None or node.literal:
            return node
        if "#" not in node.item:
            leaf = Binding(node.item)
            leaf.made = node.made
            return leaf
        tokens = self.evaluation.template(node.item)
        if tokens is None:
            return node
        self.evaluation.spend(STEP_COST)
        out: list[str] = []
        evaluate(self.child(), tokens, out)
        leaf = Binding("".join(out))
        leaf.made = node.made
        return leaf

    def _custom(self, parent: Binding, prop: str) -> Binding | None:
        """``TryCustomParsers``: a step into a JSON value (self-references just fail)."""
        if not parent.item or not prop:
            return None
        self._read(parent)
        text: str | None = parent.item
        if "#{" in parent.item:
            try:
                text = self._expand(parent).item
            except _Unresolvable:
                return None
        found = jsonish.lookup(text or "", prop)
        if found is not None:
            literal(found)
        derived = self.evaluation.derived
        if derived is not None and text and found is not None and found.item:
            derived(text, lambda other: _items([jsonish.lookup(other, prop)]))
        return found

    def resolve(self, symbol: Symbol) -> str | None:
        """``ResolveOptional``: the value, or ``None`` when missing (or unresolvable)."""
        try:
            node = self.walk(symbol)
        except _Unresolvable:
            return None
        if node is None:
            return None
        self._read(node)
        return node.item

    def _read(self, node: Binding) -> None:
        """An ``#{each}`` item is read: ``derived`` hears what it was made of."""
        derived = self.evaluation.derived
        if node.made is not None and derived is not None:
            derived(*node.made)

    def resolve_all(self, collection: Symbol) -> list[Binding]:
        """``ResolveAll``: indexed children, else a JSON array/object, else comma-separated."""
        try:
            node = self.walk(collection)
        except _Unresolvable:
            return []
        if node is None:
            return []
        if node.indexable:
            return list(node.indexable.values())
        if node.item is None:
            return []
        items = [literal(item) for item in _each(node.item)]
        if self.evaluation.derived is not None:
            self._read(node)  # an item of an outer #{each}, itself a collection
            _mark(node.item, items)
        return items

    # -- expressions -----------------------------------------------------------------------

    def calculate(self, expression: Expression) -> str | None:
        """``Calculate``: a symbol's value or a filter chain's result; ``None`` if unknown."""
        if isinstance(expression, Symbol):
            return self.resolve(expression)
        source = value = self.resolve(expression.base)
        calls = [
            (call.name, [self.option(option) for option in call.options])
            for call in expression.calls
        ]
        clock = self.evaluation.clock
        for name, options in calls:
            value = invoke(name, value, options, clock)
        derived = self.evaluation.derived
        if derived is not None and source and value:

            def again(other: str) -> list[str]:
                result: str | None = other
                for name, options in calls:
                    result = invoke(name, result, options, clock)
                return [result] if result else []

            derived(source, again)
        return value

    def option(self, token: Token) -> str:
        """``Resolve(TemplateToken)``: a filter option evaluated to text."""
        if isinstance(token, Text):
            return token.text
        out: list[str] = []
        evaluate(self.child(), (token,), out)
        return "".join(out)


def _whole(source: str, text: str) -> Callable[[str], list[str]]:
    """A calc's result as made of one value it read: of that whole value (a PIN plus one),
    not of text around it."""
    return lambda other: [text] if other == source else []


def literal(node: Binding) -> Binding:
    """``node`` and its children marked as text, never a template: a JSON field or an
    ``#{each}`` item is cut out of a value that was evaluated already. Octostache evaluates it
    again, so a ``#{`` that the first evaluation made (``##{`` unescaped, ``\\u0023{`` decoded
    from JSON) ran as a template: a step's output or an approver's notes (escaped as ``##{``
    for this, ``contexts.step_variables``) read through ``#{each}`` or a JSON path computed any
    variable, secrets included, and printed pieces of one shorter than the masker's 4
    characters."""
    node.literal = True
    for child in node.children.values():
        literal(child)
    return node


def _each(text: str) -> list[Binding]:
    """``#{each}``'s items of a value: a JSON array or object, else its comma-separated parts."""
    items = jsonish.items(text)
    return items if items is not None else [Binding(part) for part in text.split(",")]


def _mark(text: str, items: list[Binding]) -> None:
    """Tell each item of ``text`` (an object's entry: its value) how it is made of another
    text, for when it is read: only what a template reads of a collection is told, not all of
    it (a JSON secret's region, printed by no one, stays unmasked)."""
    made: dict[str, list[str]] = {}

    def values(other: str) -> list[str]:
        if other not in made:
            made.clear()  # one text at a time: the collection's own, or a secret it holds
            made[other] = [v or "" for v in _items(_each(other), keep_empty=True)]
        return made[other]

    for index, item in enumerate(items):
        target = item.children.get("value", item)

        def nth(other: str, index: int = index) -> list[str]:
            found = values(other)
            if other != text:
                # a secret that is part of the collection ("public-host,#{List}"): its items
                # sit at other places, and which of them this item shows is not known
                return [value for value in found if value]
            return [found[index]] if index < len(found) and found[index] else []

        target.made = (text, nth)


def _items(bindings: Sequence[Binding | None], *, keep_empty: bool = False) -> list[str]:
    """The values of ``bindings`` (an object's entries: their values, not their keys, which
    are names rather than content)."""
    values = []
    for binding in bindings:
        if binding is None:
            continue
        value = binding.children["value"].item if "value" in binding.children else binding.item
        if value or keep_empty:
            values.append(value or "")
    return values


def _substitution(context: Context, token: Substitution, out: list[str]) -> None:
    expression = token.expression
    value = context.calculate(expression)
    if value is None:
        if isinstance(expression, Chain) and expression.calls[-1].name == "null":
            # The "null" filter (Octostache PR #94): write nothing, not the token.
            return
        value = render(token)
    context.evaluation.spend(len(value))
    out.append(value)


def _calculation(context: Context, token: Calculation, out: list[str]) -> None:
    evaluation = context.evaluation
    derived = evaluation.derived
    resolve = context.resolve
    read: list[str] = []
    if derived is not None:

        def resolve(symbol: Symbol) -> str | None:
            found = context.resolve(symbol)
            if found:
                read.append(found)
            return found

    value = calc.evaluate(token.expression, resolve, evaluation.spend)
    text = render(token) if value is None else format_number(value)
    if derived is not None and value is not None:
        for source in read:
            derived(source, _whole(source, text))
    evaluation.spend(len(text))
    out.append(text)


def _side(context: Context, expression: Expression) -> str | None:
    """One side of a condition: a missing symbol is "", a failed filter chain is ``None``."""
    if isinstance(expression, Symbol):
        return context.resolve(expression) or ""
    return context.calculate(expression)


def _conditional(context: Context, token: Conditional, out: list[str]) -> None:
    condition = token.condition
    left = _side(context, condition.left)
    if left is None:
        out.append(render(token))
        return
    if condition.right_text is not None:
        chosen = (left == condition.right_text) == condition.equal
    elif condition.right is not None:
        right = _side(context, condition.right)
        if right is None:
            out.append(render(token))
            return
        chosen = (left == right) == condition.equal
    else:
        chosen = is_truthy(left)
    evaluate(context, token.truthy if chosen else token.falsy, out)


def _repetition(context: Context, token: Repetition, out: list[str]) -> None:
    items = context.resolve_all(token.collection)
    last = len(items) - 1
    name = fold(token.enumerator)
    for index, item in enumerate(items):
        context.evaluation.spend(2 * STEP_COST)  # a child context and its bindings
        each = Binding()
        each.children["index"] = Binding(str(index))
        each.children["first"] = Binding("True" if index == 0 else "False")
        each.children["last"] = Binding("True" if index == last else "False")
        locals_ = Binding()
        locals_.child("Octopus").child("Template").children["each"] = each
        locals_.children[name] = item
        evaluate(context.child(locals_), token.body, out)


def evaluate(context: Context, tokens: tuple[Token, ...], out: list[str]) -> None:
    """Append the evaluation of ``tokens`` to ``out``.

    Every nested block, loop body, filter option and variable value comes through here, so
    ``level`` bounds the whole evaluation's depth (:data:`MAX_DEPTH`)."""
    evaluation = context.evaluation
    evaluation.level += 1
    try:
        if evaluation.level > MAX_DEPTH:
            raise _Unresolvable
        for token in tokens:
            if isinstance(token, Text):
                evaluation.work += len(token.text) + 1
                if evaluation.work > evaluation.budget:
                    evaluation.exhausted()
                out.append(token.text)
                continue
            evaluation.spend(STEP_COST)
            if isinstance(token, Substitution):
                _substitution(context, token, out)
            elif isinstance(token, Conditional):
                _conditional(context, token, out)
            elif isinstance(token, Calculation):
                _calculation(context, token, out)
            else:
                _repetition(context, token, out)
    finally:
        evaluation.level -= 1


def run(
    tokens: tuple[Token, ...],
    root: Binding,
    clock: Clock,
    template_length: int,
    derived: Derived | None = None,
) -> str | None:
    """Evaluate parsed ``tokens`` against ``root``; ``None`` if that cannot be done at all."""
    evaluation = Evaluation(clock, MAX_WORK + template_length, derived)
    out: list[str] = []
    try:
        evaluate(Context(evaluation, root, None), tokens, out)
    except _Unresolvable:
        # Unreachable in practice: the top level nests at most MAX_NESTING < MAX_DEPTH deep.
        return None
    return "".join(out)


__all__ = ["Clock", "Derived", "run"]
