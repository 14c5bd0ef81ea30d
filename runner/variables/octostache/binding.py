"""The variable tree Octostache evaluates against (``Binding`` and ``PropertyListBinder``).

``Octopus.Action[Step A].Name = x`` becomes root -> ``Octopus`` -> ``Action`` -> indexable
``Step A`` (whose own value is the index text, which is what ``#{each}`` yields) -> ``Name``
with value ``x``. Names are case-insensitive; iteration order is first-insertion order, as in the
.NET ``Dictionary`` Octostache uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from runner.variables.octostache.parser import parse_name
from runner.variables.octostache.syntax import Identifier


def fold(name: str) -> str:
    """The dictionary key for ``StringComparer.OrdinalIgnoreCase``."""
    return name.lower()


class Binding:
    """A node: an optional value, named children and indexed children."""

    __slots__ = ("children", "indexable", "item", "literal", "made")

    def __init__(self, item: str | None = None) -> None:
        self.item = item
        self.children: dict[str, Binding] = {}
        self.indexable: dict[str, Binding] = {}
        #: an ``#{each}`` item: the collection's text, and what the item is of another text
        #: (told to the evaluator's ``derived`` when the item is read)
        self.made: tuple[str, Callable[[str], list[str]]] | None = None
        #: text cut out of a value already evaluated (an ``#{each}`` item, a JSON field): never
        #: evaluated as a template again (see ``evaluator.literal``)
        self.literal = False

    def child(self, name: str) -> Binding:
        """The named child, created when missing."""
        key = fold(name)
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = Binding()
        return node


def build(variables: Mapping[str, str | None] | Iterable[tuple[str, str | None]]) -> Binding:
    """``PropertyListBinder.CreateFrom``: names that do not parse as a path are left out."""
    pairs = variables.items() if isinstance(variables, Mapping) else variables
    root = Binding()
    for name, value in pairs:
        path = parse_name(name)
        if path is None:
            continue
        node = root
        for step in path.steps:
            if isinstance(step, Identifier):
                node = node.child(step.text)
                continue
            if step.index is None:
                # Octostache would throw on a "[#{...}]" step in a name; such a name cannot be
                # referenced anyway, so it is skipped.
                break
            key = fold(step.index)
            nxt = node.indexable.get(key)
            if nxt is None:
                nxt = node.indexable[key] = Binding(step.index)
            node = nxt
        else:
            node.item = value if value is not None else ""
    return root
