"""Numbers a workflow gives the clock: each has a bound the clock can hold. `timeout-minutes:
1e308`, `delay-seconds: 1e308` and `timeout-minutes: .nan` (NaN passes every `maximum`) validated
clean, then ended the run in an internal error (exit 70, the run left `running`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.cli import cli_in

from runner.load import check_file
from runner.load.yaml import load_yaml

STEP = "name: w\nsteps:\n  - id: a\n    name: A\n"

CASES = {
    "step timeout": (
        STEP + "    run: echo hi\n    timeout-minutes: 1e308\n",
        "6:22: `timeout-minutes` must be at most 525600, got 1e+308",
    ),
    "retry delay": (
        STEP + "    run: exit 1\n    retry: {attempts: 2, delay-seconds: 1e308}\n",
        "6:41: `delay-seconds` must be at most 3600, got 1e+308",
    ),
    "manual timeout": (
        STEP + "    manual: {instructions: x, timeout-minutes: 1e308}\n",
        "5:48: `timeout-minutes` must be at most 525600, got 1e+308",
    ),
    "guided-failure timeout": (
        "name: w\nguided-failure: {timeout-minutes: 1e308}\nsteps:\n  - id: a\n    name: A\n"
        "    run: exit 1\n",
        "2:35: `timeout-minutes` must be at most 525600, got 1e+308",
    ),
    "not a number": (
        STEP + "    run: echo hi\n    timeout-minutes: .nan\n",
        "6:22: `.nan` is not a number; write a number, or quote it as text",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_number_the_clock_cannot_hold_is_a_diagnostic(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, expected = CASES[case]
    path = tmp_path / "w.yml"
    path.write_text(text, encoding="utf-8")
    shown = [
        f"{d.location.line}:{d.location.column}: {d.message}" for d in check_file(path).diagnostics
    ]
    assert expected in shown, shown
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    ran = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev")
    assert ran.returncode == 2, ran  # was 70 (a run), or a wait of 1e308 minutes (a manual step)
    assert "internal error" not in ran.stderr
    assert not (tmp_path / ".runner" / "runs").exists()


def test_a_quoted_nan_is_text() -> None:
    assert load_yaml("x.yml", b"a: '.nan'\nb: .5\n").data == {"a": ".nan", "b": 0.5}
