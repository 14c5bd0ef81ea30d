"""The built-in filters (``BuiltInFunctions.cs``), looked up case-insensitively.

An unknown filter, like a filter that rejects its input or options, yields ``None``: the
``#{...}`` token is then echoed back unreplaced. ``Markdown``/``MarkdownToHtml`` (Markdig in
Octostache) is not implemented, so it too leaves the token unreplaced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runner.variables.octostache.filters import escape, formatting, hashing, text, uri, version
from runner.variables.octostache.filters.formatting import now_date

if TYPE_CHECKING:
    from runner.variables.octostache.filters.dates import Clock

Filter = Callable[[str | None, list[str]], str | None]

_FILTERS: dict[str, Filter] = {
    "tolower": text.to_lower,
    "toupper": text.to_upper,
    "tobase64": text.to_base64,
    "frombase64": text.from_base64,
    "htmlescape": escape.html_escape,
    "uriescape": escape.uri_escape,
    "uridataescape": escape.uri_data_escape,
    "xmlescape": escape.xml_escape,
    "jsonescape": escape.json_escape,
    "yamlsinglequoteescape": escape.yaml_single_quote_escape,
    "yamldoublequoteescape": escape.yaml_double_quote_escape,
    "propertieskeyescape": escape.properties_key_escape,
    "propertiesvalueescape": escape.properties_value_escape,
    "addseconds": formatting.add_seconds,
    "addminutes": formatting.add_minutes,
    "addhours": formatting.add_hours,
    "adddays": formatting.add_days,
    "addweeks": formatting.add_weeks,
    "addmonths": formatting.add_months,
    "addtimespan": formatting.add_timespan,
    "format": formatting.format_filter,
    "match": text.match,
    "replace": text.replace,
    "startswith": text.starts_with,
    "endswith": text.ends_with,
    "contains": text.contains,
    "substring": text.substring,
    "truncate": text.truncate,
    "trim": text.trim_filter,
    "indent": text.indent,
    "uripart": uri.uri_part,
    "versionmajor": version.version_major,
    "versionminor": version.version_minor,
    "versionpatch": version.version_patch,
    "versionprerelease": version.version_prerelease,
    "versionprereleaseprefix": version.version_prerelease_prefix,
    "versionprereleasecounter": version.version_prerelease_counter,
    "versionrevision": version.version_revision,
    "versionmetadata": version.version_metadata,
    "append": text.append,
    "prepend": text.prepend,
    "md5": hashing.md5,
    "sha1": hashing.sha1,
    "sha256": hashing.sha256,
    "sha384": hashing.sha384,
    "sha512": hashing.sha512,
    "null": text.null,
}
CLOCK_FILTERS = ("nowdate", "nowdateutc")
NAMES = frozenset(_FILTERS) | frozenset(CLOCK_FILTERS)


def is_known(name: str) -> bool:
    """Whether ``name`` is a built-in filter."""
    return name.lower() in NAMES


def invoke(name: str, argument: str | None, options: list[str], clock: Clock) -> str | None:
    """``BuiltInFunctions.InvokeOrNull``: the filter's result, or ``None``."""
    key = name.lower()
    function = _FILTERS.get(key)
    if function is None:
        if key not in CLOCK_FILTERS:
            return None
        function = now_date(clock, utc=key == "nowdateutc")
    try:
        return function(argument, options)
    except (ValueError, ArithmeticError, IndexError, UnicodeError, RecursionError):
        # Octostache lets some of these escape (bad base64, bad regex...); a token left
        # unreplaced is the gentler, and otherwise consistent, outcome.
        return None
