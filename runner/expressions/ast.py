"""The parse tree of an expression (immutable, so a parsed tree can be cached and shared)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Literal:
    """``null``, ``true``, ``1.5``, ``'text'``."""

    value: object


@dataclass(frozen=True, slots=True)
class NamedValue:
    """A context such as ``github``; ``name`` is lower-cased (names are case-insensitive)."""

    name: str
    raw: str


@dataclass(frozen=True, slots=True)
class Wildcard:
    """The ``*`` of ``.*`` and ``[*]``."""


@dataclass(frozen=True, slots=True)
class Index:
    """``target.name``, ``target[key]`` or a filter ``target.*`` / ``target[*]``."""

    target: Node
    key: Node | Wildcard


@dataclass(frozen=True, slots=True)
class Not:
    """``!operand``."""

    operand: Node


@dataclass(frozen=True, slots=True)
class Compare:
    """A left-associative chain ``first op1 x1 op2 x2 ...`` of ``== != < <= > >=`` operators of
    one precedence level. Kept flat so that a long chain is not a deep tree."""

    first: Node
    rest: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class Logical:
    """``a && b && ...`` or ``a || b || ...`` (``op`` is ``&&`` or ``||``)."""

    op: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Call:
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
