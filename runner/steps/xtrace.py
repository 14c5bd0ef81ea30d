"""What a ``set -x`` trace line shows of a value the traced command is about to make secret.

bash prints each command before it runs it. ``set_octopusvariable NAME VALUE -sensitive`` and
``echo "::add-mask::VALUE"`` make VALUE a secret when they run, so their own trace line, one
line earlier, showed it in clear in every log (an attack session found it; GitHub's runner
shows ``::add-mask::`` values the same way). :func:`traced_secrets` reads such a line as bash
quoted it, so that the value is masked from that line on.

Only bash's default prompt for traces (``PS4='+ '``, one ``+`` more for each level of nesting)
is recognised, and a value on one line: a value holding a newline is printed over several
lines, the first before anything says it is secret (docs/security.md, Known gaps).
"""

from __future__ import annotations

import re

#: bash's trace prefix with the default PS4: one ``+`` per level of nesting, then a space
_TRACE = re.compile(r"\++ ")
_ADD_MASK = "::add-mask::"
#: what ``$'...'`` turns into a character (bash's ANSI-C quoting)
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_NUMERIC = re.compile(r"([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})")


def traced_secrets(line: str) -> list[str]:
    """The values ``line``, if it is the trace of ``set_octopusvariable NAME VALUE -sensitive``
    or of a command with an ``::add-mask::VALUE`` argument, shows; empty for any other line."""
    prefix = _TRACE.match(line)
    if prefix is None:
        return []
    words = _words(line[prefix.end() :])
    if not words:
        return []
    found = [word[len(_ADD_MASK) :] for word in words if word.startswith(_ADD_MASK)]
    if len(words) == 4 and words[0] == "set_octopusvariable" and words[3] == "-sensitive":
        found.append(words[2])
    return [value for value in found if value]


def _words(text: str) -> list[str] | None:
    """The words of a traced command as bash quoted them (``'...'``, ``\\'``, ``$'...'``,
    ``"..."``, backslashes); None if a quote is not closed on this line."""
    words: list[str] = []
    word: list[str] = []
    started = False
    at = 0
    while at < len(text):
        char = text[at]
        if char in " \t":
            if started:
                words.append("".join(word))
                word, started = [], False
            at += 1
            continue
        started = True
        if char == "'":
            end = text.find("'", at + 1)
            if end < 0:
                return None
            word.append(text[at + 1 : end])
            at = end + 1
        elif text.startswith("$'", at):
            decoded = _ansi_c(text, at + 2)
            if decoded is None:
                return None
            chunk, at = decoded
            word.append(chunk)
        elif char == '"':
            decoded = _double_quoted(text, at + 1)
            if decoded is None:
                return None
            chunk, at = decoded
            word.append(chunk)
        elif char == "\\" and at + 1 < len(text):
            word.append(text[at + 1])
            at += 2
        else:
            word.append(char)
            at += 1
    if started:
        words.append("".join(word))
    return words


def _ansi_c(text: str, at: int) -> tuple[str, int] | None:
    """The text of a ``$'...'`` whose contents start at ``at``, and where it ends. ``\\NNN``
    and ``\\xHH`` are bytes (bash prints a UTF-8 character it will not show as one per byte)."""
    out = bytearray()
    while at < len(text):
        char = text[at]
        if char == "'":
            return out.decode("utf-8", "replace"), at + 1
        if char != "\\" or at + 1 >= len(text):
            out += char.encode("utf-8", "replace")
            at += 1
            continue
        escape = text[at + 1]
        if escape in _ESCAPES:
            out += _ESCAPES[escape].encode()
            at += 2
            continue
        number = _NUMERIC.match(text, at + 1)
        if number is None:
            out += ("\\" + escape).encode("utf-8", "replace")  # kept as it is
            at += 2
            continue
        octal, hexa, short, long = number.groups()
        if octal or hexa:
            out.append(int(octal, 8) & 0xFF if octal else int(hexa, 16))
        else:
            code = int(short or long, 16)
            out += (chr(code) if code <= 0x10FFFF else "\ufffd").encode("utf-8", "surrogatepass")
        at = number.end()
    return None


def _double_quoted(text: str, at: int) -> tuple[str, int] | None:
    out: list[str] = []
    while at < len(text):
        char = text[at]
        if char == '"':
            return "".join(out), at + 1
        if char == "\\" and at + 1 < len(text) and text[at + 1] in '"\\$`':
            out.append(text[at + 1])
            at += 2
            continue
        out.append(char)
        at += 1
    return None
