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


#: what changes how a terminal or a page shows the text after it: C0 controls but tab and line
#: feed (an escape sequence clears the screen, moves the cursor, hides text; a carriage return
#: writes over the line), DEL, C1 controls (``\x9b`` is a CSI on some terminals), and Unicode's
#: bidirectional controls (they reorder what a page or a terminal shows)
_HIDING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` as people must see it to decide on it: each character of :data:`_HIDING` written
    as its escape (``\\x1b``, ``\\u202e``), a CRLF as a line feed."""
    if _HIDING.search(text) is None:
        return text
    return _HIDING.sub(_escape, text.replace("\r\n", "\n"))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
