""".NET regular expressions on Python's ``re``: the syntax that differs is translated.

Octostache's ``Replace`` and ``Match`` use ``System.Text.RegularExpressions``; most patterns mean
the same in both. Translated: named groups ``(?<n>...)``/``(?'n'...)``, back-references
``\\k<n>``, ``\\z``/``\\Z``; and replacement strings (``$1``, ``${name}``, ``$$``, ``$&``, ...).
"""

from __future__ import annotations

import re
from functools import lru_cache

_GROUP = re.compile(r"\\.|\(\?<([A-Za-z_]\w*)>|\(\?'([A-Za-z_]\w*)'|\\k<([A-Za-z_]\w*)>", re.S)
_REPLACEMENT = re.compile(r"\$(?:(\d+)|\{([A-Za-z_]\w*|\d+)\}|([$&`'+_]))")


def _translate(pattern: str) -> str:
    def swap(m: re.Match[str]) -> str:
        text = m.group(0)
        if m.group(1) or m.group(2):
            return f"(?P<{m.group(1) or m.group(2)}>"
        if m.group(3):
            return f"(?P={m.group(3)})"
        if text == "\\z":
            return "\\Z"
        if text == "\\Z":
            return "(?=\\n?\\Z)"
        return text

    return _GROUP.sub(swap, pattern)


@lru_cache(maxsize=256)
def compile_net(pattern: str) -> re.Pattern[str]:
    """A .NET pattern compiled for Python (``re.error`` if it is invalid)."""
    return re.compile(_translate(pattern))


def _group(m: re.Match[str], name: str) -> str:
    key: int | str = int(name) if name.isdigit() else name
    try:
        return m.group(key) or ""
    except IndexError:
        return ""


def replace(text: str, pattern: str, replacement: str) -> str:
    """``Regex.Replace(text, pattern, replacement)``."""
    compiled = compile_net(pattern)
    parts = _REPLACEMENT.split(replacement)

    def expand(m: re.Match[str]) -> str:
        out: list[str] = []
        # split() with 3 groups yields: literal, number, name, symbol, literal, ...
        for i in range(0, len(parts), 4):
            out.append(parts[i])
            if i + 3 >= len(parts):
                break
            number, name, symbol = parts[i + 1], parts[i + 2], parts[i + 3]
            if number is not None:
                if int(number) <= compiled.groups:
                    out.append(_group(m, number))
                else:
                    out.append("$" + number)  # .NET leaves an unknown group reference as text
            elif name is not None:
                known = name.isdigit() and int(name) <= compiled.groups
                known = known or name in compiled.groupindex
                out.append(_group(m, name) if known else "${" + name + "}")
            elif symbol == "$":
                out.append("$")
            elif symbol == "&":
                out.append(m.group(0))
            elif symbol == "`":
                out.append(m.string[: m.start()])
            elif symbol == "'":
                out.append(m.string[m.end() :])
            elif symbol == "+":
                out.append(m.group(compiled.groups) or "" if compiled.groups else "")
            else:
                out.append(m.string)
        return "".join(out)

    return compiled.sub(expand, text)


def matches(text: str, pattern: str) -> bool:
    """``Regex.Match(text, pattern).Success``."""
    return compile_net(pattern).search(text) is not None
