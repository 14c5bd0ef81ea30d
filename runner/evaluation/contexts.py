"""The ``${{ }}`` contexts and the Octopus system variables of a run. Pure."""

from __future__ import annotations

import platform
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from msgspec import Struct, field

from runner import variables as octostache
from runner.model import Identity, Step, Workflow
from runner.variables.resolve import VariableSet

if TYPE_CHECKING:
    from runner.engine.record import RunRecord, StepRecord

#: contexts a key may use, as GitHub restricts them (``secrets`` never in ``if``)
ALL_CONTEXTS = ("env", "vars", "inputs", "secrets", "steps", "deployment", "runner")
CONDITION_CONTEXTS = ("env", "vars", "inputs", "steps", "deployment", "runner")


class StepState(Struct):
    """What later steps can see of a finished step."""

    outcome: str = ""  # success | failure | cancelled | skipped
    conclusion: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    #: Octopus-style output variables (``Octopus.Action[Name].Output.X``), names as given
    octopus: dict[str, str] = field(default_factory=dict)
    #: ``Octopus.Step[...].Status.Code`` when the conclusion does not give it (guided skip)
    status_code: str | None = None


class RunFacts(Struct, frozen=True):
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
        # who started the run is the deployer's word (`RUNNER_ACTOR`), and an error quotes a
        # failed step's text (a file command's line) or an abort's notes: all text, never
        # expanded as templates themselves (a step's bad `$RUNNER_OUTPUT` line of
        # `#{DbPassword | Substring 0 3}` printed 3 letters of the secret in an always() step)
        "Octopus.Deployment.CreatedBy.Id": as_text(facts.created_by.id),
        "Octopus.Deployment.CreatedBy.Username": as_text(facts.created_by.username),
        "Octopus.Deployment.CreatedBy.DisplayName": as_text(facts.created_by.display_name),
        "Octopus.Deployment.CreatedBy.EmailAddress": as_text(facts.created_by.email),
    }
    if error:
        result["Octopus.Deployment.Error"] = as_text(error[0])
        result["Octopus.Deployment.ErrorDetail"] = as_text(error[1])
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
        result[f"Octopus.Action[{step.name}].Output.{name}"] = as_text(value)
    return result


def as_text(value: str) -> str:
    """A value for ``#{}`` that reads as itself, not as a template (``octostache.escape``: an
    ``#{`` doubled into ``##{`` left ``##{`` a template); what ``#{each}`` or a JSON path cuts
    out of it is text too (``octostache.evaluator.literal``)."""
    return octostache.escape(value)


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


#: statuses of a step that has not finished: it is not in ``states`` (``steps.<id>``)
UNFINISHED = frozenset({"pending", "running", "waiting"})


class _Built(Struct, frozen=True):
    """The shared ``#{}`` values and ``${{ }}`` contexts, and what they were built from."""

    values: dict[str, str]
    contexts: dict[str, object]
    #: the deployment error they show
    error: tuple[str, str] | None
    #: the ids of the finished steps they hold, and the index of the last one in the workflow
    finished: frozenset[str]
    last: int


