"""Rendering diagnostics the way actionlint does: ``path:line:col: message [kind]``, the source
line with a gutter, and ``^~~~`` under the offending token. JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

from runner.errors import Diagnostic

#: the most of a source line shown under a diagnostic: a hostile or minified file can hold a line of
#: megabytes, and the snippet is there to point, not to reproduce the file
SNIPPET_WIDTH = 160


def render_text(
    diagnostics: Iterable[Diagnostic],
    lines_of: Callable[[str], Sequence[str]],
    *,
    color: bool = False,
) -> str:
    """All diagnostics as text; ``lines_of(path)`` gives a file's lines for the snippet."""
    out: list[str] = []
    for d in diagnostics:
        loc = d.location
        where = f"{loc.path}:{loc.line}:{loc.column}:"
        severity = "warning: " if d.severity == "warning" else ""
        kind = f"[{d.kind}]"
        if color:
            where = f"\x1b[1m{where}\x1b[0m"
            severity = f"\x1b[33m{severity}\x1b[0m" if severity else ""
            kind = f"\x1b[90m{kind}\x1b[0m"
        out.append(f"{where} {severity}{d.message} {kind}")
        lines = lines_of(loc.path)
        if 0 < loc.line <= len(lines) and _printable(lines[loc.line - 1]):
            source, column = _window(lines[loc.line - 1].expandtabs(1), loc.column)
            gutter = " " * len(str(loc.line))
            width = max(1, min(loc.length, len(source) - column + 1))
            marker = " " * (column - 1) + "^" + "~" * (width - 1)
            out.append(f"{gutter} |")
            out.append(f"{loc.line} | {source}")
            out.append(f"{gutter} | {marker}")
    return "\n".join(out) + ("\n" if out else "")


def to_json(diagnostics: Iterable[Diagnostic]) -> list[dict[str, object]]:
    return [
        {
            "path": d.location.path,
            "line": d.location.line,
            "column": d.location.column,
            "message": d.message,
            "kind": d.kind,
            "severity": d.severity,
        }
        for d in diagnostics
    ]


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps(to_json(diagnostics), indent=2, ensure_ascii=False) + "\n"


def _window(source: str, column: int) -> tuple[str, int]:
    """At most SNIPPET_WIDTH characters of ``source`` around ``column`` (1-based), cut ends shown
    as ``…``, and the column within what is shown."""
    if len(source) <= SNIPPET_WIDTH:
        return source, column
    start = max(0, min(column - 1 - SNIPPET_WIDTH // 4, len(source) - SNIPPET_WIDTH))
    shown = source[start : start + SNIPPET_WIDTH]
    head = "…" if start > 0 else ""
    tail = "…" if start + SNIPPET_WIDTH < len(source) else ""
    return head + shown + tail, column - start + len(head)


def _printable(line: str) -> bool:
    return all(c == "\t" or c >= " " for c in line)
