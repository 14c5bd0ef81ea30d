"""Text filters (``TextCaseFunction``, ``TextManipulationFunction``, ``TextReplaceFunction``,
``TextSubstringFunction``, ``TextComparisonFunctions``, ``NullFunction``).

Every filter takes the value (``None`` when the variable is missing) and its evaluated options,
and returns ``None`` to leave the ``#{...}`` token unreplaced, as Octostache does on bad input.
"""

from __future__ import annotations

import base64
import binascii
import re

from runner.variables.octostache.chars import lower, trim, trim_end, trim_start, upper
from runner.variables.octostache.filters import regex

Options = list[str]
_INT = re.compile(r"\s*[+-]?\d+\s*")
_INDENT = re.compile(r"((\d{1,3})?/)?(\d{1,3})")


def parse_int(text: str) -> int | None:
    """``int.TryParse``."""
    if not _INT.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


def to_upper(argument: str | None, options: Options) -> str | None:
    """``ToUpper``."""
    return None if options or argument is None else upper(argument)


def to_lower(argument: str | None, options: Options) -> str | None:
    """``ToLower``."""
    return None if options or argument is None else lower(argument)


_CODECS = {"utf8": "utf-8", "utf-8": "utf-8", "unicode": "utf-16-le"}


def to_base64(argument: str | None, options: Options) -> str | None:
    """``ToBase64 [utf8|unicode]``."""
    if len(options) > 1 or argument is None:
        return None
    codec = _CODECS.get(options[0].lower() if options else "utf8")
    if codec is None:
        return None
    return base64.b64encode(argument.encode(codec, "surrogatepass")).decode("ascii")


def from_base64(argument: str | None, options: Options) -> str | None:
    """``FromBase64 [utf8|unicode]``; invalid base64 leaves the token (Octostache throws)."""
    if len(options) > 1 or argument is None:
        return None
    codec = _CODECS.get(options[0].lower() if options else "utf8")
    if codec is None:
        return None
    try:
        data = base64.b64decode("".join(argument.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data.decode(codec, "replace")


def append(argument: str | None, options: Options) -> str | None:
    """``Append option...``: needs an option; a missing value counts as empty."""
    return (argument or "") + "".join(options) if options else None


def prepend(argument: str | None, options: Options) -> str | None:
    """``Prepend option...``."""
    return "".join(options) + (argument or "") if options else None


def truncate(argument: str | None, options: Options) -> str | None:
    """``Truncate length [suffix]``: suffix ``...`` unless given (Octostache PR #130)."""
    if argument is None or not options or len(options) > 2:
        return None
    length = parse_int(options[0])
    if length is None or length < 0:
        return None
    suffix = options[1] if len(options) > 1 else "..."
    return argument[:length] + suffix if length < len(argument) else argument


def trim_filter(argument: str | None, options: Options) -> str | None:
    """``Trim [start|end]``."""
    if argument is None:
        return None
    if not options:
        return trim(argument)
    mode = options[0].lower()
    if mode == "start":
        return trim_start(argument)
    if mode == "end":
        return trim_end(argument)
    return None


def _indents(options: Options) -> tuple[str, str] | None:
    if not options:
        return "    ", "    "
    if len(options) == 2:
        return options[0], options[1]
    if len(options) > 2:
        return None
    match = _INDENT.fullmatch(options[0])
    if match:
        initial, subsequent = match.group(2), match.group(3)
        if match.group(1):
            if initial is None and int(subsequent) <= 255:
                return "", " " * int(subsequent)
            if initial is not None and int(initial) <= 255 and int(subsequent) <= 255:
                return " " * int(initial), " " * int(subsequent)
        elif int(subsequent) <= 255:
            return " " * int(subsequent), " " * int(subsequent)
    # Anything else (including sizes over 255, the byte limit) is the indent text itself.
    return options[0], options[0]


def indent(argument: str | None, options: Options) -> str | None:
    """``Indent [size | initial/subsequent | /subsequent | text | initial subsequent]``."""
    if argument is None:
        return None
    if argument == "":
        return ""
    indents = _indents(options)
    if indents is None:
        return None
    return indents[0] + argument.replace("\n", "\n" + indents[1])


def substring(argument: str | None, options: Options) -> str | None:
    """``Substring length`` or ``Substring start length``; lengths past the end are clamped
    (Octostache PR #130), a start past the end leaves the token."""
    if argument is None or not options or len(options) > 2:
        return None
    numbers = [parse_int(o) for o in options]
    if any(n is None or n < 0 for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    start, length = (0, values[0]) if len(values) == 1 else (values[0], values[1])
    if start > len(argument):
        return None
    return argument[start : start + length]


def replace(argument: str | None, options: Options) -> str | None:
    """``Replace pattern [replacement]``: a .NET regular expression replacement."""
    if argument is None or not options or len(options) > 2:
        return None
    try:
        return regex.replace(argument, options[0], options[1] if len(options) > 1 else "")
    except re.error:
        return None


def _flag(value: bool) -> str:
    return "true" if value else "false"


def match(argument: str | None, options: Options) -> str | None:
    """``Match pattern``: ``true``/``false``."""
    if argument is None or len(options) != 1:
        return None
    try:
        return _flag(regex.matches(argument, options[0]))
    except re.error:
        return None


def starts_with(argument: str | None, options: Options) -> str | None:
    """``StartsWith text`` (ordinal)."""
    if argument is None or len(options) != 1:
        return None
    return _flag(argument.startswith(options[0]))


def ends_with(argument: str | None, options: Options) -> str | None:
    """``EndsWith text`` (ordinal)."""
    if argument is None or len(options) != 1:
        return None
    return _flag(argument.endswith(options[0]))


def contains(argument: str | None, options: Options) -> str | None:
    """``Contains text`` (ordinal)."""
    if argument is None or len(options) != 1:
        return None
    return _flag(options[0] in argument)


def null(argument: str | None, options: Options) -> str | None:
    """``Null``: no value; ``#{ | null }`` then writes nothing (Octostache PR #94)."""
    return None
