"""Evaluation: a parsed tree is compiled once into nested Python closures, then run per call.

Semantics follow the evaluators of actions/languageservices (``evaluator.ts``) and actions/runner
(``Sdk/Operators/*.cs``): ``&&``/``||`` short-circuit and return an operand, ``case`` evaluates
only the branches it needs, the other functions receive evaluated arguments.

Memory is accounted as the runner does (``EvaluationMemory.cs``): every node's result is charged
at the node's depth in the tree (a string 26 + 2 bytes per character, anything else 24, a filter
8 per item), and a primitive result releases what its sub-expressions held. Holding more than
1 MB at once fails with "The maximum allowed memory size was exceeded".

That ledger costs more than the evaluation itself, so each expression is compiled twice. The fast
evaluator starts from a static upper bound (every node charged, nothing released) and only adds
the sizes known at run time (strings, filters). Only if that bound passes 1 MB is the expression
evaluated again with the precise ledger (host functions are then called a second time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

from runner.errors import ExpressionError, RunnerError
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
)
from runner.expressions.functions import (
    BUILTINS,
    MAX_MEMORY,
    MIN_OBJECT_SIZE,
    POINTER_SIZE,
    MemoryExceeded,
    evaluation_error,
    string_size,
)
from runner.expressions.values import (
    ARRAY,
    MISSING,
    OBJECT,
    STRING,
    FilteredArray,
    equals,
    get_property,
    greater_than,
    index_number,
    is_truthy,
    kind_of,
    less_than,
    to_string,
)


class State:
    """What one evaluation needs: the contexts, the host functions and the memory ledger."""

    __slots__ = ("contexts", "depths", "functions", "top", "total")

    def __init__(
        self,
        contexts: Mapping[str, object],
        functions: Mapping[str, Callable[..., object]],
        levels: int,
        total: int = 0,
    ) -> None:
        self.contexts = contexts
        self.functions = functions
        self.depths = [0] * levels  # bytes held by results at each tree depth (precise mode)
        self.top = -1  # deepest depth holding anything
        self.total = total


Evaluator = Callable[[State], object]


class _NeedPrecise(Exception):
    """The fast evaluator's upper bound passed the limit: evaluate with the precise ledger."""


def _grow(st: State, extra: int) -> None:
    # Fast mode: add a size only known at run time to the upper bound.
    st.total += extra
    if st.total > MAX_MEMORY:
        raise _NeedPrecise


def _charge_extra(st: State, value: object) -> None:
    # Fast mode: the static bound has 24 bytes for every node; a string or a filter costs more.
    if type(value) is str:
        _grow(st, 2 + 2 * len(value))
    elif type(value) is FilteredArray:
        _grow(st, POINTER_SIZE * len(value))


def _charge(st: State, level: int, size: int, release: bool) -> None:
    # ``EvaluationMemory.AddAmount``: a result whose size is known in full releases what the
    # deeper levels (its sub-expressions) held, then its own size is added at its level.
    depths = st.depths
    top = st.top
    if release and top > level:
        total = st.total
        while top > level:
            total -= depths[top]
            depths[top] = 0
            top -= 1
        st.total = total
    if level > top:
        top = level
    st.top = top
    depths[level] += size
    st.total += size
    if st.total > MAX_MEMORY:
        raise MemoryExceeded


def _charge_value(st: State, level: int, value: object) -> None:
    t = type(value)
    if t is str:
        _charge(st, level, string_size(cast(str, value)), True)
    elif value is None or t is bool or t is float or t is int:
        _charge(st, level, MIN_OBJECT_SIZE, True)
    else:
        # A collection may share memory with its sub-expressions: nothing is released.
        _charge(st, level, MIN_OBJECT_SIZE, kind_of(value) <= STRING)


