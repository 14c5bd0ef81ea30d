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
import itertools
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
    exclude = [_matcher(_segments(p[1:])) for p in texts if p.startswith("!")]
    root = workspace.resolve()
    matched: set[Path] = set()
    walks: dict[str, list[Path]] = {}  # patterns sharing a start share its walk
    for pattern in include:
        base, matches = _split(pattern)
        if base not in walks:
            walks[base] = _walk(root, base, follow)
        for path in walks[base]:
            relative = path.relative_to(root).as_posix()
            if (
                matches.match(relative)
                and not any(excluded.match(relative) for excluded in exclude)
                and path.is_file()
                and path.resolve().is_relative_to(root)
            ):
                matched.add(path)
    if not matched:
        return ""
    outer = hashlib.sha256()
    for path in sorted(matched):
        # streamed: a build artifact of many GB read whole was a MemoryError (exit 70)
        with path.open("rb") as handle:
            outer.update(hashlib.file_digest(handle, "sha256").digest())
    return outer.hexdigest()


def _split(pattern: str) -> tuple[str, re.Pattern[str]]:
    """The pattern's leading segments without wildcards (where the walk starts; the whole of a
    pattern without any, which names one file), and a matcher of workspace-relative paths."""
    segments = _segments(pattern)
    literal = itertools.takewhile(lambda segment: not _MAGIC.search(segment), segments)
    return "/".join(literal), _matcher(segments)


def _segments(pattern: str) -> list[str]:
    return [s for s in pattern.strip().split("/") if s not in ("", ".")]


def _matcher(segments: list[str]) -> re.Pattern[str]:
    """A pattern's segments as a regular expression: ``**`` any number of folders, ``*`` and
    ``?`` within one segment, ``[...]`` a class."""
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
    if not real.is_relative_to(root):
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
    if real in seen or not real.is_relative_to(root):  # the root itself is seen
        return False
    seen.add(real)
    return True
