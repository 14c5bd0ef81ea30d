"""The benchmark suite: one entry point, one table, one JSON file.

    python bench/run.py [--quick] [--only NAME]... [--check-baseline] [--write-baseline]

Benchmarks (``--only`` takes these names): ``startup``, ``load``, ``conditions``, ``waiting``,
``signed_file``, and, when their scripts are present, ``step_cost`` and ``server_capacity`` (run
as subprocesses).
Prints name, value, reference, ratio, goal and whether it is met; writes every figure to
``bench/results/bench.json`` (or ``--output``). Every ratio is cost / reference cost, both
measured in this run (lower is better).

``--check-baseline`` compares each ratio with ``bench/baseline.json`` and exits 1 only when one is
more than twice its baseline (large regressions only; below a row's noise floor nothing counts).
``--write-baseline`` merges this run's ratios into that file. Exit 2 when a benchmark crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HERE, PYTHON, row

RESULTS = HERE / "results" / "bench.json"
BASELINE = HERE / "baseline.json"
REGRESSION_FACTOR = 2.0
INTERNAL = ("startup", "load", "conditions", "waiting", "signed_file")
EXTERNAL = ("step_cost", "server_capacity")


def internal(name: str) -> Callable[[bool], list[dict[str, Any]]]:
    module = __import__(name)
    run: Callable[[bool], list[dict[str, Any]]] = module.run
    return run


def script_help(script: Path) -> str:
    done = subprocess.run(
        [PYTHON, str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout + done.stderr


def external(name: str, quick: bool) -> list[dict[str, Any]]:
    """Run ``bench/<name>.py`` (another helper's script, unchanged) and turn its JSON into rows."""
    script = HERE / f"{name}.py"
    usage = script_help(script)
    output = HERE / "results" / f"{name}.json"
    argv = [PYTHON, str(script)]
    if quick:
        if "--steps" in usage:
            argv += ["--steps", "50", "--repeat", "3"]
        if "--clients" in usage:
            argv += ["--clients", "200", "--decisions", "20"]
        if "--idle-seconds" in usage:
            argv += ["--idle-seconds", "3"]
    before = output.stat().st_mtime if output.exists() else None
    print(f"$ {' '.join(argv[1:])}", flush=True)
    done = subprocess.run(argv, text=True, capture_output=True, timeout=1800, check=False)
    sys.stdout.write(done.stdout)
    fresh = output.exists() and output.stat().st_mtime != before
    # server_capacity.py exits 1 when it misses a goal: that is a figure, not a crash
    if done.returncode != 0 and not fresh:
        raise RuntimeError(f"{name}.py exited {done.returncode}: {done.stderr[-2000:]}")
    if not fresh:
        raise RuntimeError(f"{name}.py did not write {output}")
    data = json.loads(output.read_text())
    if name == "step_cost":
        goal = data.get("goal", 1.3)
        return [
            row(
                "step cost: per step, runner / bash",
                value=data["runner"]["per_step_ms"],
                unit="ms",
                reference=data["bash"]["per_step_ms"],
                reference_label="bash -c true ms",
                ratio=data["ratio"],
                goal=f"<= {goal}",
                met=data["ratio"] <= goal,
                details={"argv": argv[1:], "steps": data.get("steps")},
            ),
            *_step_cost_references(data),
        ]
    if name == "server_capacity":
        decided = data["decisions"]["from_submit_response"]
        goals = data["goals"]
        label = f"server capacity ({data['clients']} waiting)"
        return [
            row(
                f"{label}: decision latency median",
                value=decided["median_ms"],
                unit="ms",
                reference=None,
                reference_label="",
                ratio=None,
                goal=f"< {goals['median_ms']:g} ms",
                met=goals["median_met"],
                details={"argv": argv[1:], "result": data},
            ),
            row(
                f"{label}: decision latency p99",
                value=decided["p99_ms"],
                unit="ms",
                reference=None,
                reference_label="",
                ratio=None,
                goal=f"< {goals['p99_ms']:g} ms",
                met=goals["p99_met"],
            ),
        ]
    raise RuntimeError(f"no rows for {name}")


#: below this ratio to bash, a step-cost reference row's change is noise
STEP_COST_NOISE = 2.5


def _step_cost_references(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Where a step's cost goes: what any Python program pays to run the same shell, and the
    runner with its state folder in memory (the rest is the state folder's file system)."""
    bash = data["bash"]["per_step_ms"]
    rows = []
    for key, label in (
        ("python_floor", "step cost: Python spawn floor / bash"),
        ("runner_state_in_memory", "step cost: runner, state in tmpfs / bash"),
    ):
        if data.get(key):
            value = data[key]["per_step_ms"]
            rows.append(
                row(
                    label,
                    value=value,
                    unit="ms",
                    reference=bash,
                    reference_label="bash -c true ms",
                    ratio=value / bash,
                    goal="info",
                    met=None,
                    # at --quick sizes these swing between 1 and 3.4 from run to run of the
                    # same code on a shared machine: only a change past this is a regression
                    floor=STEP_COST_NOISE,
                )
            )
    if data.get("cpu_ratio") is not None:
        rows.append(
            row(
                "step cost: CPU per step (runner and its children) / bash's",
                value=data["runner"]["cpu_per_step_ms"],
                unit="ms",
                reference=data["bash"]["cpu_per_step_ms"],
                reference_label="bash -c true CPU ms",
                ratio=data["cpu_ratio"],
                goal="info",
                met=None,
                floor=STEP_COST_NOISE,
            )
        )
    return rows


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 10_000:
            text = f"{value:,.0f}"
        elif abs(value) >= 100:
            text = f"{value:.0f}"
        elif abs(value) >= 1:
            text = f"{value:.2f}"
        else:
            text = f"{value:.3g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("benchmark", "value", "reference", "ratio", "goal", "met?")
    lines = [
        (
            r["name"],
            fmt(r["value"], r["unit"]),
            f"{fmt(r['reference'])} ({r['reference_label']})" if r["reference_label"] else "-",
            fmt(r["ratio"]),
            r["goal"],
            {True: "yes", False: "NO", None: "-"}[r["met"]],
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    for line in (header, tuple("-" * w for w in widths), *lines):
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


def check_baseline(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> list[str]:
    """Rows whose ratio is over twice the baseline's (or that lost their figure)."""
    known = baseline.get("ratios", {})
    failures = []
    for r in rows:
        if r["name"] not in known:
            continue
        before = known[r["name"]]
        if r["ratio"] is None:
            if before is not None and not (r.get("details") or {}).get("inconclusive"):
                failures.append(f"{r['name']}: no figure (baseline {before:.3g})")
            continue
        if before is None:
            continue
        limit = REGRESSION_FACTOR * max(before, r["floor"] or 0.0)
        if r["ratio"] > limit:
            failures.append(
                f"{r['name']}: ratio {r['ratio']:.3g} > {limit:.3g} (baseline {before:.3g})"
            )
    return failures


def measure(name: str, quick: bool, errors: dict[str, str]) -> list[dict[str, Any]]:
    """The rows of benchmark ``name``; a crash is noted in ``errors`` (exit 2), not raised."""
    print(f"== {name}", flush=True)
    try:
        return internal(name)(quick) if name in INTERNAL else external(name, quick)
    except Exception as exc:
        traceback.print_exc()
        errors[name] = f"{type(exc).__name__}: {exc}"
        return []


def confirmed(
    rows: list[dict[str, Any]],
    made_by: dict[str, str],
    baseline: dict[str, Any],
    quick: bool,
) -> list[str]:
    """The failures that a second measurement of their benchmarks shows again, row for row:
    these machines are noisy, and a regression is one that stays."""
    first = {r["name"]: check_baseline([r], baseline) for r in rows}
    failing = sorted(name for name, found in first.items() if found)
    again: dict[str, dict[str, Any]] = {}
    for bench in sorted({made_by[name] for name in failing if name in made_by}):
        print(f"== {bench} again, to confirm: {', '.join(failing)}", flush=True)
        again.update({r["name"]: r for r in measure(bench, quick, {})})
    print_table([again[name] for name in failing if name in again])
    still: list[str] = []
    for name in failing:
        # a row the second measurement did not give (it crashed or timed out again) stays
        still += check_baseline([again[name]], baseline) if name in again else first[name]
    return still


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (CI)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=[*INTERNAL, *EXTERNAL],
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument(
        "--check-baseline",
        action="store_true",
        help=f"exit 1 if a ratio is over {REGRESSION_FACTOR:g}x bench/baseline.json's",
    )
    parser.add_argument(
        "--write-baseline",
        action="store_true",
        help="merge this run's ratios into bench/baseline.json",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help=argparse.SUPPRESS)
    args = parser.parse_args()

    selected = args.only or [*INTERNAL, *EXTERNAL]
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    #: which benchmark made each row (a regression is measured again by its benchmark)
    made_by: dict[str, str] = {}
    for name in selected:
        if name in EXTERNAL and not (HERE / f"{name}.py").exists():
            print(f"== {name}: bench/{name}.py is not there; skipped", flush=True)
            continue
        started = time.perf_counter()
        found = measure(name, args.quick, errors)
        timings[name] = time.perf_counter() - started
        made_by.update({r["name"]: name for r in found})
        rows += found

    print()
    print_table(rows)
    for name, error in errors.items():
        print(f"ERROR in {name}: {error}")

    result = {
        "quick": args.quick,
        "only": args.only,
        "rows": rows,
        "errors": errors,
        "seconds": timings,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")

    code = 2 if errors else 0
    if args.write_baseline:
        baseline = json.loads(args.baseline.read_text()) if args.baseline.exists() else {}
        ratios = baseline.get("ratios", {})
        ratios.update({r["name"]: r["ratio"] for r in rows if r["ratio"] is not None})
        baseline = {
            "note": "ratios (cost / reference, same run) from `python bench/run.py [--quick] "
            "--write-baseline`; --check-baseline fails above 2x",
            "written": result["time"],
            "python": result["python"],
            "cpus": result["cpus"],
            "ratios": dict(sorted(ratios.items())),
        }
        args.baseline.write_text(json.dumps(baseline, indent=2) + "\n")
        print(f"wrote {args.baseline}")
    if args.check_baseline:
        if not args.baseline.exists():
            print(f"no {args.baseline} to check against")
            return 1
        baseline_data = json.loads(args.baseline.read_text())
        failures = check_baseline(rows, baseline_data)
        if failures:
            failures = confirmed(rows, made_by, baseline_data, args.quick)
        for failure in failures:
            print(f"REGRESSION {failure}")
        if failures:
            return 1
        print(f"baseline: no ratio over {REGRESSION_FACTOR:g}x its baseline")
    return code


if __name__ == "__main__":
    sys.exit(main())