class Compiled:
    """A compiled expression: the fast evaluator, and the precise one compiled when first needed
    (see the module docstring): most expressions never need it, and compiling both doubled the
    cost of an expression evaluated once, as a run's conditions are."""

    __slots__ = ("_contexts", "_functions", "_node", "_precise", "fast", "static_bytes")

    def __init__(
        self,
        node: Node,
        contexts: dict[str, str],
        functions: dict[str, str],
    ) -> None:
        self._node = node
        self._contexts = contexts
        self._functions = functions
        self._precise: tuple[Evaluator, int] | None = None
        fast, static_bytes, _ = _Compiler(contexts, functions, precise=False).compile(node)
        self.fast = fast
        self.static_bytes = static_bytes  # the fast evaluator's starting upper bound

    def precise(self) -> tuple[Evaluator, int]:
        """The precise evaluator and the depth levels of its ledger."""
        if self._precise is None:  # two threads may both compile it: the same evaluator
            compiler = _Compiler(self._contexts, self._functions, precise=True)
            evaluator, _, levels = compiler.compile(self._node)
            self._precise = (evaluator, levels)
        return self._precise


def compile_tree(
    node: Node,
    context_keys: Mapping[str, str] | None = None,
    function_keys: Mapping[str, str] | None = None,
) -> Compiled:
    """Compile a tree into its evaluators.

    ``context_keys`` and ``function_keys`` map lower-cased names to the keys of the mappings the
    evaluators will be given (names are case-insensitive; the default is the lower-cased name)."""
    return Compiled(node, dict(context_keys or {}), dict(function_keys or {}))


class _Compiler:
    def __init__(
        self, contexts: dict[str, str], functions: dict[str, str], *, precise: bool
    ) -> None:
        self.contexts = contexts
        self.functions = functions
        self.precise = precise
        self.static_bytes = 0
        self.levels = 0

    def compile(self, node: Node) -> tuple[Evaluator, int, int]:
        evaluator = self.build(node, 0)
        return evaluator, self.static_bytes, self.levels

    def build(self, node: Node, level: int) -> Evaluator:
        self.levels = max(self.levels, level + 1)
        self.static_bytes += MIN_OBJECT_SIZE
        precise = self.precise
        if isinstance(node, Literal):
            if type(node.value) is str:
                self.static_bytes += string_size(node.value) - MIN_OBJECT_SIZE
            return _literal(node, level, precise)
        if isinstance(node, NamedValue):
            return _named_value(self.contexts.get(node.name, node.name), level, precise)
        if isinstance(node, Index):
            target = self.build(node.target, level + 1)
            if isinstance(node.key, Wildcard):
                return _filter(target, level, precise)
            if isinstance(node.key, Literal) and type(node.key.value) is str:
                key_size = string_size(node.key.value)
                self.static_bytes += key_size
                return _property(target, node.key.value, key_size, level, precise)
            return _index(target, self.build(node.key, level + 1), level, precise)
        if isinstance(node, Not):
            return _not(self.build(node.operand, level + 1), level, precise)
        if isinstance(node, Compare):
            first = self.build(node.first, level + 1)
            rest = tuple((_OPERATORS[op], self.build(arg, level + 1)) for op, arg in node.rest)
            return _compare(first, rest, level, precise)
        args = tuple(self.build(arg, level + 1) for arg in node.args)
        if isinstance(node, Logical):
            return _logical(node.op == "&&", args, level, precise)
        return _call(node, self.functions.get(node.name, node.name), args, level, precise)


def _literal(node: Literal, level: int, precise: bool) -> Evaluator:
    value = node.value
    size = string_size(value) if type(value) is str else MIN_OBJECT_SIZE

    def literal(st: State) -> object:
        _charge(st, level, size, True)
        return value

    def fast_literal(st: State) -> object:
        return value

    return literal if precise else fast_literal


def _named_value(name: str, level: int, precise: bool) -> Evaluator:
    def named_value(st: State) -> object:
        value = st.contexts[name]
        _charge_value(st, level, value)
        return value

    def fast_named_value(st: State) -> object:
        value = st.contexts[name]
        if type(value) is str:
            _grow(st, 2 + 2 * len(value))
        return value

    return named_value if precise else fast_named_value


