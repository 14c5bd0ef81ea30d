"""Version filters (``VersionParseFunction`` over Octopus.Versioning's ``OctopusVersionParser``)."""

from __future__ import annotations

import re
from collections.abc import Callable

_VERSION = re.compile(
    r"^\s*(?:\s*(?P<prefix>v|V)?\s*(?P<major>\d+\b)\s*(?:\.\s*(?P<minor>\d+\b)\s*)?"
    r"(?:\.\s*(?P<patch>\d+\b)\s*)?(?:\.\s*(?P<revision>\d+\b)\s*)?)?"
    r"(?:[.\-_\\])?(?P<prerelease>(?P<prereleaseprefix>[A-Za-z0-9]*?)"
    r"([.\-_\\](?P<prereleasecounter>[A-Za-z0-9.\-_\\]*?)?)?)?"
    r"(?:\+(?P<buildmetadata>[A-Za-z0-9_\-.\\+]*?))?\s*$"
)
_NUMBERS = ("major", "minor", "patch", "revision")


def _part(group: str) -> Callable[[str | None, list[str]], str | None]:
    def part(argument: str | None, options: list[str]) -> str | None:
        if argument is None or not argument.strip():
            return None
        match = _VERSION.match(argument)
        if match is None:
            return None  # Octostache throws on an unparseable version
        value = match.group(group)
        if group in _NUMBERS:
            number = int(value) if value is not None else 0
            return str(number) if number < 2**31 else None
        return value or ""

    part.__doc__ = f"The {group} of an Octopus version."
    return part


version_major = _part("major")
version_minor = _part("minor")
version_patch = _part("patch")
version_revision = _part("revision")
version_prerelease = _part("prerelease")
version_prerelease_prefix = _part("prereleaseprefix")
version_prerelease_counter = _part("prereleasecounter")
version_metadata = _part("buildmetadata")
