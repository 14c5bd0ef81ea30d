"""Octostache's JSON paths: ``#{Config.Db.Host}`` where ``Config`` holds a JSON document.

Mirrors ``CustomStringParsers/JsonParser.cs``, which uses Newtonsoft's lenient reader, so this
accepts what that reader does in practice: unquoted property names, single-quoted strings,
comments, trailing commas, ``undefined``, ``NaN``/``Infinity``. Values come back as strings the
way Newtonsoft prints them (``True``, compact JSON for objects and arrays, ``""`` for null).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache

from runner.characters import whole_characters
from runner.variables.octostache.binding import Binding

_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BARE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "/": "/", "\\": "\\"}
_MISSING = object()
JsonValue = object


class _Invalid(Exception):
    pass


class _Reader:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def skip(self) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r\n\ufeff\xa0":
                self.i += 1
            elif s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = len(s) if end < 0 else end
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end < 0:
                    raise _Invalid
                self.i = end + 2
            else:
                return

    def value(self, depth: int = 0) -> object:
        if depth > 64:
            raise _Invalid
        self.skip()
        if self.i >= len(self.s):
            raise _Invalid
        c = self.s[self.i]
        if c == "{":
            return self.obj(depth)
        if c == "[":
            return self.array(depth)
        if c in "\"'":
            return self.string()
        number = _NUMBER.match(self.s, self.i)
        if number:
            self.i = number.end()
            text = number.group()
            if re.fullmatch(r"-?\d+", text):
                return int(text)
            return float(text)
        word = _BARE.match(self.s, self.i)
        if word is None and self.s.startswith("-Infinity", self.i):
            self.i += 9
            return -math.inf
        if word is None:
            raise _Invalid
        self.i = word.end()
        literals: dict[str, object] = {
            "true": True,
            "false": False,
            "null": None,
            "undefined": None,
            "NaN": math.nan,
            "Infinity": math.inf,
        }
        if word.group() in literals:
            return literals[word.group()]
        raise _Invalid

    def string(self) -> str:
        s = self.s
        quote = s[self.i]
        self.i += 1
        out: list[str] = []
        # a \u escape gave half of a character: `\ud83d\ude00` decoded one escape at a time
        # is two halves of one character (see runner.characters)
        halves = False
        while self.i < len(s):
            c = s[self.i]
            self.i += 1
            if c == quote:
                return whole_characters("".join(out)) if halves else "".join(out)
            if c != "\\":
                out.append(c)
                continue
            if self.i >= len(s):
                break
            e = s[self.i]
            self.i += 1
            if e == "u":
                digits = s[self.i : self.i + 4]
                if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                    raise _Invalid
                code = int(digits, 16)
                halves = halves or 0xD800 <= code <= 0xDFFF
                out.append(chr(code))
                self.i += 4
            else:
                out.append(_ESCAPES.get(e, e))
        raise _Invalid

    def obj(self, depth: int) -> dict[str, object]:
        self.i += 1
        result: dict[str, object] = {}
        while True:
            self.skip()
            if self.i < len(self.s) and self.s[self.i] == "}":
                self.i += 1
                return result
            if self.i < len(self.s) and self.s[self.i] in "\"'":
                key = self.string()
            else:
                bare = re.compile(r"[^\s:{}\[\],'\"]+").match(self.s, self.i)
                if bare is None:
                    raise _Invalid
                key = bare.group()
                self.i = bare.end()
            self.skip()
            if not self.s.startswith(":", self.i):
                raise _Invalid
            self.i += 1
            result[key] = self.value(depth + 1)
            self.skip()
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith("}", self.i):
                raise _Invalid

    def array(self, depth: int) -> list[object]:
        self.i += 1
        result: list[object] = []
        while True:
            self.skip()
            if self.s.startswith("]", self.i):
                self.i += 1
                return result
            result.append(self.value(depth + 1))
            self.skip()
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith("]", self.i):
                raise _Invalid


def _load(text: str) -> object:
    # Small documents are cached (the same value is often read step by step); big ones are not
    # kept alive between calls.
    return _load_cached(text) if len(text) <= 65_536 else _read(text)


@lru_cache(maxsize=64)
def _load_cached(text: str) -> object:
    return _read(text)


def _read(text: str) -> object:
    reader = _Reader(text)
    try:
        value = reader.value()
        reader.skip()
    except (_Invalid, RecursionError, ValueError):
        return _MISSING
    # Newtonsoft refuses additional content after the document.
    return value if reader.i == len(text) else _MISSING


def _scalar(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)


def _binding(value: object) -> Binding:
    """``ConvertJTokenToBinding``."""
    return Binding(_scalar(value))


def lookup(text: str, prop: str) -> Binding | None:
    """``JsonParser.TryParse(binding, property)``: a step into a JSON value, or ``None``."""
    if not text or text[0] not in "{[\"'-.0123456789tfnuNI/ \t\r\n":
        return None
    value = _load(text)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, dict):
        # JObject[property]: exact match; a missing property is an empty value, not missing.
        return _binding(value.get(prop))
    if isinstance(value, list):
        if not re.fullmatch(r"\s*[+-]?\d+\s*", prop):
            return None
        index = int(prop)
        return _binding(value[index] if 0 <= index < len(value) else None)
    # A scalar document answers every property with itself (TryParseJValue).
    return Binding(_scalar(value))


def items(text: str) -> list[Binding] | None:
    """``JsonParser.TryParse(binding, out bindings)`` for ``#{each}``: arrays and objects only."""
    if not text or text.lstrip()[:1] not in ("{", "[", "/"):
        return None
    value = _load(text)
    if isinstance(value, list):
        return [_binding(v) for v in value]
    if isinstance(value, dict):
        result = []
        for key, v in value.items():
            node = Binding(key)
            node.children["key"] = Binding(key)
            node.children["value"] = _binding(v)
            result.append(node)
        return result
    return None
