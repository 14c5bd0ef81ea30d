"""Loading a composite action (``actions/NAME/action.yml``, GitHub's format)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct, field

from runner.bounded import read_prefix
from runner.errors import Diagnostic, Location, WorkflowError
from runner.load.build import text, value_places
from runner.load.schema import validate_document
from runner.load.yaml import MAX_FILE_BYTES, LoadError, load_yaml

#: how deep actions may use one another: a workflow step's action is 1 (``runner validate``
#: refuses a deeper chain; walking one of a thousand actions ended in a ``RecursionError``)
MAX_NESTING = 10


class ActionInput(Struct, frozen=True):
    name: str
    required: bool = False
    default: str | None = None
    description: str = ""


class ActionStep(Struct, frozen=True):
    index: int
    id: str
    name: str
    condition: str | bool | None
    run: str | None
    shell: str | None
    uses: str | None
    env: dict[str, str] = field(default_factory=dict)
    with_: dict[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    continue_on_error: bool | str = False
    location: Location | None = None
    #: where each key's value is (``"run"``, ``"env.NAME"``, ``"with.NAME"``), as ``Step.where``
    where: Mapping[str, Location] = field(default_factory=dict)

    def at(self, key: str) -> Location | None:
        return self.where.get(key, self.location)


class Action(Struct, frozen=True):
    path: Path
    name: str
    digest: str
    inputs: dict[str, ActionInput]
    outputs: dict[str, str]
    steps: tuple[ActionStep, ...]


@functools.lru_cache(maxsize=64)
def load_action(path: Path) -> Action:
    """Load and validate ``action.yml``; raise :class:`WorkflowError` with its diagnostics."""
    shown = str(path)
    try:
        raw = read_prefix(path, MAX_FILE_BYTES)  # more is refused, never read whole
    except OSError as exc:
        problem = Diagnostic(Location(shown, 1, 1), f"cannot read action: {exc.strerror}", "action")
        raise WorkflowError([problem]) from None
    try:
        doc = load_yaml(shown, raw, substitutions=True)
    except LoadError as exc:
        raise WorkflowError(exc.diagnostics) from None
    problems = (
        validate_document(doc, "action")
        if isinstance(doc.data, dict)
        else [Diagnostic(doc.location(()), "an action must be a YAML mapping", "schema")]
    )
    if problems:
        raise WorkflowError(problems)
    data: dict[str, Any] = doc.data
    steps = []
    for i, spec in enumerate(data["runs"]["steps"]):
        steps.append(
            ActionStep(
                index=i,
                id=spec.get("id", f"__step{i}"),
                name=spec.get("name", spec.get("id", f"step {i + 1}")),
                condition=spec.get("if"),
                run=spec.get("run"),
                shell=spec.get("shell"),
                uses=spec.get("uses"),
                env={k: text(v) for k, v in spec.get("env", {}).items()},
                with_={k: text(v) for k, v in spec.get("with", {}).items()},
                working_directory=spec.get("working-directory"),
                continue_on_error=spec.get("continue-on-error", False),
                location=doc.location(("runs", "steps", i)),
                where=value_places(doc, ("runs", "steps", i), spec),
            )
        )
    return Action(
        path=path,
        name=data["name"],
        digest=hashlib.sha256(raw).hexdigest(),
        inputs={
            name: ActionInput(
                name,
                spec.get("required", False),
                text(spec["default"]) if "default" in spec else None,
                spec.get("description", ""),
            )
            for name, spec in data.get("inputs", {}).items()
        },
        outputs={name: spec["value"] for name, spec in data.get("outputs", {}).items()},
        steps=tuple(steps),
    )
