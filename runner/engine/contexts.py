"""The ``${{ }}`` contexts and the Octopus system variables of a run. Pure."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.model import Step, Workflow
from runner.variables.resolve import VariableSet

#: contexts a key may use, as GitHub restricts them (``secrets`` never in ``if``)
ALL_CONTEXTS = ("env", "vars", "inputs", "secrets", "steps", "deployment", "runner")
CONDITION_CONTEXTS = ("env", "vars", "inputs", "steps", "deployment", "runner")


@dataclass(frozen=True)
class Identity:
    """A person as the people-and-teams file knows them (or as CI / git names them)."""

    id: str = ""
    username: str = ""
    display_name: str = ""
    email: str = ""


@dataclass
class StepState:
    """What later steps can see of a finished step."""

    outcome: str = ""  # success | failure | cancelled | skipped
    conclusion: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    #: Octopus-style output variables (``Octopus.Action[Name].Output.X``), names as given
    octopus: dict[str, str] = field(default_factory=dict)
    #: ``Octopus.Step[...].Status.Code`` when the conclusion does not give it (guided skip)
    status_code: str | None = None


@dataclass(frozen=True)
class RunFacts:
    run_id: str
    environment: str
    created_by: Identity
    inputs: Mapping[str, Any]


def system_variables(
    workflow: Workflow,
    facts: RunFacts,
    steps: Mapping[str, StepState],
    error: tuple[str, str] | None = None,
    memo: dict[str, tuple[StepState, dict[str, str]]] | None = None,
) -> dict[str, str]:
    """Octopus's system variables for the run so far, including each step's output variables.

    ``memo`` keeps each step's variables while its state is the same object (a run asks for
    them at every step)."""
    result = {
        "Octopus.Deployment.Id": facts.run_id,
        "Octopus.Deployment.Name": workflow.name,
        "Octopus.Environment.Name": facts.environment,
        "Octopus.Deployment.CreatedBy.Id": facts.created_by.id,
        "Octopus.Deployment.CreatedBy.Username": facts.created_by.username,
        "Octopus.Deployment.CreatedBy.DisplayName": facts.created_by.display_name,
        "Octopus.Deployment.CreatedBy.EmailAddress": facts.created_by.email,
    }
    if error:
        result["Octopus.Deployment.Error"] = error[0]
        result["Octopus.Deployment.ErrorDetail"] = error[1]
    for step in workflow.steps:
        state = steps.get(step.id)
        if state is None:
            continue
        kept = memo.get(step.id) if memo is not None else None
        if kept is None or kept[0] is not state:
            kept = (state, step_variables(step, state))
            if memo is not None:
                memo[step.id] = kept
        result.update(kept[1])
    return result


def step_variables(step: Step, state: StepState) -> dict[str, str]:
    """The system variables one finished step adds: its status and its output variables."""
    code = state.status_code or _octopus_status(state.conclusion)
    result = {
        f"Octopus.Step[{step.name}].Status.Code": code,
        f"Octopus.Step[{step.id}].Status.Code": code,
    }
    for name, value in state.octopus.items():
        # outputs come from scripts and people: never expanded as templates themselves
        result[f"Octopus.Action[{step.name}].Output.{name}"] = value.replace("#{", "##{")
    return result


def step_context(state: StepState) -> dict[str, object]:
    """What ``steps.<id>`` shows of a finished step."""
    return {
        "outputs": dict(state.outputs),
        "outcome": state.outcome,
        "conclusion": state.conclusion,
    }


class Progress:
    """The system variables, ``#{}`` values and ``${{ }}`` contexts of a run so far, grown one
    finished step at a time: rebuilding them for each step made a plan of n steps cost n².

    The mappings it hands out are shared and updated in place as steps finish: readers (the
    evaluators) never change them, and each reads them before the next step is added."""

    def __init__(
        self,
        workflow: Workflow,
        facts: RunFacts,
        variables: VariableSet,
        inputs_as_text: Mapping[str, str],
    ) -> None:
        self.system = system_variables(workflow, facts, {}, None)
        self.values: dict[str, str] = {**variables.values(), **inputs_as_text, **self.system}
        self.base = expression_contexts(workflow, facts, variables, {}, {}, self.system)
        self.steps: dict[str, object] = {}
        self.base["steps"] = self.steps
        vars_context = self.base["vars"]
        assert isinstance(vars_context, dict)
        #: every mapping that holds the system variables, kept equal as they grow
        self.holders: tuple[dict[str, str], ...] = (self.system, self.values, vars_context)

    def _add(self, variables: Mapping[str, str]) -> None:
        for holder in self.holders:
            holder.update(variables)

    def finish(self, step: Step, state: StepState) -> None:
        self._add(step_variables(step, state))
        self.steps[step.id] = step_context(state)

    def fail(self, error: tuple[str, str]) -> None:
        self._add(
            {"Octopus.Deployment.Error": error[0], "Octopus.Deployment.ErrorDetail": error[1]}
        )

    def contexts(self, env: Mapping[str, str]) -> dict[str, object]:
        return {**self.base, "env": dict(env)}


def _octopus_status(conclusion: str) -> str:
    # Octopus's step status codes: Succeeded, Failed, Skipped, Canceled, Pending
    return {
        "success": "Succeeded",
        "failure": "Failed",
        "skipped": "Skipped",
        "cancelled": "Canceled",
    }.get(conclusion, "Pending")


def expression_contexts(
    workflow: Workflow,
    facts: RunFacts,
    variables: VariableSet,
    steps: Mapping[str, StepState],
    env: Mapping[str, str],
    system: Mapping[str, str],
) -> dict[str, object]:
    """The contexts a ``${{ }}`` expression sees. Secret variables are only in ``secrets``."""
    plain = {r.name: r.value or "" for r in variables.items if not r.secret}
    plain.update(system)
    return {
        "env": dict(env),
        "vars": plain,
        "secrets": {r.name: r.value or "" for r in variables.items if r.secret},
        "inputs": dict(facts.inputs),
        "steps": {step_id: step_context(state) for step_id, state in steps.items()},
        "deployment": {
            "id": facts.run_id,
            "environment": facts.environment,
            "workflow": workflow.name,
            "created-by": facts.created_by.username,
        },
        "runner": {
            "os": {"Linux": "Linux", "Darwin": "macOS", "Windows": "Windows"}.get(
                platform.system(), platform.system()
            ),
            "arch": _arch(),
        },
    }


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "X64", "amd64": "X64", "aarch64": "ARM64", "arm64": "ARM64"}.get(
        machine, machine.upper()
    )
