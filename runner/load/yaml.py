"""Bytes to plain data, keeping where every key and value sits in the file.

The rest of the runner works on plain Python data (dict, list, str, int, float, bool, None) plus a
:class:`Document` that maps each path (``("steps", 3, "run")``) to its position, so that a problem
found anywhere, even at run time, points at a line and column.

ruamel.yaml composes the node tree (its C parser when ``ruamel.yaml.clib`` is installed: about 8x
faster than the pure one on a 5,000-step file); we convert nodes ourselves to reject duplicate keys
and to bound alias expansion, since ``*alias`` references can make a small file expand
exponentially ("billion laughs").
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from runner.errors import Diagnostic, Location

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NODES = 1_000_000
MAX_DEPTH = 200

Path = tuple[str | int, ...]

_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)$")
_HEX = re.compile(r"0x[0-9a-fA-F_]+$")
_OCT = re.compile(r"0o[0-7_]+$")


@dataclass(frozen=True)
class Span:
    """Where a key or value is: 1-based line and column, and its length on that line."""

    line: int
    column: int
    length: int


@dataclass
class Document:
    """A loaded YAML file: its data, its text, and the position of every key and value."""

    path: str
    data: Any
    lines: list[str]
    values: dict[Path, Span] = field(default_factory=dict)
    keys: dict[Path, Span] = field(default_factory=dict)

    def location(self, path: Path, *, key: bool = False) -> Location:
        """The location of the value at ``path`` (or of its key), else of its nearest parent."""
        table = self.keys if key else self.values
        probe = path
        while probe:
            span = table.get(probe) or self.values.get(probe)
            if span:
                return Location(self.path, span.line, span.column, span.length)
            probe = probe[:-1]
        span = self.values.get(())
        if span:
            return Location(self.path, span.line, span.column, span.length)
        return Location(self.path, 1, 1)


class LoadError(Exception):
    """A file that is not loadable YAML; carries its diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics[0].message)
        self.diagnostics = diagnostics


