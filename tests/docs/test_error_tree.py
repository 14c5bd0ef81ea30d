"""The error tree drawn in docs/architecture.md and in ``runner/errors.py``'s docstring is the
class hierarchy: the same classes, parents, order and exit codes, all defined in ``runner.errors``.

Issue 20: the two trees had drifted apart (classes missing, an exit code the class did not have)
and subclasses lived in six modules. Either side changing alone fails here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

import pytest
from support import ROOT

import runner
from runner import errors
from runner.errors import ExitCode, RunnerError

ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: a tree line: its drawing, the class name, then maybe the exit code
_LINE = re.compile(r"^(?P<drawing>[│├└─ ]*)(?P<name>[A-Za-z]\w*)(?:\s+(?P<code>\d+)\b)?")


@dataclass(frozen=True)
class Node:
    name: str
    parent: str | None
    code: int | None  # None: not stated, the parent's


def parse_tree(text: str) -> list[Node]:
    """The nodes of the tree that starts at the line ``RunnerError``, in order, up to the first
    blank line. Depth comes from the drawing: four columns a level."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("RunnerError ")]
    assert len(starts) == 1, "one tree starting with a `RunnerError` line"
    first = lines[starts[0]]
    margin = len(first) - len(first.lstrip())
    nodes: list[Node] = []
    parents: list[str] = []
    for line in lines[starts[0] :]:
        if not line.strip():
            break
        found = _LINE.match(line[margin:])
        assert found, f"not a tree line: {line!r}"
        depth = len(found["drawing"]) // 4
        del parents[depth:]
        assert len(parents) == depth, f"a line deeper than its parent: {line!r}"
        code = None if found["code"] is None else int(found["code"])
        nodes.append(Node(found["name"], parents[-1] if parents else None, code))
        parents.append(found["name"])
    return nodes


def architecture_tree() -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Errors and exit codes", 1)[1]
    return section.split("```", 2)[1]


def real_tree() -> list[Node]:
    """The hierarchy under RunnerError in definition order, each with the code it exits with."""
    nodes: list[Node] = []

    def walk(cls: type[RunnerError], parent: str | None) -> None:
        nodes.append(Node(cls.__name__, parent, int(cls.exit_code)))
        for sub in cls.__subclasses__():
            walk(sub, cls.__name__)

    walk(RunnerError, None)
    return nodes


def effective(drawn: list[Node]) -> list[Node]:
    """The drawing with each code it leaves out filled in: a class exits with its parent's code
    (the root's header line says "exit code": its code is RunnerError's default)."""
    codes: dict[str | None, int] = {None: int(RunnerError.exit_code)}
    filled = []
    for node in drawn:
        code = node.code if node.code is not None else codes[node.parent]
        codes[node.name] = code
        filled.append(Node(node.name, node.parent, code))
    return filled


def import_every_module() -> None:
    """Every module of the package, so that a RunnerError subclass anywhere is registered."""
    for module in pkgutil.walk_packages(runner.__path__, "runner."):
        if ".migrations." in module.name:
            continue  # alembic's scripts run only inside alembic
        importlib.import_module(module.name)


def describe(nodes: list[Node]) -> list[str]:
    return [f"{n.name} < {n.parent} exit {n.code}" for n in nodes]


@pytest.mark.parametrize(
    "text",
    [pytest.param(architecture_tree(), id="docs"), pytest.param(errors.__doc__ or "", id="module")],
)
def test_the_drawn_tree_is_the_class_hierarchy(text: str) -> None:
    import_every_module()
    assert describe(effective(parse_tree(text))) == describe(real_tree())


def test_every_runner_error_is_defined_in_runner_errors() -> None:
    import_every_module()
    elsewhere = [
        f"{cls.__module__}.{cls.__name__}"
        for cls in _all_subclasses(RunnerError)
        if cls.__module__ != "runner.errors"
    ]
    assert elsewhere == []


def test_each_outcome_has_its_own_exit_code() -> None:
    # an IntEnum member given a used value silently becomes an alias of the first one
    assert len(ExitCode.__members__) == len(list(ExitCode))
    assert ExitCode.APPROVAL_SOURCE not in (ExitCode.TIMED_OUT, ExitCode.ABORTED)


def test_a_changed_drawing_is_seen() -> None:
    import_every_module()
    tree = architecture_tree()
    real = describe(real_tree())
    changes = [
        ("ApprovalError                    6", "ApprovalError                    4"),
        ("│   └── StateError", "├── StateError  "),
        ("└── SigningError ", "└── SignError   "),
    ]
    for old, new in changes:
        assert old in tree
        assert describe(effective(parse_tree(tree.replace(old, new)))) != real, new


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found
