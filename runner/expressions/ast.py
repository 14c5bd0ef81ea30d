"""The parse tree of an expression (immutable, so a parsed tree can be cached and shared)."""

from __future__ import annotations

from collections.abc import Iterator

from msgspec import Struct


class Literal(Struct, frozen=True):
    """``null``, ``true``, ``1.5``, ``'text'``."""

    value: object


class NamedValue(Struct, frozen=True):
    """A context such as ``github``; ``name`` is lower-cased (names are case-insensitive)."""

    name: str
    raw: str


class Wildcard(Struct, frozen=True):
    """The ``*`` of ``.*`` and ``[*]``."""


class Index(Struct, frozen=True):
    """``target.name``, ``target[key]`` or a filter ``target.*`` / ``target[*]``."""

    target: Node
    key: Node | Wildcard


class Not(Struct, frozen=True):
    """``!operand``."""

    operand: Node


class Compare(Struct, frozen=True):
    """A left-associative chain ``first op1 x1 op2 x2 ...`` of ``== != < <= > >=`` operators of
    one precedence level. Kept flat so that a long chain is not a deep tree."""

    first: Node
    rest: tuple[tuple[str, Node], ...]


class Logical(Struct, frozen=True):
    """``a && b && ...`` or ``a || b || ...`` (``op`` is ``&&`` or ``||``)."""

    op: str
    args: tuple[Node, ...]


class Call(Struct, frozen=True):
    """A function call; ``name`` is lower-cased (function names are case-insensitive)."""

    name: str
    raw: str
    args: tuple[Node, ...]


Node = Literal | NamedValue | Index | Not | Compare | Logical | Call


def children(node: Node | Wildcard) -> Iterator[Node]:
    """The direct sub-expressions of a node."""
    if isinstance(node, Index):
        yield node.target
        if not isinstance(node.key, Wildcard):
            yield node.key
    elif isinstance(node, Not):
        yield node.operand
    elif isinstance(node, Compare):
        yield node.first
        for _, operand in node.rest:
            yield operand
    elif isinstance(node, Logical | Call):
        yield from node.args


def walk(node: Node) -> Iterator[Node]:
    """Every node of a tree, without recursion."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(children(current))
