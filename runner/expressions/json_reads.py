"""What an expression reads out of ``fromJSON(...)``: ``fromJSON(secrets.DB).password`` prints a
part of a secret that no encoding of the whole secret matches, so a masker must learn it.

For each ``fromJSON(x)`` of a tree, with the longest chain of reads on it (``.a``, ``[0]``,
``[matrix.key]``, ``.*``), this gives the text ``x`` evaluated to and a function making of any
other text what that chain makes of it: the masker applies it to the secrets ``x`` held (see
``Masker.derive``), never to ``x`` itself, so a field of a document that merely contains a
secret elsewhere is not taken for one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from runner.errors import ExpressionError
from runner.expressions.ast import Call, Index, NamedValue, Node, Wildcard, children
from runner.expressions.evaluate import Compiled, compile_tree, run
from runner.expressions.functions import to_json
from runner.expressions.interpolate import template_string

#: a context name no expression can write (names are letters, digits, ``_`` and ``-``)
_TEXT = "\x00text"
#: leaves taken from one read: a read of a whole large document stops there
_MAX_LEAVES = 1000


def json_reads(
    tree: Node,
    contexts: Mapping[str, object],
    functions: Mapping[str, Callable[..., object]],
    context_keys: Mapping[str, str],
    function_keys: Mapping[str, str],
) -> Iterator[tuple[str, Callable[[str], list[str]]]]:
    """``(x, read)`` for each ``fromJSON(x)`` of ``tree`` whose argument is a string: ``read``
    gives the strings and numbers that the chain of reads on that call makes of another text
    (nothing when the text is no JSON or holds nothing there)."""
    for chain, call in _chains(tree):
        argument = call.args[0]
        keys = {**context_keys, _TEXT: _TEXT}
        try:
            source = run(compile_tree(argument, keys, function_keys), "", contexts, functions)
        except ExpressionError:
            continue
        if type(source) is not str or not source:
            continue
        yield (
            source,
            _reader(compile_tree(_replaced(chain, call), keys, function_keys), contexts, functions),
        )


def _reader(
    compiled: Compiled,
    contexts: Mapping[str, object],
    functions: Mapping[str, Callable[..., object]],
) -> Callable[[str], list[str]]:
    def read(text: str) -> list[str]:
        try:
            value = run(compiled, "", {**contexts, _TEXT: text}, functions)
        except ExpressionError:
            return []
        return _leaves(value)

    return read


def _chains(tree: Node) -> Iterator[tuple[Node, Call]]:
    """Each ``fromJSON`` call with the longest chain of reads on it, outermost first."""
    stack: list[Node] = [tree]
    while stack:
        node = stack.pop()
        call = _read_of_json(node)
        if call is not None:
            yield node, call
            # what the call's argument and the chain's keys hold may read JSON too
            stack.extend(call.args)
            while isinstance(node, Index):
                if not isinstance(node.key, Wildcard):
                    stack.append(node.key)
                node = node.target
            continue
        stack.extend(children(node))


def _read_of_json(node: Node) -> Call | None:
    while isinstance(node, Index):
        node = node.target
    if isinstance(node, Call) and node.name == "fromjson" and len(node.args) == 1:
        return node
    return None


def _replaced(chain: Node, call: Call) -> Node:
    """``chain`` with the call's argument read from the ``_TEXT`` context instead."""
    if chain is call:
        return Call(call.name, call.raw, (NamedValue(_TEXT, _TEXT),))
    assert isinstance(chain, Index)
    return Index(_replaced(chain.target, call), chain.key)


def _leaves(value: object) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack and len(found) < _MAX_LEAVES:
        item = stack.pop()
        if isinstance(item, bool) or item is None:
            continue  # `true`, `false` and `null` tell nothing worth masking everywhere
        if isinstance(item, str):
            if item:
                found.append(item)
                # as ``toJSON`` prints it, inside a document (a quote or a backslash escaped)
                quoted = to_json([item])[1:-1]
                if quoted != item:
                    found.append(quoted)
        elif isinstance(item, int | float):
            found.append(template_string(item))
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, Sequence):
            stack.extend(item)
    return found
