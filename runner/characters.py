"""Text with halves of characters: a JSON ``\\ud800`` escape decodes to one, and no file,
process environment or log can be written with it (each was an internal error somewhere)."""

from __future__ import annotations

import re

#: a ``\u`` escape of half of a UTF-16 pair in JSON text: json joins a pair into one
#: character and keeps a half alone (searched first: most texts hold none)
HALF_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def whole_characters(text: str) -> str:
    """``text`` with each pair of UTF-16 halves joined into its character, as .NET's strings
    hold them, and each half left alone as U+FFFD, as .NET writes it."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (it holds no half of a character)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
