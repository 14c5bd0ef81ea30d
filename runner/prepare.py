"""What ``plan``, ``run`` and ``resume`` do before the first step: load the workflow and check the
command line against it (environment, inputs, ``--skip``), then resolve variables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.errors import Diagnostic, UsageError, WorkflowError
from runner.inputs import parse_pairs, resolve_inputs
from runner.load import Loaded, load_workflow
from runner.model import Workflow
from runner.variables.resolve import VariableSet, resolve


@dataclass(frozen=True)
class Prepared:
    loaded: Loaded
    workflow: Workflow
    environment: str
    inputs: Mapping[str, Any]
    variables: VariableSet
    skip: frozenset[str]


def prepare(
    path: str,
    environment: str,
    raw_inputs: Iterable[str],
    skip: Iterable[str],
    environ: Mapping[str, str],
) -> Prepared:
    """Load ``path`` and check the request; raise a user error naming what to change."""
    loaded = load_workflow(path)
    workflow = loaded.workflow
    assert workflow is not None
    check_environment(loaded, workflow, environment)
    inputs = resolve_inputs(workflow.inputs, parse_pairs(raw_inputs, "--input"))
    skipped = check_skip(workflow, skip)
    variables = resolve(workflow.variables, environment, environ)
    return Prepared(loaded, workflow, environment, inputs, variables, skipped)


def check_environment(loaded: Loaded, workflow: Workflow, environment: str) -> None:
    if workflow.environments and environment not in workflow.environments:
        assert loaded.document is not None
        location = loaded.document.location(("environments",))
        allowed = ", ".join(f"`{e}`" for e in workflow.environments)
        message = (
            f"--env {environment}: this workflow deploys only to {allowed}; "
            "add the environment here or pick one of these"
        )
        raise WorkflowError([Diagnostic(location, message, "environment")])


def check_skip(workflow: Workflow, skip: Iterable[str]) -> frozenset[str]:
    ids = set()
    for key in skip:
        step = workflow.step(key)
        if step is None:
            raise UsageError(f"--skip {key}: no step has this id or name")
        if step.unskippable:
            why = "it is required" if step.required else "its manual step names teams"
            raise UsageError(f"--skip {key}: step `{step.id}` cannot be skipped: {why}")
        ids.add(step.id)
    return frozenset(ids)
