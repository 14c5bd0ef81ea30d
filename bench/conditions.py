"""Condition evaluation with parsing cached: evaluations per second (goal over 100,000/s).

``runner.expressions.evaluate`` of a typical ``if:`` with the engine's status functions, against
the same comparison written as a Python lambda (the reference: what the check costs at the least
in Python). Rounds of each alternate, and the median round is taken.
"""

from __future__ import annotations

import time
from typing import Any

from common import median, row

EXPRESSION = "success() && inputs.env == 'production' && steps.build.outputs.ok == 'true'"
GOAL_PER_S = 100_000


def run(quick: bool) -> list[dict[str, Any]]:
    from runner.evaluation.conditions import JobStatus, status_functions
    from runner.expressions import evaluate

    functions = status_functions(JobStatus.SUCCESS)
    contexts: dict[str, object] = {
        "env": {},
        "vars": {},
        "inputs": {"env": "production", "version": "1.4.2"},
        "steps": {"build": {"outputs": {"ok": "true"}, "outcome": "success", "conclusion": ""}},
        "deployment": {"id": "bench", "environment": "production"},
        "runner": {"os": "Linux", "arch": "X64"},
        "job": {"status": "success"},
    }
    success = functions["success"]

    def reference(c: dict[str, Any]) -> bool:
        return bool(
            success()
            and c["inputs"]["env"] == "production"
            and c["steps"]["build"]["outputs"]["ok"] == "true"
        )

    assert evaluate(EXPRESSION, contexts, functions=functions) is True
    assert reference(contexts) is True

    count = 20_000 if quick else 100_000
    rounds = 5 if quick else 9
    expression_times, reference_times = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            evaluate(EXPRESSION, contexts, functions=functions)
        expression_times.append((time.perf_counter() - started) / count)
        started = time.perf_counter()
        for _ in range(count):
            reference(contexts)
        reference_times.append((time.perf_counter() - started) / count)
    per_eval = median(expression_times)
    per_reference = median(reference_times)
    rate = 1 / per_eval
    return [
        row(
            "conditions: evaluate() per second",
            value=rate,
            unit="/s",
            reference=1 / per_reference,
            reference_label="Python lambda /s",
            ratio=per_eval / per_reference,
            goal=f"> {GOAL_PER_S:,}/s",
            met=rate > GOAL_PER_S,
            details={
                "expression": EXPRESSION,
                "evaluations_per_round": count,
                "round_us_per_eval": [t * 1e6 for t in expression_times],
                "reference_round_us_per_eval": [t * 1e6 for t in reference_times],
            },
        )
    ]
