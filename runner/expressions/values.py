"""Values of the expression language and GitHub's coercion rules.

Values are plain Python objects: ``None``, ``bool``, numbers (``int``/``float``), ``str``, arrays
(``list``/``tuple``) and objects (any ``Mapping``). The rules mirror ``result.ts`` and
``data/*.ts`` of actions/languageservices and ``EvaluationResult.cs`` of actions/runner:

- truthiness: ``null``, ``false``, ``0``, ``-0``, ``NaN`` and ``''`` are falsy, everything else
  (including empty arrays and objects) is truthy;
- loose comparison follows JavaScript's abstract equality, except that strings compare
  case-insensitively and arrays/objects never coerce (they are equal only to themselves);
- numbers become strings with 15 significant digits (.NET's ``G15``, what the runner prints);
- strings become numbers with JavaScript's ``Number()`` rules (``' 0x1F '`` is 31, ``''`` is 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import cast

NULL, BOOLEAN, NUMBER, STRING, ARRAY, OBJECT = range(6)
KIND_NAMES = ("Null", "Boolean", "Number", "String", "Array", "Object")

#: JavaScript's whitespace and line terminators (``\s``, and what ``Number()`` trims).
JS_WHITESPACE = frozenset(
    "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_JS_WHITESPACE_TEXT = "".join(sorted(JS_WHITESPACE))
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = {"x": (16, "0123456789abcdefABCDEF"), "o": (8, "01234567"), "b": (2, "01")}
_INF = float("inf")
_NAN = float("nan")
_DOTLESS_I = "\u0131"


class FilteredArray(list[object]):
    """The result of a ``.*`` or ``[*]`` filter. Indexing it applies the index to each item
    (``filtered_array.ts`` upstream), where indexing an ordinary array picks one item."""

    __slots__ = ()


def kind_of(value: object) -> int:
    """The kind (``NULL`` .. ``OBJECT``) of a value."""
    if value is None:
        return NULL
    t = type(value)
    if t is str:
        return STRING
    if t is bool:
        return BOOLEAN
    if t is float or t is int:
        return NUMBER
    if t is dict:
        return OBJECT
    if t is list or t is FilteredArray or t is tuple:
        return ARRAY
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list | tuple):
        return ARRAY
    # Mappings and anything the language does not know are objects (as in the runner).
    return OBJECT


def is_primitive(value: object) -> bool:
    """Null, boolean, number or string."""
    return kind_of(value) <= STRING


def is_truthy(value: object) -> bool:
    """GitHub's truthiness: falsy are null, false, 0, -0, NaN and the empty string."""
    if value is None:
        return False
    t = type(value)
    if t is bool:
        return value is True
    if t is str:
        return value != ""
    if t is float or t is int:
        return not (value == 0 or value != value)
    k = kind_of(value)
    if k in (BOOLEAN, STRING):
        return bool(value)
    if k == NUMBER:
        return not (value == 0 or value != value)
    return True


def as_float(value: object) -> float:
    """A number value as a float (very large Python ints become infinities, as doubles would)."""
    number = cast(float, value)
    try:
        return float(number)
    except OverflowError:  # an int beyond the range of a double
        return _INF if number > 0 else -_INF


def parse_number(text: str) -> float:
    """JavaScript's ``Number(text)``: trimmed, decimal/exponent, ``0x``/``0o``/``0b``, Infinity."""
    s = text.strip(_JS_WHITESPACE_TEXT)
    if not s:
        return 0.0
    if _DECIMAL.fullmatch(s):
        if s.endswith("Infinity"):
            return -_INF if s[0] == "-" else _INF
        return float(s)
    if len(s) > 2 and s[0] == "0" and s[1].lower() in _RADIX:
        base, digits = _RADIX[s[1].lower()]
        if all(ch in digits for ch in s[2:]):
            return as_float(int(s[2:], base))
    return _NAN


def to_number(value: object) -> float:
    """The number a value coerces to: null 0, booleans 1/0, strings per ``Number()``, else NaN."""
    k = kind_of(value)
    if k == NUMBER:
        return as_float(value)
    if k == STRING:
        return parse_number(str(value))
    if k == BOOLEAN:
        return 1.0 if value else 0.0
    if k == NULL:
        return 0.0
    return _NAN


