"""The step kinds by key: the code that runs a step with ``run``, ``uses`` or ``manual``."""

from __future__ import annotations

from runner.steps.base import StepKind
from runner.steps.composite import run_composite_step
from runner.steps.manual import run_manual_step
from runner.steps.script import run_script_step


def step_kinds() -> dict[str, StepKind]:
    return {"run": run_script_step, "uses": run_composite_step, "manual": run_manual_step}