def _property(target: Evaluator, name: str, key_size: int, level: int, precise: bool) -> Evaluator:
    # ``a.b`` and ``a['b']``: the key is a constant string.
    def prop(st: State) -> object:
        obj = target(st)
        if precise:
            _charge(st, level + 1, key_size, True)
        if type(obj) is dict:
            value = obj.get(name, MISSING)
            if value is MISSING:
                value = get_property(obj, name)
        else:
            value = _lookup(obj, name)
        if value is MISSING:
            value = None
        if precise:
            _charge_result(st, level, value)
        elif type(value) is str:
            _grow(st, 2 + 2 * len(value))
        elif type(value) is FilteredArray:
            _grow(st, POINTER_SIZE * len(value))
        return value

    return prop


def _index(target: Evaluator, key: Evaluator, level: int, precise: bool) -> Evaluator:
    def index(st: State) -> object:
        obj = target(st)
        value = _lookup(obj, key(st))
        if value is MISSING:
            value = None
        if precise:
            _charge_result(st, level, value)
        else:
            _charge_extra(st, value)
        return value

    return index


def _charge_result(st: State, level: int, value: object) -> None:
    # The result of an index: a filter built from a filter costs a pointer per item.
    if type(value) is FilteredArray:
        _charge(st, level, POINTER_SIZE * len(value), False)
    else:
        _charge_value(st, level, value)


def _lookup(obj: object, key: object) -> object:
    """``obj[key]`` (``Index.cs``): an object by case-insensitive string key, an array by a
    non-negative number, a filtered array item by item; ``MISSING`` when there is nothing."""
    kind = kind_of(obj)
    if type(obj) is FilteredArray:
        result = FilteredArray()
        name = to_string(key) if kind_of(key) <= STRING else None
        number = index_number(key)
        for item in obj:
            item_kind = kind_of(item)
            if item_kind == OBJECT and isinstance(item, Mapping):
                if name is not None:
                    found = get_property(item, name)
                    if found is not MISSING:
                        result.append(found)
            elif item_kind == ARRAY and number is not None:
                items = cast(Sequence[object], item)
                if number < len(items):
                    result.append(items[number])
        return result
    if kind == OBJECT and isinstance(obj, Mapping):
        if kind_of(key) <= STRING:
            return get_property(obj, to_string(key))
        return MISSING
    if kind == ARRAY:
        number = index_number(key)
        items = cast(Sequence[object], obj)
        if number is not None and number < len(items):
            return items[number]
    return MISSING


def _filter(target: Evaluator, level: int, precise: bool) -> Evaluator:
    # ``a.*`` / ``a[*]``: the values of an object, the items of an array, or one level of each
    # item of a filtered array; an empty filter for anything else.
    def wildcard(st: State) -> object:
        obj = target(st)
        result = FilteredArray()
        size = MIN_OBJECT_SIZE
        if type(obj) is FilteredArray:
            size = 0
            for item in obj:
                item_kind = kind_of(item)
                if item_kind == OBJECT and isinstance(item, Mapping):
                    result.extend(item.values())
                elif item_kind == ARRAY:
                    result.extend(cast(Sequence[object], item))
        else:
            kind = kind_of(obj)
            if kind == OBJECT and isinstance(obj, Mapping):
                result.extend(obj.values())
            elif kind == ARRAY:
                result.extend(cast(Sequence[object], obj))
        if precise:
            _charge(st, level, size + POINTER_SIZE * len(result), False)
        else:
            _grow(st, POINTER_SIZE * len(result))
        return result

    return wildcard


def _not(operand: Evaluator, level: int, precise: bool) -> Evaluator:
    def not_(st: State) -> object:
        value = not is_truthy(operand(st))
        _charge(st, level, MIN_OBJECT_SIZE, True)
        return value

    def fast_not(st: State) -> object:
        return not is_truthy(operand(st))

    return not_ if precise else fast_not


def _not_equal(left: object, right: object) -> bool:
    return not equals(left, right)


def _greater_equal(left: object, right: object) -> bool:
    return equals(left, right) or greater_than(left, right)


