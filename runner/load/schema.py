"""JSON Schema validation, with jsonschema's errors turned into messages people can act on.

The schemas live in ``runner/schema/`` (``schema/`` at the top of the repository links there). A
subschema may carry ``x-message`` (the whole message when it fails) or ``x-expected`` (what a valid
value looks like); everything else is phrased from the failing keyword.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from runner.errors import Diagnostic
from runner.load.yaml import Document, Path

_TYPE_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "empty",
}


_SCHEMAS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "schema")


@functools.cache
def load_schema(name: str = "workflow") -> dict[str, Any]:
    """The named schema as shipped in the package (``workflow`` or ``policy``)."""
    # next to the package's modules (importlib.resources would import tempfile, zipfile...: ~8 ms)
    with open(os.path.join(_SCHEMAS, f"{name}.schema.json"), encoding="utf-8") as handle:
        text = handle.read()
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


def validate_document(doc: Document, schema: str = "workflow") -> list[Diagnostic]:
    """Every schema problem in ``doc``, each at the position of the offending key or value."""
    if _quick_valid(schema, doc.data):
        return []
    errors = list(_validator(schema).iter_errors(doc.data))
    # A value of the wrong type fails its other keywords too; saying so once is enough.
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    found: dict[tuple[Any, ...], Diagnostic] = {}
    for error in errors:
        if error.validator != "type" and tuple(error.absolute_path) in mistyped:
            continue
        for diagnostic in _translate(doc, error, f"the {schema}"):
            found.setdefault((diagnostic.location, diagnostic.message), diagnostic)
    return sorted(found.values(), key=Diagnostic.sort_key)


def describe(value: Any) -> str:
    """A short, readable rendering of a YAML value for messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    return str(value)


def _subject(path: Path, root: str) -> str:
    """How a message names the value at ``path``: the key, or the list it sits in (``root``,
    e.g. "the workflow", for the document itself)."""
    if not path:
        return root
    last = path[-1]
    if isinstance(last, str):
        return f"`{last}`"
    parent = [p for p in path if isinstance(p, str)]
    if parent and parent[-1] == "steps" and len(path) == 2:
        return "a step"
    return f"an item of `{parent[-1]}`" if parent else "an item"


def _container(path: Path, root: str) -> str:
    if not path:
        return "at the top level"
    if len(path) == 2 and path[0] == "steps":
        return "in a step"
    return f"in {_subject(path, root)}"


