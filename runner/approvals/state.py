"""What a manual step's record keeps of its wait: the interruption, what was submitted, what was
refused, and the decisions that settled it; and what a step under guided failure keeps of the
questions its failures asked (``GuidedState``, the record's ``guided`` object).

These are the record's ``approval`` and ``guided`` objects as frozen structs; JSON exists
only at the record boundary (``to_json``/``from_json``). ``ApprovalState.to_json`` writes the
keys in the order the runner has always written them, and leaves out those a wait that is still
open has not set, so a record saved again is the same bytes
(``tests/engine/test_record_fixtures.py``).

A record may come from a copied state folder or the approval server: ``from_json`` refuses a
value of the wrong type with :class:`RecordShapeError` rather than letting it reach the code that
judges gates. Keys a hand-written record leaves out take their empty value; what they mean (a
gate recorded as passed with no decision) is judged on resume (``runner.engine.gates``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from msgspec import Struct, field
from msgspec.structs import asdict

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


class Decision(Struct, frozen=True):
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
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Decision:
        return _typed(cls, data, "decision")


class Refusal(Struct, frozen=True):
    """A submission that did not count, and why (logged once, even across a resume)."""

    reason: str = ""
    source: str = ""
    who: str = ""
    #: the submission's key: the same refusal seen again is not recorded twice
    key: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Refusal:
        return _typed(cls, data, "refusal")


class ApprovalState(Struct, frozen=True):
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
        data["submissions"] = [asdict(s) for s in self.submissions]
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


class GuidedOutcome(StrEnum):
    """How the question about one failed attempt of a step ended."""

    DECIDED = "decided"
    TIMED_OUT = "timed-out"
    CANCELLED = "cancelled"
    #: no source could ask it: the step fails
    UNASKED = "unasked"
    #: ``retry`` was its only choice and its limit was reached: nobody was asked, the step fails
    EXHAUSTED = "exhausted"


#: what a guided failure's question may decide
GUIDED_CHOICES = ("retry", "skip", "fail")


class GuidedDecision(Struct, frozen=True):
    """What became of one failed attempt of a step under guided failure. ``choice`` is None
    only when the question was cancelled; who decided (``source`` to ``evidence``) is set when
    a person did (``DECIDED``), ``notes`` also when the runner decided (a timeout, nobody
    asked)."""

    attempt: int
    #: the question's interruption id
    interruption: str
    #: what failed, as the question showed it (masked)
    failure: dict[str, Any]
    state: GuidedOutcome
    choice: str | None = None
    decided_at: str = ""
    submissions: tuple[Submission, ...] = ()
    refused: tuple[Refusal, ...] = ()
    source: str | None = None
    person_id: str | None = None
    username: str | None = None
    display_name: str | None = None
    email: str | None = None
    #: masked, as a manual step's
    notes: str | None = None
    submitted_at: str | None = None
    evidence: dict[str, Any] | None = None
    #: sources that could not be read when the question timed out, and why
    unread_sources: dict[str, str] | None = None

    @property
    def who(self) -> str:
        """Who decided, as the logs name them; empty when nobody did."""
        return self.display_name or self.username or ""

    def to_json(self) -> dict[str, Any]:
        """The record's object for it: the first eight keys always, the rest when set, in the
        order the runner first wrote them for each state (a record saved again is the same
        bytes)."""
        data: dict[str, Any] = {
            "attempt": self.attempt,
            "interruption": self.interruption,
            "failure": self.failure,
            "state": self.state,
            "choice": self.choice,
        }
        early = self.state in (GuidedOutcome.UNASKED, GuidedOutcome.EXHAUSTED)
        if early and self.notes is not None:
            data["notes"] = self.notes
        data["decided_at"] = self.decided_at
        data["submissions"] = [asdict(s) for s in self.submissions]
        data["refused"] = [r.to_json() for r in self.refused]
        for name in _GUIDED_LATER:
            value = getattr(self, name)
            if value is not None and name not in data:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: object) -> GuidedDecision:
        """The decision ``data`` holds; :class:`RecordShapeError` when it is not one (a choice
        that is not retry, skip or fail included: a resume must not guess what it meant)."""
        if not isinstance(data, dict):
            raise RecordShapeError("has a decision that is not an object")
        attempt = data.get("attempt")
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise RecordShapeError("has a decision whose `attempt` is not a number from 1")
        try:
            state = GuidedOutcome(str(data.get("state")))
        except ValueError:
            state_text = data.get("state")
            raise RecordShapeError(f"has a decision in an unknown state {state_text!r}") from None
        choice = data.get("choice")
        if choice is not None and choice not in GUIDED_CHOICES:
            raise RecordShapeError(f"has a decision with an unknown choice {choice!r}")
        failure = data.get("failure", {})
        if not isinstance(failure, dict):
            raise RecordShapeError("has a decision whose `failure` is not an object")
        values: dict[str, Any] = {}
        for name in ("interruption", "decided_at"):
            value = data.get(name, "")
            if not isinstance(value, str):
                raise RecordShapeError(f"has a decision whose `{name}` is not text")
            values[name] = value
        for name in cls.__struct_fields__[8:]:
            value = data.get(name)
            if value is None:
                continue
            if name == "evidence":
                ok = isinstance(value, dict)
            elif name == "unread_sources":
                ok = _strings(value)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise RecordShapeError(f"has a decision whose `{name}` is not of its type")
            values[name] = value
        return cls(
            attempt=attempt,
            failure=failure,
            state=state,
            choice=choice,
            submissions=tuple(_submission(s) for s in _items(data, "submissions")),
            refused=tuple(Refusal.from_json(r) for r in _items(data, "refused")),
            **values,
        )


#: the keys after ``refused``, in the order they were first written (a timeout's unread sources
#: before its notes)
_GUIDED_LATER = (
    "source",
    "person_id",
    "username",
    "display_name",
    "email",
    "unread_sources",
    "notes",
    "submitted_at",
    "evidence",
)


class GuidedState(Struct, frozen=True):
    """A step's record under guided failure: one decision per failed attempt that was decided,
    and the open question while one is (kept as a manual step's wait is)."""

    decisions: tuple[GuidedDecision, ...] = ()
    waiting: ApprovalState | None = None

    @property
    def last(self) -> GuidedDecision | None:
        return self.decisions[-1] if self.decisions else None

    @property
    def skipped(self) -> bool:
        """Whether its last decision let the failure pass."""
        return self.last is not None and self.last.choice == "skip"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"decisions": [d.to_json() for d in self.decisions]}
        if self.waiting is not None:
            data["waiting"] = self.waiting.to_json()
        return data

    @classmethod
    def from_json(cls, data: object) -> GuidedState:
        """The state ``data`` holds; :class:`RecordShapeError` when it is not one."""
        if not isinstance(data, dict):
            raise RecordShapeError("is not an object")
        waiting = None
        if data.get("waiting") is not None:
            try:
                waiting = ApprovalState.from_json(data["waiting"])
            except RecordShapeError as exc:
                raise RecordShapeError(f"has an open question that {exc}") from None
        return cls(
            decisions=tuple(GuidedDecision.from_json(d) for d in _items(data, "decisions")),
            waiting=waiting,
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
    for name in cls.__struct_fields__:
        if name not in data:
            continue
        value = data[name]
        if name == "fields":
            ok = _strings(value)
        elif name == "evidence":
            ok = isinstance(value, dict)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise RecordShapeError(f"has a {what} whose `{name}` is not of its type")
        values[name] = value
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
