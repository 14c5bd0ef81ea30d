"""An interruption (what a manual step asks, and about what) and the submissions people make."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from msgspec import Struct, convert, field, to_builtins

from runner.model import Field
from runner.patterns import PatternError, compile_pattern

#: a manual step's decisions, then guided failure's (retry the failed step, skip it, fail the run)
Result = Literal["proceed", "abort", "retry", "skip", "fail"]
#: ``Interruption.kind`` of a failed step's question under guided failure (issue 21)
GUIDED = "guided-failure"


def guided_slot(step_id: str, attempt: int) -> str:
    """Where a failed step's question for ``attempt`` stands beside the step's own: its id is
    ``<run>--<slot>``, and the server keys it by run and slot. ``@`` is in no step id, so no
    step's slot can be another step's question."""
    return f"{step_id}@attempt-{attempt}"


def slot(request: Interruption) -> str:
    """The request's step slot: the step id, or a failed step's question for its attempt."""
    return guided_slot(request.step_id, request.attempt) if request.guided else request.step_id


def inputs_digest(inputs: Mapping[str, Any], skipped: Iterable[str] = ()) -> str | None:
    """What a signed approval binds of a run's inputs (as its request shows them, a secret
    input masked) and of the steps it skips with ``--skip``: the sha256 of them as compact JSON
    with sorted keys; None for a run without either, whose approvals bind none (as before
    inputs were bound). An approval for a run skipping nothing approved another run under the
    same id started with ``--skip backup`` (attack pass)."""
    skip = sorted(set(skipped))
    if not inputs and not skip:
        return None
    # a run skipping nothing hashes what it always hashed; input values are never objects, so
    # no inputs can hash as this
    bound: Any = {"inputs": dict(inputs), "skipped": skip} if skip else dict(inputs)
    text = json.dumps(bound, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # a record or request may hold half of a character (`\ud800`): hashed, not refused
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class FieldSpec(Struct, frozen=True):
    name: str
    type: str
    label: str = ""
    required: bool = False
    pattern: str | None = None
    options: tuple[str, ...] = ()


def field_specs(data: Any) -> tuple[FieldSpec, ...]:
    """The fields a request's JSON (``fields``) asks for; ValueError or TypeError when it is
    malformed, or a pattern is not one (judged by it, every value would be refused)."""
    specs = tuple(FieldSpec(**{**f, "options": tuple(f.get("options", ()))}) for f in data)
    for spec in specs:
        if spec.pattern is not None:
            try:
                compile_pattern(spec.pattern)
            except (PatternError, TypeError) as exc:
                raise ValueError(f"field {spec.name}: `pattern`: {exc}") from None
    return specs


def specs_of(fields: Iterable[Field]) -> tuple[FieldSpec, ...]:
    """The fields a manual step asks for, as a request carries them (labels unrendered)."""
    return tuple(
        FieldSpec(f.name, f.type, f.label, f.required, f.pattern, f.options) for f in fields
    )


def describe_field(spec: FieldSpec) -> str:
    """What a field asks for, for the people who answer: ``ticket: string, required, matching
    ^CHG-[0-9]+$`` (the waiting run's log, ``runner approval show``, ``approval new``)."""
    about = [spec.type, "required" if spec.required else "optional"]
    if spec.options:
        about.append("one of " + "/".join(spec.options))
    if spec.pattern:
        about.append(f"matching {spec.pattern}")
    label = f" ({spec.label})" if spec.label else ""
    return f"{spec.name}{label}: {', '.join(about)}"


class Interruption(Struct, frozen=True):
    """A manual step waiting for people: the request every source shows, and what it binds."""

    id: str
    run_id: str
    step_id: str
    step_name: str
    title: str
    instructions: str
    teams: tuple[str, ...]
    quorum: tuple[tuple[str, int], ...]
    fields: tuple[FieldSpec, ...]
    created: str
    deadline: str | None
    environment: str
    workflow: str
    digest: str
    commit: str | None
    inputs: dict[str, Any]
    following_steps: tuple[str, ...]
    started_by: str
    prevent_self_approval: bool
    sources: tuple[str, ...]
    #: when the run started: approvals issued before it are refused
    run_started: str = ""
    #: ``manual``, or ``guided-failure`` for a failed step's question (retry, skip or fail)
    kind: str = "manual"
    #: guided failure: the attempt that failed (a decision binds it: a retry decided for
    #: attempt 1 cannot be replayed for attempt 2)
    attempt: int = 0
    #: guided failure: what may be chosen (``retry`` left out once its limit is reached)
    choices: tuple[str, ...] = ()
    #: guided failure: what failed (``exit_code``, ``error``, ``log_tail``: masked lines)
    failure: dict[str, Any] = field(default_factory=dict)
    #: the ids of the steps the run skips with ``--skip`` (sorted): shown, and bound with the
    #: inputs (``inputs_digest``)
    skipped: tuple[str, ...] = ()

    @property
    def guided(self) -> bool:
        return self.kind == GUIDED

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = to_builtins(self)
        if not self.guided:
            # a manual step's request keeps the shape it had before guided failure existed
            for name in ("kind", "attempt", "choices", "failure"):
                del data[name]
        if not self.skipped:
            del data["skipped"]  # the shape it had before: a run without --skip
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interruption:
        """The interruption ``data`` describes; ValueError or TypeError when it is malformed
        (the server takes requests from the network: what it stores, it must be able to judge)."""
        values = dict(data)
        values["teams"] = tuple(values.get("teams", ()))
        if not all(isinstance(team, str) for team in values["teams"]):
            raise ValueError("`teams` must be a list of team names")
        values["quorum"] = tuple(tuple(q) for q in values.get("quorum", ()))
        for rule in values["quorum"]:
            if not (
                len(rule) == 2
                and isinstance(rule[0], str)
                and isinstance(rule[1], int)
                and not isinstance(rule[1], bool)
                and rule[1] > 0
            ):
                raise ValueError("each `quorum` item must be [team, count] with a count above 0")
        values["fields"] = field_specs(values.get("fields", ()))
        values["following_steps"] = tuple(values.get("following_steps", ()))
        values["skipped"] = tuple(values.get("skipped", ()))
        if not all(isinstance(step, str) for step in values["skipped"]):
            raise ValueError("`skipped` must be a list of step ids")
        values["sources"] = tuple(values.get("sources", ()))
        values["choices"] = tuple(values.get("choices", ()))
        if not all(choice in ("retry", "skip", "fail") for choice in values["choices"]):
            raise ValueError("each of `choices` must be retry, skip or fail")
        if values.get("kind", "manual") not in ("manual", GUIDED):
            raise ValueError(f"`kind` must be manual or {GUIDED}")
        attempt = values.get("attempt", 0)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise ValueError("`attempt` must be a whole number")
        if not isinstance(values.get("failure", {}), dict):
            raise ValueError("`failure` must be an object")
        made = cls(**values)
        # a Struct built from keywords checks no types: `instructions` as a list or `inputs`
        # as a string were kept by the server, and every page showing them failed (attack
        # pass); msgspec's ValidationError is a ValueError naming the field
        return convert(to_builtins(made), cls)


class Submission(Struct, frozen=True):
    """A decision as a source reports it, before the runner judges it.

    ``who`` is how the source names the person (``kind`` says which name: a username at the
    prompt or on the server, an SSH principal for signed files); the runner matches it through
    the people-and-teams file.
    """

    source: str
    result: Result
    who: str
    who_kind: Literal["username", "principal", "login"]
    notes: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    submitted_at: str = ""
    #: what the source can show later to re-verify the decision (file, signature, server id)
    evidence: dict[str, Any] = field(default_factory=dict)
    #: a stable key so the same submission seen twice counts once
    key: str = ""
    #: why the source could not verify it (bad signature, wrong run, expired...): never counts
    problem: str | None = None
