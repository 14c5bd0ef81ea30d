"""The benchmark suite's plumbing (``bench/run.py``): it runs, and writes JSON and a table.

No timing is asserted here: figures depend on the machine; ``python bench/run.py`` and its
``--check-baseline`` are the place for them.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from helpers.paths import ROOT

RUN = ROOT / "bench" / "run.py"


def run_bench(*args: str, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_quick_conditions_writes_valid_json(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    done = run_bench("--quick", "--only", "conditions", output=output)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(output.read_text())
    assert data["quick"] is True
    assert data["errors"] == {}
    [row] = data["rows"]
    assert row["name"] == "conditions: evaluate() per second"
    for key in ("value", "reference", "ratio", "goal", "met", "unit", "details"):
        assert key in row
    assert row["value"] > 0 and row["reference"] > 0 and row["ratio"] > 0
    assert isinstance(row["met"], bool)
    # the table: a header and the row
    assert "benchmark" in done.stdout and "conditions: evaluate() per second" in done.stdout


def test_check_baseline_fails_only_on_a_large_regression(tmp_path: Path) -> None:
    output, baseline = tmp_path / "bench.json", tmp_path / "baseline.json"
    done = run_bench(
        "--quick",
        "--only",
        "conditions",
        "--write-baseline",
        "--baseline",
        str(baseline),
        output=output,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    name = "conditions: evaluate() per second"
    assert name in json.loads(baseline.read_text())["ratios"]

    # against a baseline 100 times better, the same code is a regression: exit 1
    data = json.loads(baseline.read_text())
    data["ratios"][name] /= 100
    baseline.write_text(json.dumps(data))
    done = run_bench(
        "--quick",
        "--only",
        "conditions",
        "--check-baseline",
        "--baseline",
        str(baseline),
        output=output,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"REGRESSION {name}" in done.stdout

    # against a baseline 100 times worse it passes (only regressions fail)
    data["ratios"][name] *= 10_000
    baseline.write_text(json.dumps(data))
    done = run_bench(
        "--quick",
        "--only",
        "conditions",
        "--check-baseline",
        "--baseline",
        str(baseline),
        output=output,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_committed_baseline_is_valid_json_of_ratios() -> None:
    data = json.loads((ROOT / "bench" / "baseline.json").read_text())
    assert data["ratios"]
    # a waiting runner uses no measurable CPU: its ratio is 0
    assert all(isinstance(v, int | float) and v >= 0 for v in data["ratios"].values())


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``bench/run.py`` as a module (its own imports, ``common``, found beside it)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("run")


def figure(name: str, ratio: float | None, **details: object) -> dict[str, object]:
    """A row of the table with only what the baseline check reads."""
    row = importlib.import_module("common").row
    found: dict[str, object] = row(
        name,
        value=ratio,
        unit="x",
        reference=1.0,
        reference_label="",
        ratio=ratio,
        goal="info",
        met=None,
        details=details,
    )
    return found


def test_a_figure_lost_to_a_timeout_fails_the_check_and_one_below_the_noise_does_not(
    bench: ModuleType,
) -> None:
    """A linearity ratio whose first interval cost nothing measurable (at ``--quick`` sizes,
    250 more steps against the machine's swings) has no figure: that is not a regression, as a
    size that timed out is."""

    def linearity(inconclusive: bool) -> dict[str, object]:
        return figure("load: plan linearity 250..1000", None, inconclusive=inconclusive)

    baseline = {"ratios": {"load: plan linearity 250..1000": 0.88}}
    assert bench.check_baseline([linearity(True)], baseline) == []
    assert bench.check_baseline([linearity(False)], baseline) == [
        "load: plan linearity 250..1000: no figure (baseline 0.88)"
    ]


def test_a_regression_counts_only_when_measuring_it_again_shows_it_again(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = {"ratios": {"a": 1.0, "b": 1.0, "c": 1.0}}
    first = [figure("a", 5.0), figure("b", 5.0), figure("c", 1.0)]
    failures = bench.check_baseline(first, baseline)
    assert [f.split(":")[0] for f in failures] == ["a", "b"]
    measured: list[str] = []

    def again(name: str, quick: bool, errors: dict[str, str]) -> list[dict[str, object]]:
        measured.append(name)
        return [figure("a", 1.1), figure("c", 9.0)]  # "a" was noise; "b" is lost this time

    monkeypatch.setattr(bench, "measure", again)
    made_by = {"a": "one", "b": "two", "c": "one"}
    kept = bench.confirmed(first, made_by, baseline, True)
    assert sorted(measured) == ["one", "two"]
    # "c" passed the first time: only what failed twice (or could not be measured again) counts
    assert [f.split(":")[0] for f in kept] == ["b"]