def _quote_all(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _translate(doc: Document, error: Any, root: str) -> Iterator[Diagnostic]:
    path: Path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    keyword = error.validator
    value = error.instance

    def at(where: Path, message: str, *, key: bool = False) -> Diagnostic:
        return Diagnostic(doc.location(where, key=key), message, "schema")

    if "x-message" in schema:
        yield at(path, str(schema["x-message"]))
        return
    if keyword in ("anyOf", "oneOf"):
        branch = _matching_branch(error)
        if branch is not None:
            for sub in branch:
                yield from _translate(doc, sub, root)
            return
        expected = schema.get("x-expected", "a valid value")
        yield at(path, f"{_subject(path, root)} must be {expected}, got {describe(value)}")
        return
    if keyword == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        for extra in sorted(set(value) - set(allowed)):
            message = f"unexpected key `{extra}` {_container(path, root)}"
            import difflib  # only for a mistake

            close = difflib.get_close_matches(extra, allowed, n=1)
            if close:
                message += f"; did you mean `{close[0]}`?"
            elif allowed:
                message += f"; expected one of {_quote_all(allowed)}"
            yield at((*path, extra), message, key=True)
        return
    if keyword == "required":
        for name in error.validator_value:
            if isinstance(value, dict) and name not in value:
                yield at(path, f"{_subject(path, root)} is missing the required key `{name}`")
        return
    if keyword == "dependentRequired" and isinstance(value, dict):
        for name, needs in error.validator_value.items():
            missing = [n for n in needs if n not in value]
            if name in value and missing:
                message = f"`{name}` applies only to steps with `{missing[0]}`"
                yield at((*path, name), message, key=True)
        return
    if keyword == "propertyNames":
        expected = schema.get("propertyNames", {}).get("x-expected", "a valid name")
        yield at((*path, str(value)), f"`{value}` is not {expected}", key=True)
        return
    if keyword == "pattern" and len(error.relative_schema_path) >= 2:
        parent_keyword = list(error.relative_schema_path)[-2]
        if parent_keyword == "propertyNames":
            yield at((*path, str(value)), f"`{value}` is not {schema.get('x-expected')}", key=True)
            return
    yield at(path, _message(_subject(path, root), keyword, error.validator_value, value, schema))


def _message(subject: str, keyword: str, expected: Any, value: Any, schema: dict[str, Any]) -> str:
    if keyword == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        names = [_TYPE_NAMES.get(str(k), str(k)) for k in kinds]
        wanted = names[-1] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        return f"{subject} must be {wanted}, got {describe(value)}"
    if keyword == "enum":
        return f"{subject} must be one of {_quote_all(map(str, expected))}, got {describe(value)}"
    if keyword == "const":
        return f"{subject} must be {describe(expected)}, got {describe(value)}"
    if keyword == "pattern":
        wanted = schema.get("x-expected", f"text matching {expected}")
        return f"{subject} must be {wanted}, got {describe(value)}"
    if keyword == "minItems":
        return (
            f"{subject} must not be empty"
            if expected == 1
            else (f"{subject} needs at least {expected} items")
        )
    if keyword == "minLength":
        return f"{subject} must not be empty"
    if keyword == "uniqueItems":
        return f"{subject} lists the same value more than once"
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {
            "minimum": "at least",
            "exclusiveMinimum": "more than",
            "maximum": "at most",
            "exclusiveMaximum": "less than",
        }[keyword]
        return f"{subject} must be {relation} {expected}, got {describe(value)}"
    if keyword == "not":
        return f"{subject} may not be {describe(value)}"
    return f"{subject} is not valid ({keyword})"


def _matching_branch(error: Any) -> list[Any] | None:
    """The errors of the one ``anyOf``/``oneOf`` branch whose type fits the value, if unique."""
    branches: dict[int, list[Any]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [
        errors
        for errors in branches.values()
        if not any(e.validator == "type" and not e.relative_path for e in errors)
    ]
    if len(fitting) == 1 and len(fitting[0]) > 0:
        return fitting[0]
    return None


# -- the quick check --------------------------------------------------------------------------
#
# jsonschema spends most of its time on bookkeeping for the errors it may have to report (a new
# validator object per keyword and value, reference resolution at every ``$ref``): four fifths of
# checking a 5,000-step workflow. Most files are valid, so the schema is also compiled into plain
# closures that only answer "valid or not", with JSON Schema's semantics as jsonschema implements
# them (``integer`` accepts 1.0, ``true`` is not a number, ``pattern`` is ``re.search``, ``enum``
# tells ``1`` from ``true``...). Valid: no diagnostics. Invalid, or any case the closures do not
# decide exactly (they raise ``_Unsure``): jsonschema runs, and its errors are reported as before.
# A schema using a keyword the compiler does not know is never compiled.

_Check = Callable[[Any], bool]

#: keywords that do not assert anything (annotations, and our message hints)
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "markdownDescription",
        "x-message",
        "x-expected",
    }
)


class _Unsure(Exception):
    """A value the quick check does not judge exactly: jsonschema decides."""


class _Unsupported(Exception):
    """A schema the quick check cannot compile."""


def _quick_valid(name: str, instance: Any) -> bool:
    check = _quick_check(name)
    if check is None:
        return False
    try:
        return check(instance)
    except (_Unsure, RecursionError):
        return False


@functools.cache
def _quick_check(name: str) -> _Check | None:
    root = load_schema(name)
    if root.get("$schema", _DRAFT_2020_12) != _DRAFT_2020_12:
        return None
    try:
        return _Compiler(root).compile(root)
    except _Unsupported:
        return None


_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if kind == "number":
        return isinstance(value, int | float)
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise _Unsupported(kind)


