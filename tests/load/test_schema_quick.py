"""The quick schema check (``runner.load.quick_schema.quick_valid``) against jsonschema itself.

The quick check may only say "valid" where jsonschema finds no error: were it to say so wrongly, an
invalid workflow would load without a diagnostic. It may say "not sure" (False) for a valid
document; then jsonschema decides. The properties mutate real documents of each schema and compare.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.load.quick_schema import quick_check as _quick_check
from runner.load.quick_schema import quick_valid as _quick_valid
from runner.load.schema import _validator
from runner.load.yaml import LoadError, load_yaml


def _documents(paths: list[Path]) -> list[Any]:
    return [load_yaml(str(p), p.read_bytes()).data for p in paths]


SEEDS = {
    "workflow": _documents(
        sorted((ROOT / "workflows").glob("*.yml"))
        + sorted((ROOT / "tests" / "data" / "valid").glob("*.yml"))
    ),
    "action": _documents(sorted((ROOT / "actions").glob("*/action.yml"))),
    "policy": [
        {
            "environments": {
                "production": {
                    "allowed-refs": ["refs/heads/main", "refs/tags/v*"],
                    "approval": {"teams": ["release-managers"], "timeout-minutes": 30},
                    "freeze": [
                        {
                            "reason": "Friday",
                            "days": ["fri"],
                            "start": "16:00",
                            "end": "24:00",
                            "time-zone": "UTC",
                        },
                        {"reason": "Year end", "from": "2026-12-20T00:00:00Z", "to": "2027-01-02"},
                    ],
                    "promotion": {"after": ["staging"]},
                    "break-glass": {"teams": ["sre"]},
                },
                "staging": {},
            }
        }
    ],
}

#: values the schemas care about, so that mutants hit patterns, enums and formats
INTERESTING = [
    "16:00",
    "24:00",
    "24:30",
    "25:00",
    "mon",
    "fri",
    "proceed",
    "abort",
    "bash",
    "sh",
    "pwsh",
    "text",
    "choice",
    "./actions/http-check",
    "owner/repo@v1",
    "${{ inputs.x }}",
    "#{Var}",
    "2026-12-20T00:00:00Z",
    "not a time",
    "a b",
    "Step [1]",
    "",
    "-",
    "ok-id",
    "1abc",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 100),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
    st.sampled_from(INTERESTING),
)
KEYS = st.sampled_from(
    [
        "id",
        "name",
        "run",
        "uses",
        "with",
        "if",
        "env",
        "manual",
        "teams",
        "require",
        "fields",
        "shell",
        "required",
        "environments",
        "timeout-minutes",
        "days",
        "start",
        "end",
        "from",
        "to",
        "x",
    ]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(max_size=6), inner),
    max_leaves=5,
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


@st.composite
def mutants(draw: st.DrawFn, schema: str) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(SEEDS[schema])))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        operation = draw(st.sampled_from(["replace", "delete", "add"]))
        if operation == "replace":
            parent[path[-1]] = draw(VALUES)
        elif operation == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        else:
            parent.insert(draw(st.integers(0, len(parent))), draw(VALUES))
    return data


def jsonschema_valid(schema: str, data: Any) -> bool:
    return next(iter(_validator(schema).iter_errors(data)), None) is None


@pytest.mark.parametrize("schema", sorted(SEEDS))
def test_the_seeds_are_valid_for_both(schema: str) -> None:
    """A control: the quick check does decide the common case, else it would prove nothing.
    The policy schema uses keywords it does not compile (``format``): jsonschema alone checks it.
    """
    assert SEEDS[schema]
    compiled = _quick_check(schema) is not None
    assert compiled == (schema != "policy")
    for data in SEEDS[schema]:
        assert jsonschema_valid(schema, data)
        assert _quick_valid(schema, data) is compiled


def test_every_invalid_golden_file_is_not_quick_valid() -> None:
    checked = 0
    for path in sorted((ROOT / "tests" / "data" / "invalid").glob("*.yml")):
        try:
            data = load_yaml(str(path), path.read_bytes()).data
        except LoadError:  # not YAML at all: nothing to compare
            continue
        if not jsonschema_valid("workflow", data):
            checked += 1
            assert _quick_valid("workflow", data) is False, path.name
    assert checked >= 5


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("schema", sorted(SEEDS))
@SETTINGS
@given(data=st.data())
def test_quick_valid_only_where_jsonschema_agrees(schema: str, data: st.DataObject) -> None:
    document = data.draw(mutants(schema))
    if _quick_valid(schema, document):
        assert jsonschema_valid(schema, document), document
