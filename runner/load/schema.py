"""JSON Schema validation, with jsonschema's errors turned into messages people can act on.

The schemas live in ``runner/schema/`` (``schema/`` at the top of the repository links there). A
subschema may carry ``x-message`` (the whole message when it fails) or ``x-expected`` (what a valid
value looks like); everything else is phrased from the failing keyword.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Iterator
from typing import Any

from runner.errors import Diagnostic
from runner.load.quick_schema import load_schema, quick_valid
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


@functools.cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


def validate_document(doc: Document, schema: str = "workflow") -> list[Diagnostic]:
    """Every schema problem in ``doc``, each at the position of the offending key or value."""
    if quick_valid(schema, doc.data):
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
