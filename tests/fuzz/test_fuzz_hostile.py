"""Fuzzing every parser with deep and aliased structures (issue #18).

Property: whatever the nesting (flow ``[``/``{``, block sequences, explicit keys, indentation, up to
40,000 levels), the aliases ("billion laughs", wide fan-outs, references to an ancestor) and the
merge keys (long chains, fan-outs), each parser ends within ``TIME_LIMIT`` in a result or its
documented refusal, never another exception (a ``RecursionError``) nor a crash:

- YAML: the workflow loader, the people file, the policy, composite actions;
- JSON: approval bodies, run records, ``runner.bounded.loads`` (lock files, server answers,
  request and context files), and the server's body check in front of FastAPI.

Shapes are drawn as small recipes (kinds and depths, with depths around the limits more likely)
and expanded into text, so that an example costs its parse, not its generation. A segfault here
(the C composer's stack) would end the whole run: ``tests/attacks/test_hostile_input.py`` has the
known crashing inputs in subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fuzzkit import time_limit
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.approvals.document import parse_body
from runner.approvals.identity import parse_directory
from runner.bounded import MAX_JSON_DEPTH, loads
from runner.engine.record import RunRecord
from runner.errors import InputLimitError, VerificationError, WorkflowError
from runner.load import check_file
from runner.load.action import load_action
from runner.load.yaml import MAX_DEPTH, LoadError, load_yaml
from runner.policy import parse_policy
from runner.server.bodies import BoundedBodies

FUZZ = settings.get_profile("runner-fuzz-slow")
#: a generous bound per input (they take milliseconds): it catches hangs, it is no benchmark
TIME_LIMIT = 10.0

DEPTHS = st.one_of(
    st.sampled_from([1, 2, MAX_DEPTH, MAX_DEPTH + 1, 1_000, 5_000, 30_000, 40_000]),
    st.integers(1, 40_000),
)

# -- YAML ------------------------------------------------------------------------------------------


def nested_yaml(kind: str, depth: int) -> str:
    if kind == "flow-sequence":
        return "x: " + "[" * depth + "1" + "]" * depth + "\n"
    if kind == "flow-mapping":
        return "x: " + "{a: " * depth + "1" + "}" * depth + "\n"
    if kind == "block-sequence":
        return "x:\n" + "- " * depth + "1\n"
    if kind == "explicit-keys":
        return "x:\n" + "? " * depth + "1\n"
    if kind == "unclosed":
        return "x: " + "[" * depth + "\n"
    # indentation: the file stays under the size limit (depth squared bytes)
    depth = min(depth, 3_000)
    return "x:\n" + "".join(" " * i + "a:\n" for i in range(1, depth)) + " " * depth + "1\n"


def aliased_yaml(kind: str, size: int, width: int) -> str:
    if kind == "laughs":
        lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
        for i in range(1, size % 30 + 2):
            lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
        return "\n".join(lines) + "\n"
    if kind == "fan-out":
        return f"a: &a [{', '.join(['x'] * width)}]\nb: [{', '.join(['*a'] * size)}]\n"
    if kind == "merge-chain":
        lines = ["a0: &a0 {k0: v}"]
        lines += [f"a{i}: &a{i} {{<<: [*a{i - 1}], k{i}: v}}" for i in range(1, size)]
        return "\n".join(lines) + "\n"
    if kind == "merge-fan-out":
        lines = [f"a0: &a0 {{{', '.join(f'k{j}: v' for j in range(width))}}}"]
        for i in range(1, size % 12 + 2):
            sources = ", ".join([f"*a{i - 1}"] * width)
            lines.append(f"a{i}: &a{i} {{<<: [{sources}], own{i}: v}}")
        return "\n".join(lines) + "\n"
    if kind == "merge-nested":  # mappings nested in merge keys, by indentation
        depth = size % 1_500 + 1
        return "a:\n" + "".join(" " * i + "<<:\n" for i in range(1, depth)) + " " * depth + "k: v\n"
    if kind == "merge-self":
        return "a: &a {k: v, <<: *a}\n" * (size % 3 + 1)
    # an alias inside the value it names, at some depth
    return "a: &a " + "[" * (size % 50) + "*a" + "]" * (size % 50) + "\n"


YAML_TEXTS = st.one_of(
    st.builds(
        nested_yaml,
        st.sampled_from(
            [
                "flow-sequence",
                "flow-mapping",
                "block-sequence",
                "explicit-keys",
                "indentation",
                "unclosed",
            ]
        ),
        DEPTHS,
    ),
    st.builds(
        aliased_yaml,
        st.sampled_from(
            [
                "laughs",
                "fan-out",
                "merge-chain",
                "merge-fan-out",
                "merge-nested",
                "merge-self",
                "self-alias",
            ]
        ),
        st.integers(1, 3_000),
        st.integers(1, 60),
    ),
)


def check_diagnostics(diagnostics: list[Any], text: str) -> None:
    assert diagnostics
    lines = max(text.count("\n"), 1) + 1
    for diagnostic in diagnostics:
        assert 1 <= diagnostic.location.line <= lines, str(diagnostic)
        assert diagnostic.location.column >= 1
        assert diagnostic.message


@FUZZ
@given(YAML_TEXTS, st.sampled_from(["load_yaml", "workflow", "people", "policy", "action"]))
def test_deep_and_aliased_yaml_is_loaded_or_refused(
    tmp_path_factory: Any, text: str, parser: str
) -> None:
    raw = text.encode()
    with time_limit(TIME_LIMIT):
        if parser == "workflow":
            text = "name: n\nsteps: []\n" + text
            loaded = check_file("fuzzed.yml", raw=text.encode())
            if loaded.workflow is None:
                check_diagnostics(loaded.errors, text)
            return
        if parser == "action":
            path = Path(tmp_path_factory.mktemp("action")) / "action.yml"
            path.write_bytes(raw)
            parse: Any = load_action.__wrapped__  # type: ignore[attr-defined]
        else:
            parse = {
                "load_yaml": lambda path: load_yaml("fuzzed.yml", raw),
                "people": lambda path: parse_directory(raw, "people.yml"),
                "policy": lambda path: parse_policy(raw, "policy.yml"),
            }[parser]
            path = None
        try:
            parse(path)
        except (LoadError, WorkflowError) as exc:
            check_diagnostics(exc.diagnostics, text)


# -- JSON ------------------------------------------------------------------------------------------


def nested_json(kind: str, depth: int, decoy: str) -> str:
    """JSON nested ``depth`` deep; ``decoy`` strings hold brackets that must not count."""
    item = json.dumps(decoy)
    if kind == "arrays":
        inner = ("[" + item + ", ") * depth + "1" + "]" * depth
    elif kind == "objects":
        inner = ('{"a": ' + item + ', "b": ') * depth + "1" + "}" * depth
    elif kind == "unclosed":
        inner = "[" * depth
    else:  # wide, not deep: many brackets, all shallow
        inner = "[" + ", ".join(["[" + item + "]"] * depth) + "]"
    return '{"version": 1, "steps": [], "x": ' + inner + "}"


JSON_TEXTS = st.builds(
    nested_json,
    st.sampled_from(["arrays", "objects", "unclosed", "wide"]),
    DEPTHS,
    st.sampled_from(["", "]]]]", "[[[[", '\\"]', "}{", "\\\\"]),
)


def deepest(value: Any) -> int:
    depth, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            depth = max(depth, level)
            stack.extend(
                (v, level + 1) for v in (node.values() if isinstance(node, dict) else node)
            )
    return depth


def through_middleware(body: bytes) -> tuple[int, Any]:
    """The server's body check, with FastAPI's own parse behind it: (status, parsed body)."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        try:  # what FastAPI does with a body (a RecursionError here would be a 500)
            seen["body"] = json.loads(message["body"])
        except json.JSONDecodeError:
            status = 422
        else:
            status = 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]

    scope = {"type": "http", "method": "PUT", "headers": [(b"content-type", b"application/json")]}
    # in a thread of its own: this one may hold another library's running loop (Playwright's
    # sync API keeps one while the web tests' browser is open, in the same worker process), and
    # asyncio.run refuses to start a loop there
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, BoundedBodies(app)(scope, receive, send)).result()
    return seen["status"], seen.get("body")


@FUZZ
@given(JSON_TEXTS, st.sampled_from(["loads", "record", "approval", "server"]))
def test_deep_json_is_parsed_or_refused(text: str, parser: str) -> None:
    with time_limit(TIME_LIMIT):
        if parser == "approval":
            with contextlib.suppress(VerificationError):
                parse_body(text.encode())
            return
        if parser == "server":
            status, body = through_middleware(text.encode())
            assert status in (200, 422)
            if status == 200:
                assert deepest(body) <= MAX_JSON_DEPTH
            return
        try:
            value = loads(text) if parser == "loads" else RunRecord.from_json(text)
        except InputLimitError as exc:
            assert "nested" in str(exc)
        except ValueError:
            assert text.count("[") != text.count("]") or parser == "record"
        else:
            if parser == "loads":
                assert deepest(value) <= MAX_JSON_DEPTH
