"""``--input name=value`` against the workflow's typed inputs."""

from __future__ import annotations

import pytest

from runner.errors import UsageError
from runner.inputs import resolve_inputs
from runner.model import Input


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_a_number_input_must_be_finite(raw: str) -> None:
    # these parsed as floats and the run record held NaN or Infinity, which JSON does not have
    with pytest.raises(UsageError) as caught:
        resolve_inputs({"n": Input("n", "number")}, {"n": raw})
    assert caught.value.message == f"input 'n' must be a finite number, got {raw!r}"


@pytest.mark.parametrize(("raw", "value"), [("3", 3), ("-2.5", -2.5), ("1e3", 1000)])
def test_finite_numbers_are_taken(raw: str, value: float) -> None:
    assert resolve_inputs({"n": Input("n", "number")}, {"n": raw}) == {"n": value}
