"""The built-in functions: contains, startsWith, endsWith, format, join, toJSON, fromJSON.

(``case`` evaluates its arguments lazily, so it lives in the evaluator.) Each function takes the
already evaluated arguments. Behaviour follows ``expressions/src/funcs/*.ts`` of
actions/languageservices and ``Sdk/Functions/*.cs`` of actions/runner, including the runner's
memory accounting: a function building a string of more than 1 MB fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import cast

from runner.characters import HALF_ESCAPE, whole_characters
from runner.errors import ExpressionError
from runner.expressions.values import (
    ARRAY,
    KIND_NAMES,
    NULL,
    OBJECT,
    STRING,
    as_float,
    equals,
    fold,
    format_number,
    kind_of,
    to_string,
)

#: ``EvaluationOptions.MaxMemory`` default in the runner: 1 MB per evaluation.
MAX_MEMORY = 1048576
# Sizes the runner charges (``MemoryCounter``): a string costs 26 bytes plus 2 per UTF-16 unit.
STRING_OVERHEAD = 26
MIN_OBJECT_SIZE = 24
POINTER_SIZE = 8


class MemoryExceeded(Exception):
    """Raised when an evaluation would hold more than ``MAX_MEMORY`` bytes; turned into an
    ``ExpressionError`` naming the expression by the evaluator."""


def string_size(text: str) -> int:
    """What the runner charges for holding ``text``."""
    return STRING_OVERHEAD + 2 * len(text)


class Counter:
    """Memory used by one function's result as it is built (``MemoryCounter`` upstream)."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0

    def add(self, text: str) -> None:
        self.total += STRING_OVERHEAD + 2 * len(text)
        if self.total > MAX_MEMORY:
            raise MemoryExceeded


def evaluation_error(message: str) -> ExpressionError:
    """An error raised while evaluating."""
    return ExpressionError(message, kind="evaluation")


def contains(args: Sequence[object]) -> bool:
    """``contains(search, item)``: substring (case-insensitive) or array membership (``==``)."""
    search, item = args
    kind = kind_of(search)
    if kind <= STRING:
        if kind_of(item) <= STRING:
            return to_string(item).lower() in to_string(search).lower()
    elif kind == ARRAY:
        return any(equals(item, element) for element in cast(Sequence[object], search))
    return False


def starts_with(args: Sequence[object]) -> bool:
    """``startsWith(searchString, searchValue)``, case-insensitive; false for non-primitives."""
    left, right = args
    if kind_of(left) > STRING or kind_of(right) > STRING:
        return False
    return fold(to_string(left)).startswith(fold(to_string(right)))


def ends_with(args: Sequence[object]) -> bool:
    """``endsWith(searchString, searchValue)``, case-insensitive; false for non-primitives."""
    left, right = args
    if kind_of(left) > STRING or kind_of(right) > STRING:
        return False
    return fold(to_string(left)).endswith(fold(to_string(right)))


def join(args: Sequence[object]) -> str:
    """``join(array, separator=',')``: items as strings; a primitive is returned as a string."""
    items = args[0]
    kind = kind_of(items)
    if kind <= STRING:
        return to_string(items)
    if kind != ARRAY:
        return ""
    separator = ","
    if len(args) > 1 and kind_of(args[1]) <= STRING:
        separator = to_string(args[1])
    counter = Counter()
    parts: list[str] = []
    for position, item in enumerate(cast(Sequence[object], items)):
        if position:
            counter.add(separator)
            parts.append(separator)
        text = to_string(item)
        counter.add(text)
        parts.append(text)
    return "".join(parts)


def format_(args: Sequence[object]) -> str:
    """``format(text, arg0, arg1, ...)``: ``{N}`` is replaced by argument N, ``{{`` and ``}}``
    are literal braces. Follows the runner's ``Format.cs`` scanner, error texts included."""
    text = to_string(args[0])
    values = args[1:]
    counter = Counter()
    out: list[str] = []

    def append(piece: str) -> None:
        if piece:
            counter.add(piece)
            out.append(piece)

    def invalid() -> ExpressionError:
        return evaluation_error(f"The following format string is invalid: {text}")

    index = 0
    length = len(text)
    while index < length:
        lbrace = text.find("{", index)
        rbrace = text.find("}", index)
        if lbrace >= 0 and (rbrace < 0 or rbrace > lbrace):
            if lbrace + 1 < length and text[lbrace + 1] == "{":  # escaped "{{"
                append(text[index : lbrace + 1])
                index = lbrace + 2
                continue
            parsed = _read_argument(text, lbrace + 1) if rbrace > lbrace + 1 else None
            if parsed is None:
                raise invalid()
            arg_index, specifiers, rbrace = parsed
            if arg_index >= len(values):
                raise evaluation_error(
                    f"The following format string references more arguments than were "
                    f"supplied: {text}"
                )
            if specifiers:
                # The runner only formats its own date values; any other value is an error.
                kind = KIND_NAMES[kind_of(values[arg_index])]
                raise evaluation_error(
                    f"The format specifiers '{specifiers}' are not valid for objects of type "
                    f"'{kind}'"
                )
            append(text[index:lbrace])
            append(to_string(values[arg_index]))
            index = rbrace + 1
        elif rbrace >= 0:
            if rbrace + 1 < length and text[rbrace + 1] == "}":  # escaped "}}"
                append(text[index : rbrace + 1])
                index = rbrace + 2
            else:
                raise invalid()
        else:
            append(text[index:])
            break
    return "".join(out)


