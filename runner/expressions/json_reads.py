"""What an expression reads out of ``fromJSON(...)``, and the parts a JSON text has: together
they tell a masker that ``fromJSON(secrets.DB).password`` printed a part of a secret, which no
encoding of the whole secret matches.

``json_reads`` gives the values each ``fromJSON(x)`` of an expression gave, with the longest
chain of reads on it (``.a``, ``[0]``, ``[matrix.key]``, ``.*``) evaluated as the expression
does; ``json_parts`` gives every string and number of a JSON text, at any depth, and of JSON
texts held in its strings. A value read that is a part of a secret is one (``Masker.add_parts``),
however the secret reached ``x`` (wrapped by ``format``, inside a step's output, nested); a value
read of a document that merely holds a secret elsewhere is not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from runner.errors import ExpressionError
from runner.expressions.ast import Call, Index, Node, Wildcard, children
from runner.expressions.evaluate import compile_tree, run
from runner.expressions.functions import from_json, to_json
from runner.expressions.interpolate import template_string

#: what a JSON document starts with: an object, an array, a string or a number (``12345.0``
#: is a secret that ``fromJSON`` prints as ``12345``)
_JSON_START = frozenset('{["-0123456789')


def json_reads(
    tree: Node,
    contexts: Mapping[str, object],
    functions: Mapping[str, Callable[..., object]],
    context_keys: Mapping[str, str],
    function_keys: Mapping[str, str],
) -> list[str]:
    """The strings and numbers each ``fromJSON`` call of ``tree``, with the reads on it, gives
    (as printed, and as ``toJSON`` escapes them inside a document). A call that fails gives
    nothing; the expression's own error says why."""
    found: list[str] = []
    for chain in _chains(tree):
        try:
            value = run(compile_tree(chain, context_keys, function_keys), "", contexts, functions)
        except ExpressionError:
            continue
        found.extend(_leaves(value, 0))
    return found


def json_parts(text: str) -> list[str]:
    """The strings and numbers of ``text`` read as JSON (``fromJSON``'s reading, a number as
    ``${{ }}`` prints it), at any depth and inside the JSON texts its strings hold; nothing
    when it is no JSON document."""
    return _leaves(_document(text), 1) if _may_be_json(text) else []


def _may_be_json(text: str) -> bool:
    start = text.lstrip()[:1]
    return bool(start) and start in _JSON_START


def _document(text: str) -> object:
    try:
        return from_json([text])
    except (ExpressionError, RecursionError):
        return None


def _chains(tree: Node) -> Iterator[Node]:
    """Each ``fromJSON`` call with the longest chain of reads on it."""
    stack: list[Node] = [tree]
    while stack:
        node = stack.pop()
        call = _read_of_json(node)
        if call is not None:
            yield node
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


def _leaves(value: object, nesting: int) -> list[str]:
    found: list[str] = []
    stack: list[tuple[object, int]] = [(value, nesting)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, bool) or item is None:
            continue  # `true`, `false` and `null` tell nothing worth masking everywhere
        if isinstance(item, str):
            if not item:
                continue
            found.append(item)
            # as ``toJSON`` prints it inside a document (a quote or a backslash escaped)
            quoted = to_json([item])[1:-1]
            if quoted != item:
                found.append(quoted)
            # a document held as a string, at any depth (each level escapes the one inside it
            # again, so a text of n characters holds at most about log2(n) levels)
            if depth and _may_be_json(item):
                stack.append((_document(item), depth + 1))
        elif isinstance(item, int | float):
            found.append(template_string(item))
        elif isinstance(item, Mapping):
            stack.extend((v, depth) for v in item.values())
        elif isinstance(item, Sequence):
            stack.extend((v, depth) for v in item)
    return found
