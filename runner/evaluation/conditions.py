"""Whether a step runs: environment scope, ``--skip``, and its run condition.

Run conditions follow GitHub and Octopus: with no ``if`` a step runs while the deployment has not
failed; a ``${{ }}`` condition without a status function is read as ``success() && (...)``; an
``if`` containing ``#{`` is Octopus's "Variable" run condition: substituted, then judged by
Octopus truthiness, whatever happened before (the template can test ``Octopus.Deployment.Error``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum

from msgspec import Struct

from runner import expressions
from runner import variables as octostache
from runner.errors import ExpressionError
from runner.evaluation.render import Secrets, note_json_reads, render_text
from runner.expressions.parser import IMPLICIT_SUCCESS
from runner.model import Step


class JobStatus(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"


class Decision(Struct, frozen=True):
    run: bool
    reason: str


def status_functions(status: JobStatus) -> dict[str, Callable[..., object]]:
    """GitHub's status check functions, bound to the deployment's status so far."""
    return {
        "success": lambda: status is JobStatus.SUCCESS,
        "failure": lambda: status is JobStatus.FAILURE,
        "cancelled": lambda: status is JobStatus.CANCELLED,
        "always": lambda: True,
    }


def scope_decision(step: Step, environment: str, skipped: frozenset[str]) -> Decision | None:
    """The reason a step is out of this run before its condition is looked at, if any."""
    if step.environments and environment not in step.environments:
        return Decision(False, f"only in {', '.join(step.environments)}")
    if environment in step.exclude_environments:
        return Decision(False, f"excluded from {environment}")
    if step.id in skipped:
        return Decision(False, "skipped with --skip")
    return None


def barrier_decision(
    step: Step, steps: Sequence[Step], passed: Callable[[Step], bool]
) -> Decision | None:
    """Why ``step`` may not run at all, if a barrier before it (the policy's approval) did not
    pass (``passed``): its run condition is not looked at, ``always()`` included. ``steps`` may
    be the workflow's barriers alone (the others are passed over)."""
    for gate in steps:
        if gate.index >= step.index:
            return None
        if gate.barrier and not passed(gate):
            return Decision(False, f"`{gate.name}` did not pass, and no step runs without it")
    return None


def steps_after(
    steps: Sequence[Step], index: int, environment: str, skipped: frozenset[str]
) -> tuple[str, ...]:
    """The names of the steps after ``steps[index]`` that this run may run, as an approval
    request lists them: one skipped with ``--skip`` or out of this environment is not (the
    request of a run started with ``--skip backup`` said "Then: Back up the database, Deploy")."""
    return tuple(
        s.name for s in steps[index + 1 :] if scope_decision(s, environment, skipped) is None
    )


def condition_expression(condition: str) -> tuple[str, bool]:
    """The expression of a ``${{ }}`` condition, with the wrapper removed and GitHub's implicit
    ``success() && (...)`` added when no status function is called; and whether it was added."""

    text = condition.strip()
    templates = expressions.find_templates(text)
    if len(templates) == 1 and templates[0].start == 0 and templates[0].end == len(text):
        text = templates[0].expression.strip()
    if expressions.uses_status_function(text):
        return text, False
    head, tail = IMPLICIT_SUCCESS
    return f"{head}{text}{tail}", True


def evaluate_condition(
    condition: str | bool | None,
    status: JobStatus,
    contexts: Mapping[str, object],
    variables: Mapping[str, str],
    *,
    functions: Mapping[str, Callable[..., object]] | None = None,
    secrets: Secrets | None = None,
) -> Decision:
    """Judge a run condition; raises ``ExpressionError`` for a condition that does not evaluate
    (``secrets``, a run's masker, first learns what it read of a JSON secret, which the
    error's message may quote)."""

    if condition is None or isinstance(condition, bool):
        if condition is False:
            return Decision(False, "`if: false`")
        if status is JobStatus.SUCCESS:
            return Decision(True, "the steps before succeeded")
        return Decision(False, f"the deployment has {_status_words(status)}")
    if "#{" in condition:
        text = render_text(condition, variables, contexts, _all(status, functions), secrets=secrets)
        truthy = octostache.is_truthy(text)
        return Decision(truthy, f"variable condition is {'true' if truthy else 'false'}")
    expression, implicit = condition_expression(condition)
    every = _all(status, functions)
    try:
        value = expressions.evaluate(expression, contexts, functions=every)
    except ExpressionError as exc:
        if secrets is not None:
            note_json_reads(expression, contexts, every, secrets, str(exc))
        raise
    if expressions.is_truthy(value):
        return Decision(True, f"`{condition.strip()}` is true")
    if implicit and status is not JobStatus.SUCCESS:
        return Decision(False, f"the deployment has {_status_words(status)}")
    return Decision(False, f"`{condition.strip()}` is false")


def _all(
    status: JobStatus, extra: Mapping[str, Callable[..., object]] | None
) -> dict[str, Callable[..., object]]:
    functions = status_functions(status)
    functions.update(extra or {})
    return functions


def _status_words(status: JobStatus) -> str:
    return "failed" if status is JobStatus.FAILURE else "been cancelled"
