"""Escaping filters (``TextEscapeFunctions.cs``)."""

from __future__ import annotations

import re
from urllib.parse import quote

from runner.variables.octostache.chars import utf16_units

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "/": "&#x2F;"}
_XML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
# "This is overly simplistic since Unicode chars also need escaping" (Octostache's own comment).
_JSON = {'"': '\\"', "\r": "\\r", "\t": "\\t", "\n": "\\n", "\\": "\\\\"}
_NEWLINES = re.compile(r"(?:\r?\n)+")
_COMMON = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", "\t": "\\t"}
Options = list[str]


def _map(text: str | None, table: dict[str, str]) -> str | None:
    if text is None:
        return None
    return "".join(table.get(c, c) for c in text)


def html_escape(argument: str | None, options: Options) -> str | None:
    """``HtmlEscape``: ``& < > " ' /``."""
    return None if options else _map(argument, _HTML)


def xml_escape(argument: str | None, options: Options) -> str | None:
    """``XmlEscape``: ``& < > " '``."""
    return None if options else _map(argument, _XML)


def json_escape(argument: str | None, options: Options) -> str | None:
    """``JsonEscape``: quotes, backslash, CR, LF and tab only."""
    return None if options else _map(argument, _JSON)


def yaml_single_quote_escape(argument: str | None, options: Options) -> str | None:
    """``YamlSingleQuoteEscape``: ``'`` doubled; each run of newlines gets one more newline, since
    YAML folds a single newline in a single-quoted scalar into a space."""
    if argument is None or options:
        return None
    doubled = _NEWLINES.sub(
        lambda m: ("\r\n" if m.group().startswith("\r") else "\n") + m.group(), argument
    )
    return doubled.replace("'", "''")


def _unit_escapes(text: str, keep: object) -> str:
    out: list[str] = []
    for c in text:
        if callable(keep) and keep(c):
            out.append(c)
        else:
            out.extend(f"\\u{unit:04x}" for unit in utf16_units(c))
    return "".join(out)


def yaml_double_quote_escape(argument: str | None, options: Options) -> str | None:
    """``YamlDoubleQuoteEscape``: C-style escapes; outside printable ASCII, ``\\uXXXX`` per
    UTF-16 unit."""
    if options or argument is None:
        return None
    table = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\\": "\\\\", '"': '\\"'}
    return "".join(
        table[c] if c in table else c if " " <= c <= "~" else _unit_escapes(c, None)
        for c in argument
    )


def _properties(c: str) -> str:
    if c in _COMMON:
        return _COMMON[c]
    # IsIso88591Compatible is "ch < 0xFF" in Octostache, so U+00FF itself is escaped.
    return c if ord(c) < 0xFF else _unit_escapes(c, None)


def properties_key_escape(argument: str | None, options: Options) -> str | None:
    """``PropertiesKeyEscape``: Java properties key (space, ``:`` and ``=`` escaped too)."""
    if options or argument is None:
        return None
    table = {" ": "\\ ", ":": "\\:", "=": "\\="}
    return "".join(table.get(c) or _properties(c) for c in argument)


def properties_value_escape(argument: str | None, options: Options) -> str | None:
    """``PropertiesValueEscape``: like a key, but only a leading space is escaped."""
    if options or argument is None:
        return None
    return "".join("\\ " if c == " " and i == 0 else _properties(c) for i, c in enumerate(argument))


def uri_escape(argument: str | None, options: Options) -> str | None:
    """``Uri.EscapeUriString``: everything but unreserved and reserved characters."""
    if options or argument is None:
        return None
    return quote(argument, safe="-._~:/?#[]@!$&'()*+,;=")


def uri_data_escape(argument: str | None, options: Options) -> str | None:
    """``Uri.EscapeDataString``: everything but unreserved characters."""
    if options or argument is None:
        return None
    return quote(argument, safe="-._~")
