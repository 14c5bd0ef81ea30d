"""Fuzzing the workflow loader: bytes -> YAML -> schema -> model -> semantic checks.

Property: ``runner.load.check_file(path, raw=...)`` never raises. Whatever the bytes, it returns a
:class:`Loaded` that either carries a workflow (and no error diagnostics) or at least one error
diagnostic, each located inside the file. Inputs are random bytes, random text, and near-valid
workflows: the project's valid workflows (``tests/data/valid/*.yml``, ``workflows/*.yml``)
mutated as text (lines dropped, doubled, re-indented, tokens spliced in) and as data (a value
replaced, a key dropped or added, a list emptied) before being dumped back to YAML.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from helpers.paths import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.load import Loaded, check_file
from runner.load.yaml import load_yaml

FUZZ = settings.get_profile("runner-fuzz-slow")

SEEDS = sorted((ROOT / "tests" / "data" / "valid").glob("*.yml")) + sorted(
    (ROOT / "workflows").glob("*.yml")
)
SEED_BYTES = {path: path.read_bytes() for path in SEEDS}
#: where a fuzzed file claims to live: beside the real workflows, so that ``uses: ./actions/..``
#: and the workspace lookup behave as for a real file
FUZZ_PATH = ROOT / "workflows" / "fuzzed.yml"
#: one load of a near-valid workflow takes milliseconds; this bounds a pathological one
TIME_LIMIT = 10.0

#: YAML and workflow tokens worth splicing into a file
TOKENS = [
    ":",
    "- ",
    "? ",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!python/object:os.system ",
    "!custom ",
    "{",
    "}",
    "[",
    "]",
    "'",
    '"',
    "|",
    ">-",
    "#",
    "\t",
    "---",
    "...",
    "%YAML 1.1",
    "~",
    "null",
    "true",
    "0x1F",
    "0o17",
    "1e400",
    ".nan",
    "-.inf",
    "${{ ",
    " }}",
    "${{ inputs.version }}",
    "${{ steps.x.outputs.y }}",
    "${{ secrets.S }}",
    "#{",
    "#{Octopus.Environment.Name}",
    "#{if A}x#{/if}",
    "hashFiles('**')",
    "manual:",
    "run: echo",
    "uses: ./actions/http-check",
    "uses: ../../../etc",
    "id: a",
    "if: always()",
    "start: with-previous",
    "environments: [production]",
    "teams: [nobody]",
    "require: [{team: x, count: 2}]",
    "timeout-minutes: -1",
    "\u202e",
    "\ufeff",
    "\x85",
    "\u2028",
    "é",
    "\r\n",
    "\r",
]


def assert_outcome(loaded: Loaded, raw: bytes) -> None:
    """What every outcome must look like, whatever the input."""
    assert isinstance(loaded, Loaded)
    errors = loaded.errors
    if loaded.workflow is None:
        assert errors, "no workflow and no error"
    else:
        assert not errors, "a workflow despite errors"
    for diagnostic in loaded.diagnostics:
        assert diagnostic.message
        assert diagnostic.location.line >= 1
        assert diagnostic.location.column >= 1
        assert diagnostic.severity in ("error", "warning", "info")
        str(diagnostic)  # rendering never fails


def load(raw: bytes, limit: float = TIME_LIMIT) -> Loaded:
    started = time.perf_counter()
    loaded = check_file(FUZZ_PATH, raw=raw)
    took = time.perf_counter() - started
    # aliases too: their expansion is charged before it is converted (docs/security.md,
    # "Hostile-input limits"), so no input is exempt from the bound any more
    assert took < limit, f"loading took {took:.1f} s"
    assert_outcome(loaded, raw)
    return loaded


def test_the_seeds_are_valid() -> None:
    """The control: every seed loads, so mutations start from something the runner accepts."""
    assert SEEDS, "no seed workflows found"
    for path, raw in SEED_BYTES.items():
        loaded = check_file(FUZZ_PATH, raw=raw)
        assert loaded.workflow is not None, (path, [str(d) for d in loaded.errors])


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(raw: bytes) -> None:
    load(raw)


@FUZZ
@given(st.lists(st.sampled_from([*TOKENS, " ", "\n", "  ", "a", "1"]), max_size=80))
def test_random_token_soup_never_raises(tokens: list[str]) -> None:
    load("".join(tokens).encode("utf-8", "surrogatepass"))


# -- text mutations of valid workflows ----------------------------------------------------------


@st.composite
def text_mutants(draw: st.DrawFn) -> bytes:
    raw = SEED_BYTES[draw(st.sampled_from(SEEDS))]
    lines = raw.decode("utf-8").split("\n")
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            lines = [""]
        index = draw(st.integers(0, len(lines) - 1))
        operation = draw(
            st.sampled_from(["drop", "double", "indent", "dedent", "splice", "swap", "truncate"])
        )
        line = lines[index]
        if operation == "drop":
            del lines[index]
        elif operation == "double":
            lines.insert(index, line)
        elif operation == "indent":
            lines[index] = draw(st.sampled_from([" ", "  ", "\t"])) + line
        elif operation == "dedent":
            lines[index] = line[draw(st.integers(1, 4)) :]
        elif operation == "splice":
            at = draw(st.integers(0, len(line)))
            token = draw(st.sampled_from(TOKENS) | st.text(max_size=5))
            lines[index] = line[:at] + token + line[at:]
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        else:
            lines = lines[:index]
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        return data
    # a few raw byte flips too: invalid UTF-8 and control bytes inside an otherwise valid file
    flips = draw(st.lists(st.tuples(st.integers(0, max(len(data) - 1, 0)), st.integers(0, 255))))
    mutable = bytearray(data)
    for at, value in flips[:3]:
        if mutable:
            mutable[at % len(mutable)] = value
    return bytes(mutable)


@FUZZ
@given(text_mutants())
def test_text_mutations_of_valid_workflows_never_raise(raw: bytes) -> None:
    load(raw)


# -- data mutations of valid workflows ---------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from([t for t in TOKENS if t.strip()]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(["id", "run", "manual"]), inner)
    ),
    max_leaves=6,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


@st.composite
def data_mutants(draw: st.DrawFn) -> bytes:
    raw = SEED_BYTES[draw(st.sampled_from(SEEDS))]
    data = load_yaml("seed.yml", raw).data
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        operation = draw(st.sampled_from(["replace", "delete", "add", "empty", "copy"]))
        if operation == "replace":
            parent[path[-1]] = draw(VALUES)
        elif operation == "delete":
            del parent[path[-1]]
        elif operation == "add" and isinstance(parent, dict):
            key = draw(st.text(min_size=1, max_size=10) | st.sampled_from(["id", "if", "env"]))
            parent[key] = draw(VALUES)
        elif operation == "add" and isinstance(parent, list):
            parent.insert(draw(st.integers(0, len(parent))), draw(VALUES))
        elif operation == "empty":
            value = parent[path[-1]]
            if isinstance(value, (dict, list)):
                value.clear()
        else:  # copy a subtree elsewhere: duplicate ids and names
            other = draw(st.sampled_from(paths))
            try:
                value = json.loads(json.dumps(_parent(data, other)[other[-1]]))
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            parent[path[-1]] = value
    # JSON is YAML: the mutated data as flow YAML, every string quoted
    text = json.dumps(data, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return (
        text.replace("NaN", ".nan")
        .replace("-Infinity", "-.inf")
        .replace("Infinity", ".inf")
        .encode()
    )


@FUZZ
@given(data_mutants())
def test_data_mutations_of_valid_workflows_never_raise(raw: bytes) -> None:
    load(raw)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 5000 + b"]" * 5000, id="deep-flow-sequence"),
        pytest.param(b"{a: " * 5000 + b"1" + b"}" * 5000, id="deep-flow-mapping"),
        pytest.param(b"- " * 3000 + b"x\n", id="deep-block-sequence"),
        pytest.param(b"name: x\nsteps: " + b"[" * 300 + b"]" * 300 + b"\n", id="deep-steps"),
        pytest.param(b"name: x\nsteps:\n  - id: a\n    run: " + b"${{ " * 2000, id="open-exprs"),
        pytest.param(b"x: !!binary AAAA\n", id="binary-tag"),
        pytest.param(b"? [a, b]\n: 1\n", id="complex-key"),
        pytest.param(b"<<: 1\n", id="merge-of-a-scalar"),
        pytest.param(b"a: 1\n---\nb: 2\n", id="two-documents"),
    ],
)
def test_hostile_yaml_shapes_are_diagnosed(raw: bytes) -> None:
    load(raw)


# -- regressions found by this fuzzing ---------------------------------------------------------


LOAD_IN_A_CHILD = """
import sys
from runner.load import check_file
loaded = check_file("fuzzed.yml", raw=sys.stdin.buffer.read())
assert loaded.workflow is None and loaded.errors
"""


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"a: &a {x: *a, y: *a}\n", id="mapping"),
        pytest.param(b"a: &a [*a, *a]\n", id="sequence"),
    ],
)
def test_a_self_referencing_alias_is_refused_quickly(raw: bytes) -> None:
    """In a child process, so that the bound holds whatever the loader is doing (a signal cannot
    interrupt a garbage collection of a million nodes)."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_CHILD], input=raw, capture_output=True, timeout=3.0
    )
    assert done.returncode == 0, done.stderr.decode()