def _read_argument(text: str, start: int) -> tuple[int, str, int] | None:
    """Read ``N}`` or ``N:specifiers}`` at ``start``: (N, specifiers, offset of the ``}``)."""
    end = start
    while end < len(text) and text[end].isdecimal():
        end += 1
    digits = text[start:end]
    # At least one digit; the runner parses the index as a byte, with ASCII digits only.
    if not digits or not digits.isascii() or int(digits) > 255:
        return None
    if end < len(text) and text[end] == "}":
        return int(digits), "", end
    if end >= len(text) or text[end] != ":":
        return None
    specifiers: list[str] = []
    index = end + 1
    while index < len(text):
        ch = text[index]
        if ch != "}":
            specifiers.append(ch)
            index += 1
        elif index + 1 < len(text) and text[index + 1] == "}":
            specifiers.append("}")
            index += 2
        else:
            return int(digits), "".join(specifiers), index
    return None


def to_json(args: Sequence[object]) -> str:
    """``toJSON(value)``: pretty JSON, two-space indent, numbers printed as GitHub prints them."""
    return dump_json(args[0])


def json_string(text: str) -> str:
    """A JSON string literal as Newtonsoft.Json writes it (which also escapes U+0085, U+2028 and
    U+2029; other non-ASCII characters are kept)."""
    quoted = json.dumps(text, ensure_ascii=False)
    if "\u0085" in quoted or "\u2028" in quoted or "\u2029" in quoted:
        quoted = (
            quoted.replace("\u0085", "\\u0085")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return quoted


def _scalar_json(value: object, kind: int) -> str:
    if kind == NULL:
        return "null"
    if kind == STRING:
        return json_string(to_string(value))
    if kind == OBJECT:
        return "{}"  # an object the language cannot look into
    if kind == ARRAY:
        return "[]"
    if value is True or value is False:
        return "true" if value else "false"
    return format_number(as_float(value))


def dump_json(value: object) -> str:
    """Serialise without recursion (``ToJson.cs``); a cycle or a huge value runs into the 1 MB
    limit rather than forever."""
    counter = Counter()
    out: list[str] = []

    def write(piece: str) -> None:
        counter.add(piece)
        out.append(piece)

    # Each stack entry: (iterator over the items of an open collection, is-object, first?).
    stack: list[list[object]] = []
    current: object = value
    pending_prefix = ""
    while True:
        kind = kind_of(current)
        opened = False
        if kind == ARRAY or (kind == OBJECT and isinstance(current, Mapping)):
            items: list[object] = (
                list(cast(Sequence[object], current))
                if kind == ARRAY
                else list(cast(Mapping[object, object], current).items())
            )
            if items:
                write(pending_prefix + ("[" if kind == ARRAY else "{"))
                stack.append([iter(items), kind == OBJECT, True])
                opened = True
            else:
                write(pending_prefix + ("[]" if kind == ARRAY else "{}"))
        else:
            write(pending_prefix + _scalar_json(current, kind))
        if not opened and not stack:
            return "".join(out)
        # Move to the next value: the next item of the innermost open collection, closing the
        # collections that are exhausted.
        while stack:
            frame = stack[-1]
            iterator, is_object, first = frame
            item = next(cast(Iterator[object], iterator), _END)
            indent = "  " * len(stack)
            if item is _END:
                stack.pop()
                write("\n" + "  " * len(stack) + ("}" if is_object else "]"))
                continue
            separator = "" if first else ","
            frame[2] = False
            if is_object:
                key, current = cast(tuple[object, object], item)
                write(f"{separator}\n{indent}{json_string(to_string(key))}")
                pending_prefix = ": "
            else:
                current = item
                pending_prefix = f"{separator}\n{indent}"
            break
        else:
            return "".join(out)


_END = object()


def _reject_constant(name: str) -> float:
    raise ValueError(f"invalid JSON value {name}")


def _json_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # JSON.parse keeps the last of repeated keys; GitHub's case-insensitive dictionaries then keep
    # the first of keys that differ only in case.
    result: dict[str, object] = {}
    folded: set[str] = set()
    for key, item in pairs:
        if key in result:
            result[key] = item
        elif key.lower() not in folded:
            folded.add(key.lower())
            result[key] = item
    return result


def from_json(args: Sequence[object]) -> object:
    """``fromJSON(text)``: strict JSON to a value (numbers are floats)."""
    text = to_string(args[0])
    if not text.strip(" \t\n\r"):
        raise evaluation_error("Error parsing JSON when evaluating fromJson: empty input")
    try:
        value = json.loads(
            text,
            parse_int=float,
            parse_constant=_reject_constant,
            object_pairs_hook=_json_object,
        )
    except (ValueError, RecursionError) as exc:
        raise evaluation_error(f"Error parsing JSON when evaluating fromJson: {exc}") from None
    if not HALF_ESCAPE.search(text):
        return value
    try:
        return _whole_strings(value)
    except RecursionError:
        raise evaluation_error(
            "Error parsing JSON when evaluating fromJson: nested too deeply"
        ) from None


def _whole_strings(value: object) -> object:
    """``value`` with each half of a character left alone by its escape (``"\\ud800"``) as
    U+FFFD, as .NET writes such a string: no script, process environment or log can hold it
    (writing a step's script with one was an internal error)."""
    if isinstance(value, str):
        return whole_characters(value)
    if isinstance(value, dict):
        return {_whole_strings(k): _whole_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_strings(item) for item in value]
    return value


#: Built-ins taking evaluated arguments, by lower-cased name (``case`` is in the evaluator).
BUILTINS: dict[str, Callable[[Sequence[object]], object]] = {
    "contains": contains,
    "startswith": starts_with,
    "endswith": ends_with,
    "format": format_,
    "join": join,
    "tojson": to_json,
    "fromjson": from_json,
}
