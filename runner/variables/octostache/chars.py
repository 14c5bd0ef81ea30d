"""Character classes of .NET, which Octostache's grammar and filters are written against."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_ASCII_WS = frozenset("\t\n\v\f\r \x85\xa0")
# Octostache's identifier characters besides letters, digits (and, in names, whitespace). "@" was
# added by Octostache PR #129.
IDENTIFIER_EXTRAS = frozenset("_-:/~()@")


@lru_cache(maxsize=4096)
def _unicode_ws(c: str) -> bool:
    return unicodedata.category(c) in ("Zs", "Zl", "Zp")


def is_ws(c: str) -> bool:
    """``char.IsWhiteSpace``: Python's ``isspace`` also counts U+001C..U+001F, .NET does not."""
    if c in _ASCII_WS:
        return True
    return c > "\x7f" and _unicode_ws(c)


def trim(text: str) -> str:
    """``string.Trim()``."""
    start, end = 0, len(text)
    while start < end and is_ws(text[start]):
        start += 1
    while end > start and is_ws(text[end - 1]):
        end -= 1
    return text[start:end]


def trim_start(text: str) -> str:
    """``string.TrimStart()``."""
    start = 0
    while start < len(text) and is_ws(text[start]):
        start += 1
    return text[start:]


def trim_end(text: str) -> str:
    """``string.TrimEnd()``."""
    end = len(text)
    while end > 0 and is_ws(text[end - 1]):
        end -= 1
    return text[:end]


def is_identifier(c: str) -> bool:
    """A name character other than whitespace: ``char.IsLetter``, ``char.IsDigit`` or extras."""
    return c.isalpha() or c.isdecimal() or c in IDENTIFIER_EXTRAS


def upper(text: str) -> str:
    """``ToUpper()``: one character in, one out (Python maps ``ß`` to ``SS``, .NET does not)."""
    result = text.upper()
    if len(result) == len(text):
        return result
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in text)


def lower(text: str) -> str:
    """``ToLower()``, one character in, one out."""
    result = text.lower()
    if len(result) == len(text):
        return result
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def utf16_units(text: str) -> list[int]:
    """The UTF-16 code units .NET strings are made of (escapes work on these, not code points)."""
    data = text.encode("utf-16-le", "surrogatepass")
    return [data[i] | data[i + 1] << 8 for i in range(0, len(data), 2)]
