"""GitHub's published expression test vectors (actions/languageservices ``expressions/testdata``).

One test per case, collected from every JSON file of ``<conformance>/gha-expressions``; the whole
module is skipped (with a reason) when the vectors are not there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from helpers.paths import conformance_dir

from runner.errors import ExpressionError
from runner.expressions import evaluate

# ``options.skip`` names implementations excused from a case. The vectors only excuse the
# TypeScript port where it differs from GitHub's service (absolute error positions, the memory
# limit), and this implementation follows GitHub there, so only a skip naming Python applies.
OWN_NAMES = frozenset({"python"})


def _cases() -> Iterator[Any]:
    folder = conformance_dir() / "gha-expressions"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        yield pytest.param(
            {}, id="absent", marks=pytest.mark.skip(reason=f"no expression vectors in {folder}")
        )
        return
    for path in files:
        groups = json.loads(path.read_text(encoding="utf-8"))
        for group, cases in groups.items():
            for index, case in enumerate(cases):
                skip = OWN_NAMES.intersection((case.get("options") or {}).get("skip") or ())
                marks = [pytest.mark.skip(reason=f"excused for {sorted(skip)}")] if skip else []
                yield pytest.param(case, id=f"{path.stem}:{group}:{index}", marks=marks)


def kind_name(value: object) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list | tuple):
        return "Array"
    if isinstance(value, Mapping):
        return "Object"
    return type(value).__name__


def same(actual: object, expected: object) -> bool:
    """Equal as the vectors mean it: numbers numerically, objects with their key order."""
    if kind_name(actual) != kind_name(expected):
        return False
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return actual == expected
    if isinstance(expected, int | float):
        a, e = float(actual), float(expected)  # type: ignore[arg-type]
        return a == e or (math.isnan(a) and math.isnan(e))
    if isinstance(expected, list):
        items = list(actual)  # type: ignore[call-overload]
        return len(items) == len(expected) and all(map(same, items, expected))
    assert isinstance(actual, Mapping) and isinstance(expected, Mapping)
    return list(actual) == list(expected) and all(same(actual[k], expected[k]) for k in expected)


@pytest.mark.parametrize("case", list(_cases()))
def test_vector(case: dict[str, Any]) -> None:
    contexts = case.get("contexts") or {}
    if "err" in case:
        with pytest.raises(ExpressionError) as caught:
            evaluate(case["expr"], contexts)
        assert caught.value.kind == case["err"]["kind"], caught.value.message
        assert case["err"]["value"] in caught.value.message
        return
    result = evaluate(case["expr"], contexts)
    assert kind_name(result) == case["result"]["kind"], result
    assert same(result, case["result"]["value"]), result
