"""``hashFiles(pattern, ...)``: GitHub's host function, a hash of the files matching the patterns.

As GitHub computes it: the sha256 of each matching file (in path order), then the sha256 of those
digests concatenated; an empty string when nothing matches. Patterns are relative to the
workspace; ``!pattern`` excludes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def hash_files(workspace: Path, *patterns: object) -> str:
    include = [str(p) for p in patterns if not str(p).startswith("!")]
    exclude = [str(p)[1:] for p in patterns if str(p).startswith("!")]
    root = workspace.resolve()
    matched: set[Path] = set()
    for pattern in include:
        for path in root.glob(pattern):
            if path.is_file() and root in path.resolve().parents:
                matched.add(path)
    for pattern in exclude:
        matched -= set(root.glob(pattern))
    if not matched:
        return ""
    outer = hashlib.sha256()
    for path in sorted(matched):
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.hexdigest()