def format_number(number: float) -> str:
    """A number as GitHub prints it: .NET ``G15`` (``1``, ``1.5``, ``1E+15``, ``1E-05``).

    ``-0`` prints as ``0`` and the infinities as ``Infinity``/``-Infinity``, as the runner does
    (``EvaluationResult.ConvertToString``)."""
    if number != number:
        return "NaN"
    if number == _INF:
        return "Infinity"
    if number == -_INF:
        return "-Infinity"
    if number == 0:
        return "0"
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    # Python's %G uses the same rule as .NET's G: scientific when the exponent is < -4 or >= the
    # precision, trailing zeros removed, at least two exponent digits.
    return f"{number:.15G}"


def to_string(value: object) -> str:
    """The string a value coerces to (``coerceString``): '' for null, 'true'/'false', numbers
    with 15 significant digits, strings as they are, and 'Array'/'Object' for collections."""
    if type(value) is str:
        return value
    k = kind_of(value)
    if k == STRING:
        return str(value)
    if k == NULL:
        return ""
    if k == BOOLEAN:
        return "true" if value else "false"
    if k == NUMBER:
        return format_number(as_float(value))
    return KIND_NAMES[k]


def fold(text: str) -> str:
    """Upper-case for case-insensitive comparison, leaving the dotless ``ı`` alone as GitHub does
    (``toUpperSpecial`` in languageservices' ``result.ts``)."""
    if text.isascii() or _DOTLESS_I not in text:
        return text.upper()
    return _DOTLESS_I.join(part.upper() for part in text.split(_DOTLESS_I))


def _before(left: str, right: str) -> bool:
    # JavaScript and C# order strings by UTF-16 code unit, not by code point.
    if left.isascii() and right.isascii():
        return left < right
    return left.encode("utf-16-be", "surrogatepass") < right.encode("utf-16-be", "surrogatepass")


def _coerce(left: object, lk: int, right: object, rk: int) -> tuple[object, int, object, int]:
    # ``coerceTypes`` upstream: JavaScript's abstract equality, but objects never become primitives.
    while lk != rk:
        if lk == NUMBER and rk == STRING:
            return left, lk, to_number(right), NUMBER
        if lk == STRING and rk == NUMBER:
            return to_number(left), NUMBER, right, rk
        if lk in (NULL, BOOLEAN):
            left, lk = to_number(left), NUMBER
        elif rk in (NULL, BOOLEAN):
            right, rk = to_number(right), NUMBER
        else:
            break
    return left, lk, right, rk


def equals(left: object, right: object) -> bool:
    """``==``: loose equality, strings case-insensitive, collections by identity, NaN unequal."""
    tl = type(left)
    if tl is type(right):
        if tl is str:
            return left == right or fold(str(left)) == fold(str(right))
        if tl is float or tl is int:
            return as_float(left) == as_float(right)
    left, lk, right, rk = _coerce(left, kind_of(left), right, kind_of(right))
    if lk != rk:
        return False
    if lk == NUMBER:
        return as_float(left) == as_float(right)
    if lk == STRING:
        return fold(str(left)) == fold(str(right))
    if lk == BOOLEAN:
        return bool(left) == bool(right)
    if lk == NULL:
        return True
    return left is right


def greater_than(left: object, right: object) -> bool:
    """``>`` after coercion; false whenever the kinds still differ or a side is NaN."""
    left, lk, right, rk = _coerce(left, kind_of(left), right, kind_of(right))
    if lk != rk:
        return False
    if lk == NUMBER:
        return as_float(left) > as_float(right)
    if lk == STRING:
        return _before(fold(str(right)), fold(str(left)))
    if lk == BOOLEAN:
        return bool(left) and not bool(right)
    return False


def less_than(left: object, right: object) -> bool:
    """``<`` after coercion; false whenever the kinds still differ or a side is NaN."""
    left, lk, right, rk = _coerce(left, kind_of(left), right, kind_of(right))
    if lk != rk:
        return False
    if lk == NUMBER:
        return as_float(left) < as_float(right)
    if lk == STRING:
        return _before(fold(str(left)), fold(str(right)))
    if lk == BOOLEAN:
        return not bool(left) and bool(right)
    return False


_MISSING = object()


def get_property(obj: Mapping[object, object], key: str) -> object:
    """``obj[key]`` with a case-insensitive key; ``MISSING`` when absent.

    An exact-case key is found directly; otherwise the first key equal ignoring case wins (like
    languageservices' ``Dictionary``, which keeps the first of keys that differ only in case)."""
    value = obj.get(key, _MISSING)
    if value is not _MISSING:
        return value
    wanted = key.lower()
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == wanted:
            return v
    return _MISSING


MISSING = _MISSING


def index_number(index: object) -> int | None:
    """An array index from any value: a finite number >= 0, floored (``idxHelper.ts``)."""
    number = to_number(index)
    if number != number or number < 0 or math.isinf(number):
        return None
    return int(number)
