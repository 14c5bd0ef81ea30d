"""Octostache conformance: every case of the shared ``octostache/vectors.json`` must pass.

The vectors are facts from OctopusDeploy/Octostache's test suite (see the README beside them).
One test per case, id ``fixture-name-index``; the module skips when the file is absent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers.paths import conformance_dir

from runner.variables import substitute

VECTORS = conformance_dir() / "octostache" / "vectors.json"


def _cases() -> list[Any]:
    if not VECTORS.is_file():
        return [
            pytest.param(
                None,
                id="vectors-absent",
                marks=pytest.mark.skip(reason=f"Octostache vectors not found at {VECTORS}"),
            )
        ]
    data = json.loads(VECTORS.read_text(encoding="utf-8"))
    params = []
    for fixture, cases in data.items():
        for index, case in enumerate(cases):
            params.append(pytest.param(case, id=f"{fixture}-{case['name']}-{index}"))
    return params


def _clock() -> datetime:
    return datetime(2030, 5, 22, 9, 5, tzinfo=UTC)


@pytest.mark.parametrize("case", _cases())
def test_vector(case: dict[str, Any]) -> None:
    result = substitute(case["template"], case["variables"], now=_clock)
    assert result == case["expected"]
