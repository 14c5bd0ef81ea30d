"""Bytes to plain data, keeping where every key and value sits in the file.

The rest of the runner works on plain Python data (dict, list, str, int, float, bool, None) plus a
:class:`Document` that maps each path (``("steps", 3, "run")``) to its position, so that a problem
found anywhere, even at run time, points at a line and column.

ruamel.yaml composes the node tree (its C parser when ``ruamel.yaml.clib`` is installed: about 8x
faster than the pure one on a 5,000-step file); we convert nodes ourselves to reject duplicate keys
and to bound alias expansion, since ``*alias`` references can make a small file expand
exponentially ("billion laughs").

The C composer recurses once per level of nesting with no limit of its own: a 60 kB file of
``[[[[...`` or ``- - - -`` 30,000 deep overflowed the C stack (a segfault, issue #18). So before it
sees the text, :func:`_nesting_bound` bounds the depth from cheap counts (brackets, line length);
a text that could be deep, or hold more nodes than we convert, is first walked as a stream of
parser events (iterative: no recursion), which refuses it at the exact line and column.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from msgspec import Struct, field
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.resolver import VersionedResolver

from runner.bounded import read_file
from runner.errors import Diagnostic, ExpressionAt, ExpressionError, Location

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NODES = 1_000_000
MAX_DEPTH = 200
#: a merge key (``<<: *base``) whose base itself merges, and so on: at most this many levels
MAX_MERGE_DEPTH = 10
#: values that aliases and merge keys may add beyond the file's own (a workflow sharing a few
#: anchors adds hundreds; the 2,000-link merge chain of issue #18 added two million)
MAX_EXPANSION = 50_000
#: below this bound on the depth (of ``_nesting_bound``) the C composer is given the text at
#: once; it overflows an 8 MiB stack near 25,000 levels
SAFE_BOUND = 5_000

Path = tuple[str | int, ...]

_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)$")
_HEX = re.compile(r"0x[0-9a-fA-F_]+$")
_OCT = re.compile(r"0o[0-7_]+$")
#: a YAML comment that reads as an Octopus substitution: ``run: deploy --password #{Pw}`` ends
#: the value at `` #``, so the step would run ``deploy --password``
_SUBSTITUTION_COMMENT = re.compile(r"[ \t]+(#\{[^}\n]*\}?)")
#: the same after a block scalar's header (``run: | #{Pw}``) or a key whose value starts on the
#: next line (``env: #{Pw}``)
_AFTER_HEADER = re.compile(r"[|>][-+0-9]*(?=[ \t])")
_AFTER_KEY = re.compile(r"[ \t]*:(?=[ \t])")
#: the same after an item of a flow collection and its comma (``[a, #{B}``)
_AFTER_COMMA = re.compile(r"[ \t]*,")
#: a comment line's comment, wherever it starts (at the line's start, no blank before it)
_LINE_COMMENT = re.compile(r"[ \t]*(#\{[^}\n]*\}?)")
#: a flow collection's opening bracket, after its anchor and tag (``&a !!seq [``)
_OPENING = re.compile(r"(?:[&!][^ \t\[{]*[ \t]+)*[\[{]")


#: how to fix what the YAML parser says most often, by a part of its message
_YAML_FIXES = (
    (
        "mapping values are not allowed",
        '; a value holding `: ` must be quoted (`run: "echo a: b"`), or this line is '
        "indented too far",
    ),
    (
        "expected '-' indicator",
        "; the items of a list start with `- ` at the same column, and a key of an item is "
        "indented past its `-`",
    ),
    (
        "could not find expected ':'",
        "; each line of a mapping is `key: value` (a quote left open, or a key without `:`?)",
    ),
    ("expected <block end>", "; this line is indented differently from the lines around it"),
    ("found undefined alias", "; an alias `*name` needs an anchor `&name` above it"),
    ("found unexpected end of stream", "; a quote or bracket opened here is never closed"),
)


class Span(Struct, frozen=True):
    """Where a key or value is: 1-based line and column, and its length on that line."""

    line: int
    column: int
    length: int


class Document(Struct):
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


def position_in_text(lines: list[str], start: Location, text: str, offset: int) -> Location:
    """The file position of ``text[offset]``, for a string value that starts at ``start`` in a
    file of ``lines``.

    Exact for one-line plain and quoted scalars and for literal block scalars (``|``), where the
    file there holds what the text holds; else the start of the value: other multi-line scalars,
    a folded block (``>``) whose lines were joined, escapes in a quoted value, a file that is not
    (or no longer) the one the text came from.
    """
    line_index = text.count("\n", 0, offset)
    column_in_line = offset - (text.rfind("\n", 0, offset) + 1)
    source = lines[start.line - 1] if 0 < start.line <= len(lines) else ""
    lead = source[start.column - 1 : start.column]
    end = text.find("\n", offset)
    expected = text[offset : end if end >= 0 else len(text)]
    if lead == "|":
        body_line = start.line + 1 + line_index
        if body_line > len(lines):
            return start
        first = lines[start.line] if start.line < len(lines) else ""
        indent = len(first) - len(first.lstrip(" "))
        found = Location(start.path, body_line, indent + column_in_line + 1)
        # a literal block's line is the text's line: all of it must be there
        if not lines[body_line - 1][found.column - 1 :].startswith(expected):
            return start
        return found
    if line_index != 0 or lead == ">" or not 0 < start.line <= len(lines):
        return start  # a folded block's lines are joined, another multi-line value's too
    quote = 1 if lead in ("'", '"') else 0
    found = Location(start.path, start.line, start.column + quote + column_in_line)
    # one line: what follows may be written otherwise in the file (an escape, a closing quote),
    # so the shorter of the two is compared
    have = lines[start.line - 1][found.column - 1 :]
    length = min(len(expected), len(have))
    if expected and (length == 0 or have[:length] != expected[:length]):
        return start
    return found


def expression_in_file(start: Location, text: str, offset: int) -> Location:
    """Where the ``${{`` at ``text[offset]`` is in the file, for a value that starts at
    ``start``: found at run time, when an expression fails, from the file as it is then
    (:func:`position_in_text`); the start of the value if the file cannot be read."""
    try:
        raw = read_file(start.path, what="workflow", limit=MAX_FILE_BYTES)
        lines = raw.decode("utf-8").splitlines()
    except (OSError, ValueError):
        return start
    found = position_in_text(lines, start, text, offset)
    return start if found == start else Location(found.path, found.line, found.column, 3)


def expression_in(where: Location | None, text: str) -> ExpressionAt:
    """A block substituting ``text``, the string value at ``where``: an
    :class:`ExpressionError` raised in it without a place gets the place of its ``${{`` in the
    file (:func:`expression_in_file`), else ``where``."""
    return _ExpressionIn(where, text)


class _ExpressionIn(ExpressionAt):
    __slots__ = ("text",)

    def __init__(self, where: Location | None, text: str) -> None:
        super().__init__(where)
        self.text = text

    def place(self, exc: ExpressionError) -> Location | None:
        if self.where is None or exc.offset is None:
            return self.where
        return expression_in_file(self.where, self.text, exc.offset)


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
        # the reader stops one byte past the limit: how much more there is is not known
        message = f"file is too large: more than the {MAX_FILE_BYTES // 1024 // 1024} MiB limit"
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


def load_yaml(path: str, raw: bytes, *, substitutions: bool = False) -> Document:
    """Parse ``raw`` as one YAML document; raise :class:`LoadError` with positioned diagnostics.

    ``substitutions``: its values may hold ``#{}`` (a workflow or an action), so a comment that
    starts with ``#{`` where a value was being written is refused: the author meant it as part
    of the value, and YAML dropped it."""

    text = read_text(path, raw)
    lines = text.splitlines()
    try:
        yaml = YAML(typ="safe")
    except Exception:  # pragma: no cover - only without ruamel.yaml.clib
        yaml = YAML(typ="safe", pure=True)
    yaml.Resolver = _resolver_class()
    try:
        if _nesting_bound(text, lines) > SAFE_BOUND or _node_bound(text) > MAX_NODES:
            _walk_events(path, yaml, text)
        node = yaml.compose(text)
    except RecursionError:  # pragma: no cover - only the pure parser recurses in Python
        message = f"document is nested too deeply (the limit is {MAX_DEPTH}); simplify it"
        raise LoadError([Diagnostic(Location(path, 1, 1), message, "syntax")]) from None
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
        else:
            message += next((fix for found, fix in _YAML_FIXES if found in problem), "")
        raise LoadError([Diagnostic(Location(path, line, column), message, "syntax")]) from None
    except YAMLError as exc:
        message = f"invalid YAML: {str(exc).splitlines()[0]}"
        raise LoadError([Diagnostic(Location(path, 1, 1), message, "syntax")]) from None
    if node is None:
        raise LoadError(
            [Diagnostic(Location(path, 1, 1), "file is empty; expected a YAML mapping", "syntax")]
        )
    doc = Document(path=path, data=None, lines=lines)
    converter = _Converter(doc, comments=substitutions and "#{" in text)
    doc.data = converter.convert(node, ())
    if converter.problems:
        raise LoadError(sorted(converter.problems, key=Diagnostic.sort_key))
    return doc


def _nesting_bound(text: str, lines: list[str]) -> int:
    """An upper bound on the nesting depth of ``text``, from counts made in C.

    Flow collections nest one level per ``[`` or ``{``, so their depth is at most the number of
    brackets (closing ones are not trusted: they may sit in strings or comments). The two
    braces of each ``${{`` are not counted: they open a collection only in flow context, where
    a ``{`` right after the plain scalar ``$`` is a syntax error, found before any deeper level.
    A block collection is indented more than its parent, or as much when it is a sequence under
    a key, and compact forms (``- - x``, ``? - x``) put each level at a later column of the same
    line: block depth is at most twice the longest line. Scalars and the document add a level."""
    longest = max(map(len, lines), default=0)
    flow = text.count("[") + text.count("{") - 2 * text.count("${{")
    return flow + 2 * (longest + 1) + 2


def _node_bound(text: str) -> int:
    """An upper bound on the number of nodes: every node but the first follows a separator
    (``,`` ``:`` ``-`` ``?`` a bracket or a line break), and one separator can bring up to three
    (``{a, b}``: each key with its null value)."""
    separators = sum(text.count(c) for c in ",:-?[{\n")
    return 3 * (separators + 1)


def _walk_events(path: str, yaml: Any, text: str) -> None:
    """Refuse, at its position, a text nested deeper than ``MAX_DEPTH`` or with more than
    ``MAX_NODES`` nodes, from the parser's event stream (no recursion, nothing kept)."""
    depth = nodes = 0  # depth: collections open; a node's depth counts as the converter's
    for event in yaml.parse(text):
        name = type(event).__name__
        if name in ("MappingStartEvent", "SequenceStartEvent"):
            depth += 1
            level = depth - 1
        elif name in ("MappingEndEvent", "SequenceEndEvent"):
            depth -= 1
            continue
        elif name in ("ScalarEvent", "AliasEvent"):
            level = depth
        else:
            continue
        nodes += 1
        if level > MAX_DEPTH or nodes > MAX_NODES:
            mark = event.start_mark
            if level > MAX_DEPTH:
                message = f"document is nested too deeply (the limit is {MAX_DEPTH})"
            else:
                message = f"document has too many values (the limit is {MAX_NODES:,})"
            location = Location(path, mark.line + 1, mark.column + 1)
            raise LoadError([Diagnostic(location, f"{message}; simplify it", "syntax")])


@functools.cache
def _resolver_class() -> Any:
    """ruamel.yaml's resolver, with the YAML version's implicit resolvers looked up once.

    ``VersionedResolver`` works out which YAML version applies (a chain of attribute lookups
    through the loader) for every scalar it resolves: two thirds of composing a big file. One
    document has one version, known from its directives before its first node, so the table it
    selects is kept for the rest of the document (a new loader, hence a new cache, per file)."""

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
    def __init__(self, doc: Document, *, comments: bool = False) -> None:
        self.doc = doc
        #: whether the text may hold a comment that starts with ``#{`` (see _comment_after)
        self.comments = comments
        #: id(value) -> the column of its key (or of its ``-``): a plain value goes on over the
        #: lines indented more than that
        self.parents: dict[int, int] = {}
        #: the comments refused so far (an alias leads to the same one again)
        self.commented: set[Location] = set()
        self.nodes = 0
        self.problems: list[Diagnostic] = []
        self.too_big = False
        #: the nodes being converted, outermost first: an alias to one of them is a cycle
        self.open: set[int] = set()
        #: collections converted once: meeting one again is an alias, charged before converting
        self.seen: set[int] = set()
        #: values added by aliases and merge keys beyond the file's own (``MAX_EXPANSION``)
        self.expanded = 0
        #: > 0 while converting an alias already charged in full
        self.replaying = 0
        self.sizes: dict[int, int] = {}
        #: id(mapping) -> (merge depth, its pairs with merge keys expanded)
        self.merges: dict[int, tuple[int, list[tuple[Any, Any]]]] = {}

    def _problem(self, node: Any, message: str, kind: str = "syntax") -> None:
        span = _span(node)
        location = Location(self.doc.path, span.line, span.column, span.length)
        self.problems.append(Diagnostic(location, message, kind))

    def _refuse(self, node: Any, message: str, span: Span | None = None) -> None:
        """The first limit reached is reported; conversion then stops adding values."""
        if not self.too_big:
            self.too_big = True
            span = span or _span(node)
            location = Location(self.doc.path, span.line, span.column, span.length)
            self.problems.append(Diagnostic(location, message, "syntax"))

    def _comment_after(self, node: Any) -> None:
        """A comment that starts with ``#{`` where ``node``'s value was being written: after it
        on its line (after its comma, in a flow collection), after a block scalar's header or a
        flow collection's bracket, or on the lines below a plain value, more indented than where
        it started (where the value would have gone on)."""
        lines = self.doc.lines
        start, end = node.start_mark, node.end_mark
        if node.id == "scalar" and node.style in ("|", ">"):
            if start.line < len(lines):
                header = _AFTER_HEADER.match(lines[start.line], start.column)
                if header is not None:
                    self._comment_at(start.line, header.end())
            return
        if node.id != "scalar" and start.line < len(lines):
            # after a flow collection's `[` or `{`, on its line or the lines below
            opening = _OPENING.match(lines[start.line], start.column)
            if opening is not None:
                self._comment_ending(start.line, opening.end())
        if end.line >= len(lines):
            return
        if self._comment_at(end.line, end.column):
            return
        comma = _AFTER_COMMA.match(lines[end.line], end.column)
        if comma is not None:
            self._comment_ending(end.line, comma.end())
            return
        if lines[end.line][end.column :].strip():
            return
        if node.id != "scalar" or node.style:
            return
        self._comments_below(end.line, self.parents.get(id(node), _indent(lines[start.line])))

    def _comment_ending(self, line: int, column: int) -> None:
        """A comment ending ``line`` from ``column`` on, or, when nothing follows there, on the
        comment lines below (inside a flow collection, where the next item would go)."""
        if not self._comment_at(line, column) and not self.doc.lines[line][column:].strip():
            self._comments_below(line, -1)

    def _comments_below(self, line: int, indent: int) -> None:
        """The comment lines after ``line`` indented more than ``indent``, up to the first
        line of anything else."""
        lines = self.doc.lines
        for number in range(line + 1, len(lines)):
            text = lines[number].strip()
            if not text:
                continue
            if not text.startswith("#") or _indent(lines[number]) <= indent:
                return
            self._comment_at(number, 0, _LINE_COMMENT)

    def _key_comment(self, key: Any, value: Any) -> None:
        """``env: #{Pw}`` above a block mapping, ``run: #{Cmd}`` above the rest of a plain
        value: the comment sits on the key's line, the value starts below."""
        line = key.end_mark.line
        if value.start_mark.line > line and line < len(self.doc.lines):
            colon = _AFTER_KEY.match(self.doc.lines[line], key.end_mark.column)
            if colon is not None:
                self._comment_at(line, colon.end())

    def _comment_at(
        self, line: int, column: int, pattern: re.Pattern[str] = _SUBSTITUTION_COMMENT
    ) -> bool:
        found = pattern.match(self.doc.lines[line], column)
        if found is None:
            return False
        comment = found.group(1)
        location = Location(self.doc.path, line + 1, found.start(1) + 1, len(comment))
        if location in self.commented:
            return True  # met again through an alias
        self.commented.add(location)
        message = (
            f"`{comment}` is a YAML comment here, not a substitution: an unquoted value ends "
            "at ` #`; quote the whole value, or write it as a block (`|`)"
        )
        self.problems.append(Diagnostic(location, message, "syntax"))
        return True

    def convert(self, node: Any, path: Path, depth: int = 0) -> Any:
        self.nodes += 1
        if self.too_big or self.nodes > MAX_NODES or depth > MAX_DEPTH:
            if depth > MAX_DEPTH:
                self._refuse(
                    node, f"document is nested too deeply (the limit is {MAX_DEPTH}); simplify it"
                )
            else:
                self._refuse(
                    node, f"document has too many values (the limit is {MAX_NODES:,}); simplify it"
                )
            return None
        self.doc.values.setdefault(path, _span(node))
        kind = node.id
        if self.comments and (kind == "scalar" or node.flow_style):
            self._comment_after(node)
        if kind == "scalar":
            value = _scalar(node.tag, node.value, node.style)
            if isinstance(value, float) and math.isnan(value):
                # NaN passes every bound (`maximum`, `exclusiveMinimum`: each comparison is
                # false), and a `timeout-minutes: .nan` ended the run in an internal error
                self._problem(
                    node, f"`{node.value}` is not a number; write a number, or quote it as text"
                )
            return value
        if id(node) in self.open:
            self._refuse(node, "an alias refers to a value that contains it; remove the cycle")
            return None
        replay = id(node) in self.seen and not self.replaying
        if replay:
            # an alias: what it adds is known before it is converted again (all of it, nested
            # aliases included), so a "billion laughs" is refused at its first costly alias
            self.expanded += self._size(node)
            if self.expanded > MAX_EXPANSION:
                # the alias itself has no node: point at the collection that holds it
                where = self.doc.values.get(path[:-1]) if path else None
                self._refuse(node, _TOO_EXPANDED, where)
                return None
        self.seen.add(id(node))
        self.open.add(id(node))
        self.replaying += replay
        try:
            return self._collection(node, path, depth)
        finally:
            self.open.discard(id(node))
            self.replaying -= replay

    def _size(self, root: Any) -> int:
        """The number of values ``root`` expands to, aliases included (memoised, iterative;
        a cycle counts once here and is refused by :meth:`convert`)."""
        sizes = self.sizes
        stack: list[tuple[Any, bool]] = [(root, False)]
        visiting: set[int] = set()
        while stack:
            node, done = stack.pop()
            key = id(node)
            if key in sizes:
                continue
            children = _children(node)
            if done:
                visiting.discard(key)
                sizes[key] = 1 + sum(sizes.get(id(c), 1) for c in children)
                if sizes[key] > MAX_EXPANSION:  # no need to know by how much
                    sizes[key] = MAX_EXPANSION + 1
            elif key not in visiting:
                visiting.add(key)
                stack.append((node, True))
                stack.extend((c, False) for c in children if c.id != "scalar")
        return sizes[id(root)]

    def _collection(self, node: Any, path: Path, depth: int) -> Any:
        # in a flow collection a plain value goes on over any line indented more than the
        # block that holds the collection, whatever the column its item starts at
        flow = self.parents.get(id(node), 0) if node.flow_style else None
        if node.id == "sequence":
            if self.comments:
                for item in node.value:
                    self.parents[id(item)] = node.start_mark.column if flow is None else flow
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        result: dict[str, Any] = {}
        try:
            pairs = self._merged(node, frozenset())[1]
        except _Cycle:
            self._problem(node, "a merge key (`<<`) merges a mapping into itself; remove the cycle")
            return result
        except _MergeLimit as limit:
            self._refuse(node, str(limit))
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
            if self.comments:
                self.parents[id(value_node)] = key_node.start_mark.column if flow is None else flow
                self._key_comment(key_node, value_node)
            result[key] = self.convert(value_node, (*path, key), depth + 1)
        return result

    def _merged(self, node: Any, within: frozenset[int]) -> tuple[int, list[tuple[Any, Any]]]:
        """(merge depth, pairs) of a mapping with YAML merge keys (``<<: *base``) expanded, own
        keys winning. Memoised per mapping: a chain of merges costs the sum of its mappings'
        sizes, not its cube, and is refused past ``MAX_MERGE_DEPTH`` levels."""
        known = self.merges.get(id(node))
        if known is not None:
            return known
        if len(within) > MAX_MERGE_DEPTH:  # before recursing: mappings nested in merge keys
            raise _MergeLimit(_MERGES_TOO_DEEP)
        within = within | {id(node)}
        own = [(k, v) for k, v in node.value if not _is_merge(k)]
        own_keys = {k.value for k, _ in own if k.id == "scalar"}
        merged: list[tuple[Any, Any]] = []
        level = 0
        for k, v in node.value:
            if not _is_merge(k):
                continue
            for source in v.value if v.id == "sequence" else [v]:
                if id(source) in within:
                    raise _Cycle
                if source.id != "mapping":
                    continue
                below, pairs = self._merged(source, within)
                level = max(level, below + 1)
                if level > MAX_MERGE_DEPTH:
                    raise _MergeLimit(_MERGES_TOO_DEEP)
                self.expanded += len(pairs)
                if self.expanded > MAX_EXPANSION:
                    raise _MergeLimit(_TOO_EXPANDED)
                for mk, mv in pairs:
                    if mk.value not in own_keys:
                        own_keys.add(mk.value)
                        merged.append((mk, mv))
        result = (level, own + merged)
        self.merges[id(node)] = result
        return result


_TOO_EXPANDED = (
    f"document is too large once aliases expand (aliases and merge keys may add "
    f"{MAX_EXPANSION:,} values); simplify it"
)


_MERGES_TOO_DEEP = (
    f"merge keys (`<<`) are nested more than {MAX_MERGE_DEPTH} levels deep; merge fewer levels"
)


class _Cycle(Exception):
    """A merge key (``<<: *a``) that merges a mapping into itself."""


class _MergeLimit(Exception):
    """Merge keys nested too deeply, or adding too many values."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _is_merge(key: Any) -> bool:
    return bool(key.id == "scalar" and key.tag.endswith(":merge"))


def _children(node: Any) -> list[Any]:
    if node.id == "sequence":
        return list(node.value)
    if node.id == "mapping":
        return [part for pair in node.value for part in pair]
    return []


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
