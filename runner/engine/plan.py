"""The dry run: which steps would run, why, in which parallel group, and who would be asked.

Pure: it simulates the run with every script step succeeding and every manual step decided as
``--assume`` says, so a dry run can follow either branch of an approval with simulated outputs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Literal

from msgspec import Struct, field

from runner import expressions
from runner import variables as octostache
from runner.errors import ExpressionError, expression_at
from runner.evaluation.conditions import (
    Decision,
    JobStatus,
    barrier_decision,
    evaluate_condition,
    scope_decision,
)
from runner.evaluation.contexts import Progress, RunFacts, StepState
from runner.evaluation.render import render_text
from runner.expressions import ast
from runner.load.build import text
from runner.load.expression_checks import ALL, HOST
from runner.load.yaml import expression_in
from runner.masking import MASK, Masker
from runner.model import Identity, Step, Workflow
from runner.policy import Verdict
from runner.steps.outputs import manual_outputs
from runner.variables.resolve import VariableSet

Assume = Literal["proceed", "abort"]

_STEP_OUTPUT = re.compile(r"steps\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\.\s*outputs", re.I)
_ACTION_OUTPUT = re.compile(r"Octopus\.Action\[([^\]]+)\]\.Output", re.I)


class ApprovalPlan(Struct, frozen=True):
    """Who a manual step would ask, through which sources, and what the dry run assumes."""

    teams: tuple[str, ...]
    quorum: tuple[tuple[str, int], ...]
    sources: tuple[str, ...]
    prevent_self_approval: bool
    timeout_minutes: float | None
    on_timeout: str
    assumed: Assume
    instructions: str
    #: (name, type, label, required, pattern, options) of each field a proceed must give
    fields: tuple[tuple[str, str, str, bool, str | None, tuple[str, ...]], ...] = ()
    title: str = ""
    #: why the title or instructions are shown as written: an expression in them could not be
    #: evaluated in the dry run (it is when the step runs)
    unrendered: str = ""


class PlannedStep(Struct, frozen=True):
    step: Step
    runs: bool | None  # None: only known at run time
    reason: str
    group: int
    approval: ApprovalPlan | None = None


class Plan(Struct, frozen=True):
    workflow: Workflow
    environment: str
    run_id: str
    inputs: Mapping[str, Any]
    variables: VariableSet
    steps: tuple[PlannedStep, ...]
    outcome: str
    secrets: tuple[str, ...] = field(default=())
    #: the environment policy's verdict, if a policy applies
    policy: Verdict | None = None
    #: each variable's value with the ``#{}`` inside it substituted, as steps will see it
    expanded: Mapping[str, str] = field(default_factory=dict)
    #: why manual steps could not be decided here (runner.engine.preflight.Problem)
    problems: tuple[Any, ...] = ()


def make_plan(
    workflow: Workflow,
    environment: str,
    *,
    inputs: Mapping[str, Any],
    variables: VariableSet,
    skip: frozenset[str] = frozenset(),
    assume: Assume = "proceed",
    fields: Mapping[str, str] | None = None,
    notes: str = "(dry run)",
    run_id: str = "dry-run",
    created_by: Identity | None = None,
    approver: Identity | None = None,
    policy: Verdict | None = None,
) -> Plan:
    """Simulate the run in ``environment`` and say what each step would do."""
    facts = RunFacts(run_id, environment, created_by or Identity(), inputs)
    status = JobStatus.SUCCESS
    planned: list[PlannedStep] = []
    group = 0
    run_time_steps = {s.id for s in workflow.steps if s.kind != "manual"}
    run_time_names = {s.name.lower() for s in workflow.steps if s.kind != "manual"}
    #: the earlier steps in this environment (lower-cased ids): what they give is only known in
    #: a run (a script's outputs, an approver's notes and fields), and whether a step with an
    #: `if:` runs depends on the branch the run takes, which the dry run follows only one of
    in_environment: set[str] = set()
    #: the steps the dry run has pass (a barrier that did not bars every step after it)
    passed: set[str] = set()
    barriers = tuple(s for s in workflow.steps if s.barrier)
    secrets = _Secrets((*variables.secrets(), *_secret_inputs(workflow, inputs)))
    base_env = dict(workflow.env)
    progress = Progress(workflow, facts, variables, {k: _text(v) for k, v in inputs.items()})
    values = progress.values
    expanded = _expanded(workflow, variables, values, secrets)
    for step in workflow.steps:
        if not (step.with_previous and planned):
            group += 1
        contexts = progress.contexts({**base_env, **step.env})
        decision = scoped = scope_decision(step, environment, skip) or barrier_decision(
            step, barriers, lambda gate: gate.id in passed
        )
        runs: bool | None
        if decision is None:
            try:
                decision = evaluate_condition(step.condition, status, contexts, values)
                runs = decision.run
            except ExpressionError as exc:
                reason = f"condition fails: {mask_secrets(exc.message, secrets.values)}"
                decision, runs = Decision(False, reason), None
            if _depends_on_run_time(step.condition, run_time_steps, run_time_names):
                runs = None
                decision = Decision(False, f"decided at run time: {decision.reason}")
        else:
            runs = False
        approval = None
        if step.manual is not None:
            try:
                approval = _approval_plan(
                    workflow, step, assume, values, contexts, in_environment, runs, secrets
                )
            except ExpressionError as exc:
                # its message may quote a value it was given (a secret input's, in format())
                exc.message = mask_secrets(exc.message, secrets.values)
                raise
        planned.append(PlannedStep(step, runs, decision.reason, group, approval))
        if scoped is None:
            in_environment.add(step.id.lower())
        state = StepState()
        if runs is False:
            state.outcome = state.conclusion = "skipped"
        elif step.manual is not None:
            approved = assume == "proceed"
            state.outcome = state.conclusion = "success" if approved else "failure"
            # a real abort carries no field values; neither does a simulated one
            _manual_outputs(
                state, approved, notes, approver or Identity(), (fields or {}) if approved else {}
            )
            if not approved:
                status = JobStatus.FAILURE
                progress.fail((f"Manual intervention in step '{step.name}' was aborted", notes))
        else:
            state.outcome = state.conclusion = "success"
        if state.conclusion == "success":
            passed.add(step.id)
        progress.finish(step, state)
    outcome = "success" if status is JobStatus.SUCCESS else "aborted"
    return Plan(
        workflow,
        environment,
        run_id,
        inputs,
        variables,
        tuple(planned),
        outcome,
        secrets.values,
        policy,
        expanded,
    )


class _Secrets:
    """What the plan masks: the run's secrets, and the values its texts compute from them
    (``#{Password | ToUpper}``, ``${{ fromJSON(secrets.Db).password }}``), which a run masks
    too (:meth:`Masker.derive`, :meth:`Masker.add_parts`)."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = secrets
        self._masker = Masker()
        for secret in secrets:
            self._masker.add(secret)
        self.derive = self._masker.derive
        self.add_parts = self._masker.add_parts

    @property
    def values(self) -> tuple[str, ...]:
        known = set(self._secrets)
        return (*self._secrets, *(v for v in self._masker.values if v not in known))


def _expanded(
    workflow: Workflow, variables: VariableSet, values: Mapping[str, str], secrets: _Secrets
) -> dict[str, str]:
    """Non-secret variables whose value holds ``#{}``, substituted as a step would see them
    (a ``${{ }}`` inside a variable's value stays text, as in a run). A variable that needs
    too much work is refused at its definition."""

    expanded = {}
    for item in variables.items:
        if item.value is not None and not item.secret and "#{" in item.value:
            defined = workflow.variables.get(item.name)
            with expression_at(defined.location if defined is not None else None):
                expanded[item.name] = octostache.substitute(
                    item.value, values, derived=secrets.derive
                )
    return expanded


def _manual_outputs(
    state: StepState, approved: bool, notes: str, person: Identity, fields: Mapping[str, str]
) -> None:
    state.outputs, state.octopus = manual_outputs(approved, notes, person, fields)


def _approval_plan(
    workflow: Workflow,
    step: Step,
    assume: Assume,
    values: Mapping[str, str],
    contexts: Mapping[str, object],
    earlier: set[str],
    runs: bool | None,
    secrets: _Secrets,
) -> ApprovalPlan:

    manual = step.manual
    assert manual is not None
    unrendered: list[str] = []

    def rendered(key: str, template: str) -> str:
        # an expression that reads what an earlier step gives in a run
        # (``fromJSON(steps.build.outputs.meta)``, an approver's field) cannot be evaluated by a
        # dry run, which has none of it: the text is shown as written, as a condition that needs
        # them is "decided at run time", and the step renders it when it runs (and fails there
        # if it cannot). The text's other expressions would fail there too, whatever the earlier
        # steps give: if the step may run, the run is refused before its first step. A step the
        # dry run skips is shown as written, whatever fails in it
        where = step.at(f"manual.{key}")
        reads = any(
            _reads_steps(t.expression, earlier) for t in expressions.find_templates(template)
        )
        try:
            with expression_in(where, template):
                text = render_text(template, values, contexts, secrets=secrets)
            if not reads:
                return text
            # it rendered, but with nothing where the earlier steps' outputs go (`Deploy  to
            # dev?`): shown as written, as a text that cannot render without them is
            unrendered.append("it reads what earlier steps give, which a dry run does not have")
        except ExpressionError as exc:
            if runs is not False and not _reads_steps(_failing(template, exc.offset), earlier):
                raise
            unrendered.append(exc.message)
        if runs is not False:
            with expression_in(where, template):
                render_text(_without_steps(template, earlier), values, contexts, secrets=secrets)
        return template

    instructions = rendered("instructions", manual.instructions)
    title = rendered("title", manual.title) if manual.title else step.name
    labels = [
        rendered(f"fields.{i}.label", f.label) if f.label else ""
        for i, f in enumerate(manual.fields)
    ]
    return ApprovalPlan(
        teams=manual.teams,
        quorum=tuple((q.team, q.count) for q in manual.require),
        sources=manual.sources or workflow.approvals.sources,
        prevent_self_approval=manual.prevent_self_approval,
        timeout_minutes=manual.timeout_minutes,
        on_timeout=manual.on_timeout,
        assumed=assume,
        instructions=instructions,
        fields=tuple(
            (f.name, f.type, label, f.required, f.pattern, f.options)
            for f, label in zip(manual.fields, labels, strict=True)
        ),
        title=title,
        unrendered=unrendered[0] if unrendered else "",
    )


def _failing(template: str, offset: int | None) -> str:
    """The expression of ``template``'s ``${{ }}`` that starts at ``offset`` (empty if none)."""
    if offset is None:
        return ""
    return next(
        (t.expression for t in expressions.find_templates(template) if t.start == offset), ""
    )


def _reads_steps(expression: str, ids: set[str]) -> bool:
    """Whether ``expression`` reads a step among ``ids`` (``steps.<id>``, ``steps['<id>']``).
    A ``#{}`` in it is its text, never substituted."""
    try:
        tree = expressions.parse(expression, ALL, HOST)
    except ExpressionError:
        return False
    return tree is not None and any(
        isinstance(node, ast.Index)
        and isinstance(node.target, ast.NamedValue)
        and node.target.name == "steps"
        and isinstance(node.key, ast.Literal)
        and str(node.key.value).lower() in ids
        for node in ast.walk(tree)
    )


def _without_steps(template: str, ids: set[str]) -> str:
    """``template`` with each ``${{ }}`` that reads a step among ``ids`` replaced by one of the
    same length that gives ``0``: the rest renders as it would (a ``#{if}`` still drops what its
    false branch holds), and an error's offset is the same in both."""
    parts: list[str] = []
    last = 0
    for found in expressions.find_templates(template):
        length = found.end - found.start
        if length >= 6 and _reads_steps(found.expression, ids):
            parts += [template[last : found.start], "${{" + " " * (length - 6) + "0}}"]
            last = found.end
    parts.append(template[last:])
    return "".join(parts)


def mask_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with each of ``secrets`` as ``***``: a short one too, and the encoded forms of
    the others as a run masks them (JSON, URL, base64, ...: ``toJSON(inputs.token)``)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _masker(secrets).mask(text)


@functools.lru_cache(maxsize=16)
def _masker(secrets: tuple[str, ...]) -> Masker:
    masker = Masker()
    for secret in secrets:
        masker.add(secret)
    return masker


def _secret_inputs(workflow: Workflow, inputs: Mapping[str, Any]) -> list[str]:
    """The values of the run's secret inputs, which the plan masks as it masks secret
    variables (in a text rendered with them, or a reason quoting one)."""
    return [
        _text(inputs[name])
        for name, spec in workflow.inputs.items()
        if spec.secret and _text(inputs.get(name)) != ""
    ]


def _depends_on_run_time(condition: str | bool | None, steps: set[str], names: set[str]) -> bool:
    """Whether a condition reads outputs that only a real run produces (script steps')."""
    if not isinstance(condition, str):
        return False
    if any(m.group(1) in steps for m in _STEP_OUTPUT.finditer(condition)):
        return True
    return any(m.group(1).lower() in names for m in _ACTION_OUTPUT.finditer(condition))


def _text(value: Any) -> str:

    return text(value)
