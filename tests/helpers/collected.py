"""How many test cases this session collected per file, for the checks that compare a figure in
the docs with the suite (``tests/docs/test_attack_count.py``).

Counted at ``pytest_itemcollected``, before ``-k``/``-m``/``--deselect`` filter anything: the
count of a folder is exact when the session collected the whole folder. When it did not (the
docs test run alone, a single node id, ``--lf``), the caller collects it in a subprocess."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

COUNTS = pytest.StashKey[Counter[str]]()


def note(item: pytest.Item) -> None:
    """Count ``item`` under its file (a path relative to the root, as pytest shows it)."""
    counts = item.config.stash.setdefault(COUNTS, Counter())
    counts[item.nodeid.split("::", 1)[0]] += 1


def whole(config: pytest.Config, folder: Path) -> bool:
    """Whether this session collected every test under ``folder``: an argument that holds it
    (no node id inside it), and nothing that skips files."""
    if config.getoption("lf", False) or config.getoption("ignore", None):
        return False
    if config.getoption("ignore_glob", None):
        return False
    root = config.rootpath
    for arg in config.args:
        path, _, node = arg.partition("::")
        if node:
            continue
        target = (root / path).resolve()
        if folder == target or folder.is_relative_to(target):
            return True
    return False


def per_file(config: pytest.Config, folder: Path) -> dict[str, int]:
    """Collected cases per file under ``folder`` in this session."""
    prefix = folder.relative_to(config.rootpath).as_posix() + "/"
    counts = config.stash.get(COUNTS, Counter())
    return {path: n for path, n in counts.items() if path.startswith(prefix)}
