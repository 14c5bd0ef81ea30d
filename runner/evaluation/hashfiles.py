"""``hashFiles(pattern, ...)``: GitHub's host function, a hash of the files matching the patterns.

As GitHub computes it: the sha256 of each matching file (in path order), then the sha256 of those
digests concatenated; an empty string when nothing matches. Patterns are relative to the
workspace; ``!pattern`` excludes. As in GitHub's runner, symbolic links to folders are not
followed unless the first argument is ``--follow-symbolic-links``: a link to ``/`` in the
workspace would otherwise make ``hashFiles('**/x')`` walk the whole file system. A file outside
the workspace (through a link, or ``..``) is never hashed.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

FOLLOW = "--follow-symbolic-links"
_MAGIC = re.compile(r"[*?\[]")


def hash_files(workspace: Path, *patterns: object) -> str:
    texts = [str(p) for p in patterns]
    follow = bool(texts) and texts[0] == FOLLOW
    if follow:
        texts = texts[1:]
    include = [p for p in texts if not p.startswith("!")]
    exclude = [_matcher(p[1:]) for p in texts if p.startswith("!")]
    root = workspace.resolve()
    matched: set[Path] = set()
    for pattern in include:
        base, matches = _split(pattern)
        for path in _walk(root, base, follow):
            relative = path.relative_to(root).as_posix()
            if (
                matches.match(relative)
                and not any(excluded.match(relative) for excluded in exclude)
                and path.is_file()
                and root in path.resolve().parents
            ):
                matched.add(path)
    if not matched:
        return ""
    outer = hashlib.sha256()
    for path in sorted(matched):
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.hexdigest()


def _split(pattern: str) -> tuple[str, re.Pattern[str]]:
    """The pattern's leading folders without wildcards (where the walk starts), and a matcher of
    workspace-relative paths."""
    segments = [s for s in pattern.strip().split("/") if s not in ("", ".")]
    literal = []
    # a pattern without wildcards names one file: no walk
    for segment in segments if not _MAGIC.search(pattern) else segments[:-1]:
        if _MAGIC.search(segment):
            break
        literal.append(segment)
    return "/".join(literal), _matcher(pattern)


def _matcher(pattern: str) -> re.Pattern[str]:
    """Glob to regular expression, by path segment: ``**`` any number of folders, ``*`` and
    ``?`` within one segment, ``[...]`` a class."""
    segments = [s for s in pattern.strip().split("/") if s not in ("", ".")]
    parts = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
            continue
        parts.append(_segment(segment) + ("" if last else "/"))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def _segment(segment: str) -> str:
    out = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := segment.find("]", i + 2)) != -1:
            body = segment[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _walk(root: Path, base: str, follow: bool) -> list[Path]:
    """Every file under ``root / base``. A folder reached through a link is entered only when
    ``follow``, once, and only when it is inside ``root``: nothing outside the workspace is
    walked, and a link to a folder above it ends."""
    start = root / base if base else root
    if not follow:
        parts = Path(base).parts
        for depth in range(1, len(parts) + 1):
            step = root.joinpath(*parts[:depth])
            if step.is_symlink() and step.is_dir():
                return []
    try:
        real = start.resolve()
    except (OSError, RuntimeError):  # a loop of links
        return []
    if real != root and root not in real.parents:
        return []
    if start.is_file():
        return [start]
    found: list[Path] = []
    seen = {real}
    for folder, dirs, files in os.walk(start, followlinks=follow):
        here = Path(folder)
        found.extend(here / name for name in files)
        if follow:
            dirs[:] = [name for name in dirs if _enter(root, here / name, seen)]
    return found


def _enter(root: Path, folder: Path, seen: set[Path]) -> bool:
    if not folder.is_symlink():
        return True
    try:
        real = folder.resolve()
    except (OSError, RuntimeError):
        return False
    if real in seen or root not in real.parents:  # the root itself is seen
        return False
    seen.add(real)
    return True