def _plain_equal(value: Any, expected: Any) -> bool:
    """jsonschema's ``equal`` for scalars (``1`` is not ``true``); containers are left to it."""
    if isinstance(value, dict | list) or isinstance(expected, dict | list):
        raise _Unsure
    if isinstance(value, bool) or isinstance(expected, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    return bool(value == expected)


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, _Check] = {}

    def compile(self, schema: Any) -> _Check:
        if schema is True:
            return lambda value: True
        if schema is False:
            return lambda value: False
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema))
        checks: list[_Check] = []
        for keyword, argument in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            if keyword in ("then", "else") and "if" in schema:
                continue
            build = getattr(self, "_" + keyword.replace("$", "").replace("-", "_"), None)
            if build is None:
                raise _Unsupported(keyword)
            checks.append(build(argument, schema))
        if len(checks) == 1:
            return checks[0]
        return lambda value: all(check(value) for check in checks)

    # one method per keyword: (argument, the whole schema) -> check

    def _ref(self, ref: Any, schema: dict[str, Any]) -> _Check:
        if not isinstance(ref, str) or not ref.startswith("#/$defs/") or ref.count("/") != 2:
            raise _Unsupported(str(ref))
        name = ref.removeprefix("#/$defs/")
        if name not in self.refs:
            target = self.root.get("$defs", {}).get(name)
            if target is None:
                raise _Unsupported(ref)
            cell: list[_Check] = []
            self.refs[name] = lambda value: cell[0](value)  # recursion: filled in below
            cell.append(self.compile(target))
        return self.refs[name]

    def _type(self, kinds: Any, schema: dict[str, Any]) -> _Check:
        names = tuple(kinds) if isinstance(kinds, list) else (kinds,)
        for kind in names:
            _is_type(None, kind)  # raises on an unknown type name
        return lambda value: any(_is_type(value, kind) for kind in names)

    def _properties(self, properties: dict[str, Any], schema: dict[str, Any]) -> _Check:
        compiled = {key: self.compile(sub) for key, sub in properties.items()}

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(check_key(value[key]) for key, check_key in compiled.items() if key in value)

        return check

    def _additionalProperties(self, extra: Any, schema: dict[str, Any]) -> _Check:
        if "patternProperties" in schema:
            raise _Unsupported("patternProperties")
        known = frozenset(schema.get("properties", {}))
        if extra is False:
            return lambda value: not isinstance(value, dict) or known.issuperset(value)
        sub = self.compile(extra)
        return lambda value: (
            not isinstance(value, dict)
            or all(sub(item) for key, item in value.items() if key not in known)
        )

    def _required(self, names: list[str], schema: dict[str, Any]) -> _Check:
        return lambda value: not isinstance(value, dict) or all(n in value for n in names)

    def _dependentRequired(self, needs: dict[str, list[str]], schema: dict[str, Any]) -> _Check:
        return lambda value: (
            not isinstance(value, dict)
            or all(all(n in value for n in wanted) for key, wanted in needs.items() if key in value)
        )

    def _propertyNames(self, names: Any, schema: dict[str, Any]) -> _Check:
        sub = self.compile(names)
        return lambda value: not isinstance(value, dict) or all(sub(key) for key in value)

    def _items(self, items: Any, schema: dict[str, Any]) -> _Check:
        if "prefixItems" in schema:
            raise _Unsupported("prefixItems")
        sub = self.compile(items)
        return lambda value: not isinstance(value, list) or all(sub(item) for item in value)

    def _minItems(self, least: int, schema: dict[str, Any]) -> _Check:
        return lambda value: not isinstance(value, list) or len(value) >= least

    def _uniqueItems(self, unique: bool, schema: dict[str, Any]) -> _Check:
        if not unique:
            return lambda value: True

        def check(value: Any) -> bool:
            if not isinstance(value, list):
                return True
            if not all(isinstance(item, str) for item in value):
                raise _Unsure  # numbers, booleans and containers: jsonschema's rules
            return len(set(value)) == len(value)

        return check

    def _minLength(self, least: int, schema: dict[str, Any]) -> _Check:
        return lambda value: not isinstance(value, str) or len(value) >= least

    def _pattern(self, pattern: str, schema: dict[str, Any]) -> _Check:
        search = re.compile(pattern).search
        return lambda value: not isinstance(value, str) or search(value) is not None

    def _number(self, bound: Any, test: Callable[[Any, Any], bool]) -> _Check:
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise _Unsupported(repr(bound))
        return lambda value: (
            isinstance(value, bool) or not isinstance(value, int | float) or test(value, bound)
        )

    def _minimum(self, bound: Any, schema: dict[str, Any]) -> _Check:
        return self._number(bound, lambda value, least: value >= least)

    def _maximum(self, bound: Any, schema: dict[str, Any]) -> _Check:
        return self._number(bound, lambda value, most: value <= most)

    def _exclusiveMinimum(self, bound: Any, schema: dict[str, Any]) -> _Check:
        return self._number(bound, lambda value, least: value > least)

    def _exclusiveMaximum(self, bound: Any, schema: dict[str, Any]) -> _Check:
        return self._number(bound, lambda value, most: value < most)

    def _enum(self, choices: list[Any], schema: dict[str, Any]) -> _Check:
        return lambda value: any(_plain_equal(value, choice) for choice in choices)

    def _const(self, expected: Any, schema: dict[str, Any]) -> _Check:
        return lambda value: _plain_equal(value, expected)

    def _allOf(self, subs: list[Any], schema: dict[str, Any]) -> _Check:
        compiled = [self.compile(sub) for sub in subs]
        return lambda value: all(check(value) for check in compiled)

    def _anyOf(self, subs: list[Any], schema: dict[str, Any]) -> _Check:
        compiled = [self.compile(sub) for sub in subs]
        return lambda value: any(check(value) for check in compiled)

    def _oneOf(self, subs: list[Any], schema: dict[str, Any]) -> _Check:
        compiled = [self.compile(sub) for sub in subs]
        return lambda value: sum(1 for check in compiled if check(value)) == 1

    def _not(self, sub: Any, schema: dict[str, Any]) -> _Check:
        compiled = self.compile(sub)
        return lambda value: not compiled(value)

    def _if(self, condition: Any, schema: dict[str, Any]) -> _Check:
        test = self.compile(condition)
        then = self.compile(schema.get("then", True))
        otherwise = self.compile(schema.get("else", True))
        return lambda value: then(value) if test(value) else otherwise(value)
