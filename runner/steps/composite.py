"""Composite actions: ``uses: ./actions/NAME`` runs ``action.yml``'s steps in GitHub's format.

Inside the action, ``inputs`` are the action's inputs (``with`` plus defaults), ``steps`` are the
action's own steps, and outputs are the ``value`` expressions of its ``outputs``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from msgspec import Struct, structs

from runner.errors import RunnerError, StepError, expression_at
from runner.evaluation.conditions import JobStatus, evaluate_condition
from runner.evaluation.render import render_text
from runner.load.action import MAX_NESTING, Action, ActionStep, load_action
from runner.load.checks import action_path
from runner.load.yaml import expression_in
from runner.steps.base import StepContext, StepResult
from runner.steps.script import Script, run_script


class Deadline(Struct, frozen=True):
    """A ``uses:`` step's ``timeout-minutes``, for all of its action's steps together (as
    GitHub's): each script gets what is left, and none starts once it has passed."""

    minutes: float
    #: ``time.monotonic()`` when the step must end
    at: float

    @classmethod
    def of(cls, minutes: float | None) -> Deadline | None:
        return None if minutes is None else cls(minutes, time.monotonic() + minutes * 60)

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    @property
    def error(self) -> str:
        return f"timed out after {self.minutes:g} minutes"


def run_composite_step(ctx: StepContext) -> StepResult:
    step = ctx.step
    assert step.uses is not None
    deadline = Deadline.of(step.timeout_minutes)
    given = {name: ctx.render_at(f"with.{name}", value) for name, value in step.with_.items()}
    return run_action(
        ctx, step.uses, given, depth=1, after_cancel=ctx.cancelled(), deadline=deadline
    )


def action_inputs(action: Action, given: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The action's inputs from ``with`` and defaults; and warnings for unexpected ones."""
    warnings = []
    unexpected = sorted(set(given) - set(action.inputs))
    if unexpected:
        valid = ", ".join(f"'{n}'" for n in action.inputs)
        listed = ", ".join(f"'{n}'" for n in unexpected)
        warnings.append(f"Unexpected input(s) {listed}, valid inputs are [{valid}]")
    missing = [
        name
        for name, spec in action.inputs.items()
        if spec.required and not given.get(name) and spec.default is None
    ]
    if missing:
        # GitHub's wording (actions/runner ActionManifestManager)
        raise StepError(f"Input required and not supplied: {missing[0]}")
    values = {name: spec.default or "" for name, spec in action.inputs.items()}
    values.update({k: v for k, v in given.items() if k in action.inputs})
    return values, warnings


def run_action(
    ctx: StepContext,
    uses: str,
    given: Mapping[str, str],
    depth: int,
    after_cancel: bool = False,
    deadline: Deadline | None = None,
) -> StepResult:
    if depth > MAX_NESTING:
        raise StepError(f"actions nest more than {MAX_NESTING} deep at {uses}")
    action = load_action(action_path(ctx.workspace, uses))
    inputs, warnings = action_inputs(action, given)
    for warning in warnings:
        ctx.log.annotation(ctx.step, "warning", warning, {})
    states: dict[str, dict[str, object]] = {}
    status = JobStatus.SUCCESS
    result = StepResult("success")
    for nested in action.steps:
        if deadline is not None and deadline.passed():
            # nothing more of the action runs, whatever its conditions say
            result.outcome, result.exit_code = "failure", None
            result.timed_out, result.error = True, deadline.error
            break
        contexts = {
            **ctx.contexts,
            "inputs": dict(inputs),
            "steps": dict(states),
            "job": {"status": status.value},
        }
        with expression_at(nested.location):
            decision = evaluate_condition(nested.condition, status, contexts, ctx.variables)
        if not decision.run:
            states[nested.id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            continue
        outcome = _run_nested(ctx, action, nested, contexts, depth, after_cancel, deadline)
        if deadline is not None and outcome.timed_out:
            # stopped at the step's deadline: no `continue-on-error` holds, nothing more runs
            result.outcome, result.exit_code = "failure", outcome.exit_code
            result.timed_out, result.error = True, f"{nested.name}: {outcome.error}"
            break
        tolerated = outcome.outcome == "failure" and _truthy(nested.continue_on_error)
        conclusion = "success" if tolerated else outcome.outcome
        states[nested.id] = {
            "outputs": outcome.outputs,
            "outcome": outcome.outcome,
            "conclusion": conclusion,
        }
        result.env.update(outcome.env)
        result.path = [*outcome.path, *result.path]
        result.summary += outcome.summary
        result.secret_outputs |= outcome.secret_outputs
        result.octopus.update(outcome.octopus)
        if conclusion != "success":
            status = JobStatus.FAILURE
            result.outcome = outcome.outcome
            result.exit_code = outcome.exit_code
            result.error = f"{nested.name}: {outcome.error or 'failed'}"
            result.timed_out = outcome.timed_out
    contexts = {**ctx.contexts, "inputs": dict(inputs), "steps": dict(states)}
    for name, template in action.outputs.items():
        try:
            result.outputs[name] = render_text(
                template, ctx.variables, contexts, secrets=ctx.masker
            )
        except RunnerError as exc:
            raise StepError(f"output {name!r} of {uses}: {exc.message}") from None
    return result


def _run_nested(
    ctx: StepContext,
    action: Action,
    nested: ActionStep,
    contexts: dict[str, object],
    depth: int,
    after_cancel: bool = False,
    deadline: Deadline | None = None,
) -> StepResult:
    def render(template: str) -> str:
        return render_text(template, ctx.variables, contexts, secrets=ctx.masker)

    def render_at(key: str, template: str) -> str:
        # the action's file, where its step wrote the expression
        with expression_in(nested.at(key), template):
            return render(template)

    env = dict(ctx.env)
    env.update({name: render_at(f"env.{name}", value) for name, value in nested.env.items()})
    folder = str(action.path.parent)
    env["RUNNER_ACTION_PATH"] = env["GITHUB_ACTION_PATH"] = folder
    inner = structs.replace(
        ctx,
        render=render,
        env=env,
        contexts=contexts,
        step_dir=ctx.step_dir / f"{depth}-{nested.index}-{nested.id}",
        where=nested.at,
    )
    if nested.uses:
        given = {name: render_at(f"with.{name}", value) for name, value in nested.with_.items()}
        return run_action(inner, nested.uses, given, depth + 1, after_cancel, deadline)
    script = Script(
        render_at("run", nested.run or ""),
        nested.shell,
        nested.working_directory,
        deadline.minutes if deadline else None,
        deadline.at if deadline else None,
    )
    return run_script(inner, script, after_cancel=after_cancel)


def _truthy(value: bool | str) -> bool:
    return value if isinstance(value, bool) else value.strip().lower() == "true"
