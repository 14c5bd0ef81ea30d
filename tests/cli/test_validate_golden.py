"""Golden diagnostics: `runner validate` on each tests/data/invalid/*.yml prints the `.out` beside
it exactly. Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/cli`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.paths import ROOT

from runner.cli.validate import validate_files

INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yml"))
VALID = sorted((ROOT / "tests" / "data" / "valid").glob("*.yml")) + sorted(
    (ROOT / "workflows").glob("*.yml")
)


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")


def test_there_are_enough_golden_cases() -> None:
    assert len(INVALID) >= 25


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_file_prints_golden_output(path: Path) -> None:
    relative = str(path.relative_to(ROOT))
    code, report = validate_files([relative], "text")
    golden = path.with_suffix(".out")
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(report, encoding="utf-8")
    assert code == 1
    assert report == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_file_is_clean(path: Path) -> None:
    code, report = validate_files([str(path.relative_to(ROOT))], "text")
    assert (code, report) == (0, "")