class ContextBuilder:
    """The ``#{}`` values and ``${{ }}`` contexts (but ``env`` and ``job``) of a running run,
    built once and grown as steps finish: a step asks for them two or three times (its
    condition, its run, its ``continue-on-error``), each build goes over every step of the run,
    and building them for each step made a run of n steps cost n².

    The engine says what changed: ``step_finished`` when a step got its final status (under
    the run's lock), ``invalidate`` after any other change to the record (a resume setting
    steps back, a cancelled run's error). Steps' states and system variables are kept per
    ``StepRecord`` object: records are frozen, so an unchanged object is an unchanged step.

    The mappings handed out are never changed afterwards (a parallel step may be reading
    them): growing copies them."""

    def __init__(
        self,
        workflow: Workflow,
        record: RunRecord,
        facts: RunFacts,
        variables: VariableSet,
        inputs_as_text: Mapping[str, str],
        secret_values: Mapping[tuple[str, str], str],
    ) -> None:
        self.workflow = workflow
        self.record = record
        self.facts = facts
        self.variables = variables
        self.inputs_as_text = inputs_as_text
        #: values of secret outputs, known to this process only; a step's are added before
        #: its record is replaced with its final status
        self.secret_values = secret_values
        self._index = {step.id: i for i, step in enumerate(workflow.steps)}
        #: step id -> (the record it was built from, its state)
        self._states: dict[str, tuple[StepRecord, StepState]] = {}
        #: step id -> (the state, its system variables), see ``system_variables``
        self._system: dict[str, tuple[StepState, dict[str, str]]] = {}
        self._built: _Built | None = None
        # a build reads the record while a parallel step may finish: a step finished during
        # a build would be lost from it without this lock (it then either is in the build,
        # and ``step_finished`` builds again, or is not, and ``step_finished`` adds it)
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget the shared build: the next read builds it again from the whole record."""
        with self._lock:
            self._built = None

    def step_finished(self, rec: StepRecord) -> None:
        """``rec`` has its final status: add it to the shared build when the run is going
        forward (it comes after every step finished before, and the deployment error is the
        same), else build again at the next read, in the workflow's order."""
        with self._lock:
            self._finished(rec)

    def _finished(self, rec: StepRecord) -> None:
        built = self._built
        if built is None:
            return
        at = self._index.get(rec.id, -1)
        if at <= built.last or rec.id in built.finished or self._error() != built.error:
            self._built = None
            return
        state = self.state(rec)
        added = step_variables(self.workflow.steps[at], state)
        contexts = built.contexts
        steps_context = {**cast(dict[str, object], contexts["steps"]), rec.id: step_context(state)}
        vars_context = {**cast(dict[str, str], contexts["vars"]), **added}
        self._built = _Built(
            {**built.values, **added},
            {**contexts, "vars": vars_context, "steps": steps_context},
            built.error,
            built.finished | {rec.id},
            at,
        )

    def shared(self) -> tuple[dict[str, str], dict[str, object]]:
        """The values and the contexts of the run as it stands (the caller copies them to
        change them)."""
        with self._lock:
            built = self._built
            if built is None:
                built = self._built = self._build()
        return built.values, built.contexts

    def states(self) -> dict[str, StepState]:
        """What ``steps.<id>`` and Octopus's output variables show of finished steps."""
        return {
            rec.id: self.state(rec) for rec in self.record.steps if rec.status not in UNFINISHED
        }

    def state(self, rec: StepRecord) -> StepState:
        """A finished step's state, with the values of its secret outputs."""
        kept = self._states.get(rec.id)
        if kept is not None and kept[0] is rec:
            return kept[1]
        outputs = dict(rec.outputs)
        octopus = dict(rec.octopus)
        for (step_id, name), value in self.secret_values.items():
            if step_id == rec.id:
                if name.startswith("Octopus:"):
                    octopus[name.removeprefix("Octopus:")] = value
                else:
                    outputs[name] = value
        state = StepState(rec.outcome, rec.conclusion, outputs, octopus, status_code(rec))
        self._states[rec.id] = (rec, state)
        return state

    def _error(self) -> tuple[str, str] | None:
        error = self.record.error
        if not error:
            return None
        return error.get("message", ""), error.get("detail", "")

    def _build(self) -> _Built:
        error = self._error()
        states = self.states()
        system = system_variables(self.workflow, self.facts, states, error, self._system)
        values = {**self.variables.values(), **self.inputs_as_text, **system}
        contexts = expression_contexts(
            self.workflow, self.facts, self.variables, states, {}, system
        )
        last = max((self._index.get(step_id, -1) for step_id in states), default=-1)
        return _Built(values, contexts, error, frozenset(states), last)


def status_code(rec: StepRecord) -> str | None:
    """Octopus's status code where the conclusion does not say it: a failure skipped under
    guided failure goes on as a success, but its status stays ``Failed`` (Octopus's Ignore)."""
    if rec.outcome == "failure" and rec.guided is not None and rec.guided.skipped:
        return "Failed"
    return None


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
