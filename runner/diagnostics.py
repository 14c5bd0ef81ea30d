"""Rendering diagnostics the way actionlint does: ``path:line:col: message [kind]``, the source
line with a gutter, and ``^~~~`` under the offending token. JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

from runner.errors import Diagnostic


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
            source = lines[loc.line - 1].expandtabs(1)
            gutter = " " * len(str(loc.line))
            width = max(1, min(loc.length, len(source) - loc.column + 1))
            marker = " " * (loc.column - 1) + "^" + "~" * (width - 1)
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


def _printable(line: str) -> bool:
    return all(c == "\t" or c >= " " for c in line)
