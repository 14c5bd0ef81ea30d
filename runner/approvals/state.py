"""What a manual step's record keeps of its wait: the interruption, what was submitted, what was
refused, and the decisions that settled it.

These are the record's ``approval`` object as frozen dataclasses; JSON exists only at the record
boundary (``to_json``/``from_json``). ``to_json`` writes the keys in the order the runner has
always written them, and leaves out those a wait that is still open has not set, so a record
saved again is the same bytes (``tests/engine/test_record_fixtures.py``).

A record may come from a copied state folder or the approval server: ``from_json`` refuses a
value of the wrong type with :class:`RecordShapeError` rather than letting it reach the code that
judges gates. Keys a hand-written record leaves out take their empty value; what they mean (a
gate recorded as passed with no decision) is judged on resume (``runner.engine.gates``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from runner.approvals.request import Interruption, Submission


class RecordShapeError(ValueError):
    """A value in a run record that is not of its type (a record changed by hand): refused."""


class GateState(StrEnum):
    """Where a manual step's wait stands."""

    WAITING = "waiting"
    APPROVED = "approved"
    ABORTED = "aborted"
    TIMED_OUT = "timed-out"
    CANCELLED = "cancelled"
    #: no quorum was reached and the step opts into ``on-timeout: proceed``
    PROCEEDED_ON_TIMEOUT = "proceeded-on-timeout"


#: the states of a gate that let the deployment go on
PASSED = frozenset({GateState.APPROVED, GateState.PROCEEDED_ON_TIMEOUT})


@dataclass(frozen=True)
class Decision:
    """A submission that counted, with the person the people file matched it to."""

    result: str = ""
    source: str = ""
    person_id: str = ""
    username: str = ""
    display_name: str = ""
    email: str = ""
    #: masked: notes and fields may quote a secret
    notes: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    submitted_at: str = ""
    #: what re-verifies it on resume or in an audit (a signed file's body and signature...)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def who(self) -> str:
        return self.display_name or self.username or "someone"

    def to_json(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: object) -> Decision:
        return _typed(cls, data, "decision")


@dataclass(frozen=True)
class Refusal:
    """A submission that did not count, and why (logged once, even across a resume)."""

    reason: str = ""
    source: str = ""
    who: str = ""
    #: the submission's key: the same refusal seen again is not recorded twice
    key: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: object) -> Refusal:
        return _typed(cls, data, "refusal")


@dataclass(frozen=True)
class ApprovalState:
    """A manual step's wait as the record keeps it."""

    state: GateState
    #: what was asked; None only in a record written by hand
    interruption: Interruption | None = None
    #: what the sources reported that counted so far, kept across a detach
    submissions: tuple[Submission, ...] = ()
    refused: tuple[Refusal, ...] = ()
    #: set once the wait ended
    decided_at: str | None = None
    decisions: tuple[Decision, ...] | None = None
    #: sources that could not be read when the wait timed out, and why
    unread_sources: dict[str, str] | None = None

    @property
    def passed(self) -> bool:
        return self.state in PASSED

    def to_json(self) -> dict[str, Any]:
        """The record's ``approval`` object."""
        data: dict[str, Any] = {}
        if self.interruption is not None:
            data["interruption"] = self.interruption.to_dict()
        data["state"] = self.state
        data["submissions"] = [_fields(s) for s in self.submissions]
        data["refused"] = [r.to_json() for r in self.refused]
        if self.decided_at is not None:
            data["decided_at"] = self.decided_at
        if self.decisions is not None:
            data["decisions"] = [d.to_json() for d in self.decisions]
        if self.unread_sources is not None:
            data["unread_sources"] = dict(self.unread_sources)
        return data

    @classmethod
    def from_json(cls, data: object) -> ApprovalState:
        """The state ``data`` holds; :class:`RecordShapeError` when it is not one."""
        if not isinstance(data, dict):
            raise RecordShapeError("is not an object")
        try:
            state = GateState(str(data.get("state")))
        except ValueError:
            raise RecordShapeError(f"has an unknown state {data.get('state')!r}") from None
        interruption = None
        if data.get("interruption") is not None:
            asked = data["interruption"]
            if not isinstance(asked, dict):
                raise RecordShapeError("has an `interruption` that is not an object")
            try:
                interruption = Interruption.from_dict(asked)
            except (ValueError, TypeError) as exc:
                raise RecordShapeError(f"has an `interruption` that is not one: {exc}") from None
        decided_at = data.get("decided_at")
        if decided_at is not None and not isinstance(decided_at, str):
            raise RecordShapeError("has a `decided_at` that is not a time")
        decisions = None
        if "decisions" in data:
            decisions = tuple(Decision.from_json(d) for d in _items(data, "decisions"))
        unread = data.get("unread_sources")
        if unread is not None and not _strings(unread):
            raise RecordShapeError("has `unread_sources` that are not names and reasons")
        return cls(
            state=state,
            interruption=interruption,
            submissions=tuple(_submission(s) for s in _items(data, "submissions")),
            refused=tuple(Refusal.from_json(r) for r in _items(data, "refused")),
            decided_at=decided_at,
            decisions=decisions,
            unread_sources=dict(unread) if unread is not None else None,
        )


def recorded_decisions(approval: object) -> tuple[Decision, ...]:
    """The decisions a record's ``approval`` object holds; none when it is not one (the
    approval server shows the records runners send it, and a page must not fail on one)."""
    if not isinstance(approval, dict):
        return ()
    try:
        return tuple(Decision.from_json(d) for d in _items(approval, "decisions"))
    except RecordShapeError:
        return ()


def _fields(submission: Submission) -> dict[str, Any]:
    return {item.name: getattr(submission, item.name) for item in dataclasses.fields(submission)}


def _items(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise RecordShapeError(f"has `{name}` that is not a list")
    return value


def _strings(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


_T = TypeVar("_T", Decision, Refusal)


def _typed(cls: type[_T], data: object, what: str) -> _T:
    """``cls`` from a JSON object whose keys are its fields, each of its field's JSON type."""
    if not isinstance(data, dict):
        raise RecordShapeError(f"has a {what} that is not an object")
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name not in data:
            continue
        value = data[item.name]
        if item.name == "fields":
            ok = _strings(value)
        elif item.name == "evidence":
            ok = isinstance(value, dict)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise RecordShapeError(f"has a {what} whose `{item.name}` is not of its type")
        values[item.name] = value
    return cls(**values)


def _submission(data: object) -> Submission:
    if not isinstance(data, dict):
        raise RecordShapeError("has a submission that is not an object")
    try:
        submission = Submission(**data)
    except TypeError as exc:
        raise RecordShapeError(f"has a submission that is not one: {exc}") from None
    if not (
        all(isinstance(getattr(submission, name), str) for name in ("source", "who", "key"))
        and _strings(submission.fields)
        and isinstance(submission.evidence, dict)
    ):
        raise RecordShapeError("has a submission whose fields are not of their types")
    return submission