def _less_equal(left: object, right: object) -> bool:
    return equals(left, right) or less_than(left, right)


_OPERATORS: dict[str, Callable[[object, object], bool]] = {
    "==": equals,
    "!=": _not_equal,
    ">": greater_than,
    ">=": _greater_equal,
    "<": less_than,
    "<=": _less_equal,
}


def _compare(
    first: Evaluator,
    rest: tuple[tuple[Callable[[object, object], bool], Evaluator], ...],
    level: int,
    precise: bool,
) -> Evaluator:
    if len(rest) == 1 and not precise:
        ((operator, second),) = rest

        def fast_compare(st: State) -> object:
            return operator(first(st), second(st))

        return fast_compare

    def compare(st: State) -> object:
        result: object = first(st)
        for op, operand in rest:
            result = op(result, operand(st))
        if precise:
            _charge(st, level, MIN_OBJECT_SIZE, True)
        return result

    return compare


def _logical(is_and: bool, args: tuple[Evaluator, ...], level: int, precise: bool) -> Evaluator:
    # ``&&`` returns the first falsy operand (or the last), ``||`` the first truthy one.
    def logical(st: State) -> object:
        value: object = None
        for arg in args:
            value = arg(st)
            if is_truthy(value) is not is_and:
                break
        if precise:
            _charge_value(st, level, value)
        else:
            _charge_extra(st, value)
        return value

    return logical


def _call(
    node: Call, key: str, args: tuple[Evaluator, ...], level: int, precise: bool
) -> Evaluator:
    charge = _charge_value if precise else _charge_extra_at
    if node.name == "case":
        return _case(args, level, charge)
    builtin = BUILTINS.get(node.name)
    if builtin is not None:
        function: Callable[[Sequence[object]], object] = builtin

        def call_builtin(st: State) -> object:
            value = function([arg(st) for arg in args])
            charge(st, level, value)
            return value

        return call_builtin

    raw = node.raw

    def call_host(st: State) -> object:
        # Host functions (``success()``, ``hashFiles(...)``) get evaluated arguments.
        host = st.functions[key]
        values = [arg(st) for arg in args]
        try:
            value = host(*values)
        except RunnerError:
            raise
        except Exception as exc:  # a failing host function is an evaluation error
            raise evaluation_error(f"{raw}: {exc}") from exc
        charge(st, level, value)
        return value

    return call_host


def _charge_extra_at(st: State, level: int, value: object) -> None:
    _charge_extra(st, value)


def _case(
    args: tuple[Evaluator, ...], level: int, charge: Callable[[State, int, object], None]
) -> Evaluator:
    # ``case(pred1, val1, pred2, val2, ..., default)``: the value after the first true predicate,
    # else the default; only the predicates up to the match and the chosen value are evaluated
    # (``Case.cs``). A predicate must be a boolean.
    pairs = tuple((args[i], args[i + 1]) for i in range(0, len(args) - 1, 2))
    default = args[-1]

    def case(st: State) -> object:
        for predicate, result in pairs:
            test = predicate(st)
            if type(test) is not bool:
                raise evaluation_error("case predicate must evaluate to a boolean value")
            if test:
                value = result(st)
                break
        else:
            value = default(st)
        charge(st, level, value)
        return value

    return case


def run(
    compiled: Compiled,
    expression: str,
    contexts: Mapping[str, object],
    functions: Mapping[str, Callable[..., object]],
) -> object:
    """Run a compiled expression; ``contexts`` and ``functions`` have lower-cased keys."""
    try:
        try:
            value = compiled.fast(State(contexts, functions, 0, compiled.static_bytes))
        except _NeedPrecise:
            precise, levels = compiled.precise()
            value = precise(State(contexts, functions, levels))
    except MemoryExceeded:
        raise ExpressionError(
            "The maximum allowed memory size was exceeded while evaluating the following "
            f"expression: {expression}",
            kind="evaluation",
        ) from None
    if type(value) is FilteredArray:
        return list(value)
    return value