def read_text(path: str, raw: bytes) -> str:
    """Decode a workflow file's bytes, refusing what is not a small UTF-8 text file."""
    where = Location(path, 1, 1)
    if not raw.strip():
        raise LoadError([Diagnostic(where, "file is empty; expected a YAML mapping", "syntax")])
    if len(raw) > MAX_FILE_BYTES:
        size = f"{len(raw) / 1024 / 1024:.1f} MiB"
        message = f"file is too large ({size}); the limit is {MAX_FILE_BYTES // 1024 // 1024} MiB"
        raise LoadError([Diagnostic(where, message, "syntax")])
    if b"\x00" in raw:
        raise LoadError([Diagnostic(where, "file is binary, not YAML text", "syntax")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8"
        raise LoadError([Diagnostic(Location(path, line, column), message, "syntax")]) from None
    return text.removeprefix("\ufeff")


def load_yaml(path: str, raw: bytes) -> Document:
    """Parse ``raw`` as one YAML document; raise :class:`LoadError` with positioned diagnostics."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    text = read_text(path, raw)
    lines = text.splitlines()
    try:
        yaml = YAML(typ="safe")
    except Exception:  # pragma: no cover - only without ruamel.yaml.clib
        yaml = YAML(typ="safe", pure=True)
    yaml.Resolver = _resolver_class()
    try:
        node = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or "invalid YAML").strip()
        if exc.context and exc.context_mark and (mark is None or mark.line >= len(lines)):
            # "found unexpected end of stream": point at what was left open, not past the end
            mark, problem = exc.context_mark, f"{exc.context.strip()}, {problem}"
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"invalid YAML: {problem}"
        if 0 < line <= len(lines) and lines[line - 1][column - 1 : column] == "\t":
            message += "; YAML is indented with spaces, not tabs"
        raise LoadError([Diagnostic(Location(path, line, column), message, "syntax")]) from None
    except YAMLError as exc:
        message = f"invalid YAML: {str(exc).splitlines()[0]}"
        raise LoadError([Diagnostic(Location(path, 1, 1), message, "syntax")]) from None
    if node is None:
        raise LoadError(
            [Diagnostic(Location(path, 1, 1), "file is empty; expected a YAML mapping", "syntax")]
        )
    doc = Document(path=path, data=None, lines=lines)
    converter = _Converter(doc)
    doc.data = converter.convert(node, ())
    if converter.problems:
        raise LoadError(sorted(converter.problems, key=Diagnostic.sort_key))
    return doc


@functools.cache
def _resolver_class() -> Any:
    """ruamel.yaml's resolver, with the YAML version's implicit resolvers looked up once.

    ``VersionedResolver`` works out which YAML version applies (a chain of attribute lookups
    through the loader) for every scalar it resolves: two thirds of composing a big file. One
    document has one version, known from its directives before its first node, so the table it
    selects is kept for the rest of the document (a new loader, hence a new cache, per file)."""
    from ruamel.yaml.resolver import VersionedResolver

    class Resolver(VersionedResolver):
        @property
        def versioned_resolver(self) -> Any:
            table = self.__dict__.get("_runner_implicit")
            if table is None:
                table = super().versioned_resolver
                self.__dict__["_runner_implicit"] = table
            return table

    return Resolver


def _span(node: Any) -> Span:
    start, end = node.start_mark, node.end_mark
    length = end.column - start.column if end.line == start.line else 1
    return Span(start.line + 1, start.column + 1, max(length, 1))


class _Converter:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.nodes = 0
        self.problems: list[Diagnostic] = []
        self.too_big = False
        #: the nodes being converted, outermost first: an alias to one of them is a cycle
        self.open: set[int] = set()

    def _problem(self, node: Any, message: str, kind: str = "syntax") -> None:
        span = _span(node)
        location = Location(self.doc.path, span.line, span.column, span.length)
        self.problems.append(Diagnostic(location, message, kind))

    def convert(self, node: Any, path: Path, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            if not self.too_big:
                self.too_big = True
                what = "nested too deeply" if depth > MAX_DEPTH else "too large once aliases expand"
                self._problem(node, f"document is {what}; simplify it", "syntax")
            return None
        self.doc.values.setdefault(path, _span(node))
        kind = node.id
        if kind == "scalar":
            return _scalar(node.tag, node.value, node.style)
        if id(node) in self.open:
            if not self.too_big:
                self.too_big = True
                self._problem(node, "an alias refers to a value that contains it; remove the cycle")
            return None
        self.open.add(id(node))
        try:
            return self._collection(node, path, depth)
        finally:
            self.open.discard(id(node))

    def _collection(self, node: Any, path: Path, depth: int) -> Any:
        if node.id == "sequence":
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        result: dict[str, Any] = {}
        try:
            pairs = list(_merged(node))
        except _Cycle:
            self._problem(node, "a merge key (`<<`) merges a mapping into itself; remove the cycle")
            return result
        for key_node, value_node in pairs:
            if key_node.id != "scalar":
                self._problem(key_node, "a key must be a plain string, not a list or mapping")
                continue
            key = str(key_node.value)
            if key in result:
                first = self.doc.keys.get((*path, key))
                where = f" (first defined at line {first.line})" if first else ""
                self._problem(key_node, f"key {key!r} is duplicated{where}", "duplicate-key")
                continue
            self.doc.keys.setdefault((*path, key), _span(key_node))
            result[key] = self.convert(value_node, (*path, key), depth + 1)
        return result


class _Cycle(Exception):
    """A merge key (``<<: *a``) that merges a mapping into itself."""


def _merged(node: Any, within: frozenset[int] = frozenset()) -> Iterator[tuple[Any, Any]]:
    """Mapping pairs with YAML merge keys (``<<: *base``) expanded, own keys winning."""
    within = within | {id(node)}
    own = [(k, v) for k, v in node.value if not (k.id == "scalar" and k.tag.endswith(":merge"))]
    own_keys = {k.value for k, _ in own if k.id == "scalar"}
    merged: list[tuple[Any, Any]] = []
    for k, v in node.value:
        if k.id == "scalar" and k.tag.endswith(":merge"):
            sources = v.value if v.id == "sequence" else [v]
            for source in sources:
                if id(source) in within:
                    raise _Cycle
                if source.id == "mapping":
                    for mk, mv in _merged(source, within):
                        if mk.value not in own_keys:
                            own_keys.add(mk.value)
                            merged.append((mk, mv))
    yield from own
    yield from merged


def _scalar(tag: str, value: str, style: Any) -> Any:
    if style:  # quoted or block scalars are always strings
        return value
    suffix = tag.rsplit(":", 1)[-1]
    if suffix == "null":
        return None
    if suffix == "bool":
        return value.lower() == "true"
    if suffix == "int":
        text = value.replace("_", "")
        if _HEX.match(value):
            return int(text, 16)
        if _OCT.match(value):
            return int(text[2:], 8)
        if _INT.match(value):
            return int(text)
        return value
    if suffix == "float":
        lowered = value.lower().replace("_", "")
        if lowered in (".inf", "+.inf"):
            return math.inf
        if lowered == "-.inf":
            return -math.inf
        if lowered == ".nan":
            return math.nan
        try:
            return float(lowered)
        except ValueError:
            return value
    return value
