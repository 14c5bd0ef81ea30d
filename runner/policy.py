"""Environment policies the deployer cannot edit.

A policy file lives on the protected trust ref (``approvals.trust.policy`` read from
``approvals.trust.ref``), never in the deployed commit, so deleting a manual step in a pull request
does not remove the approval production requires. Per environment it may demand:

- ``approval``: a manual intervention before the first step of every run, whatever the
  workflow says;
- ``allowed-refs``: the branches and tags that may deploy;
- ``freeze``: windows in which runs are refused;
- ``promotion``: the same workflow digest and commit must have succeeded in other environments
  first;
- ``break-glass``: who may override a freeze or a promotion rule, with a reason that is recorded,
  announced and listed for review (``runner policy review``).

Evaluation (:func:`evaluate`) is pure: the ref, the clock and the history are passed in.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from msgspec import Struct, structs

from runner.anchor import has_policy
from runner.approvals.trust import TrustFiles, refuse_deployed_commit
from runner.errors import Diagnostic, Location, RefusedError, WorkflowError
from runner.load.schema import validate_document
from runner.load.yaml import LoadError, load_yaml
from runner.model import Manual, Quorum, Step, Workflow

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from runner.git import GitReader

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
POLICY_STEP_ID = "policy-approval"


class Check(Struct, frozen=True):
    rule: str  # allowed-refs | freeze | promotion | approval
    ok: bool
    message: str
    overridable: bool = False
    overridden: bool = False


class BreakGlass(Struct, frozen=True):
    """Who overrode which rules, why and when: kept in the run record and listed for review."""

    by: str
    reason: str
    overrode: tuple[str, ...]
    at: str

    def to_json(self) -> dict[str, Any]:
        """The record's ``break_glass`` object."""
        return {
            "by": self.by,
            "reason": self.reason,
            "overrode": list(self.overrode),
            "at": self.at,
        }


class Verdict(Struct, frozen=True):
    environment: str
    checks: tuple[Check, ...]
    break_glass: BreakGlass | None = None

    @property
    def allowed(self) -> bool:
        return all(c.ok or c.overridden for c in self.checks)

    def refusal(self) -> str:
        failed = [c for c in self.checks if not (c.ok or c.overridden)]
        return "; ".join(f"policy rule `{c.rule}`: {c.message}" for c in failed)


class FreezeWindow(Struct, frozen=True):
    """A time no run may start: one-off (``from``, ``to``) or weekly (``days``, ``start``,
    ``end`` in ``time-zone``)."""

    reason: str
    start_at: str | None = None
    end_at: str | None = None
    days: tuple[str, ...] = ()
    #: weekly ``HH:MM`` times, compared as text (``end`` may be ``24:00``)
    start: str | None = None
    end: str | None = None
    time_zone: str | None = None

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> FreezeWindow:
        """The window a (schema-valid) policy document describes."""

        def text(name: str) -> str | None:
            value = spec.get(name)
            return None if value is None else str(value)

        return cls(
            reason=str(spec["reason"]),
            start_at=text("from"),
            end_at=text("to"),
            days=tuple(spec.get("days", ())),
            start=text("start"),
            end=text("end"),
            time_zone=text("time-zone"),
        )


class PolicyApproval(Struct, frozen=True):
    """The manual intervention a policy puts before the first step."""

    title: str | None = None
    instructions: str | None = None
    teams: tuple[str, ...] = ()
    require: tuple[Quorum, ...] = ()
    prevent_self_approval: bool = False
    timeout_minutes: float | None = None


class EnvironmentPolicy(Struct, frozen=True):
    """What one environment's policy demands (``docs/policy.md``)."""

    allowed_refs: tuple[str, ...] = ()
    freeze: tuple[FreezeWindow, ...] = ()
    #: environments where the same digest and commit must have succeeded first
    promotion_after: tuple[str, ...] = ()
    break_glass_teams: tuple[str, ...] = ()
    approval: PolicyApproval | None = None

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> EnvironmentPolicy:
        approval = spec.get("approval")
        return cls(
            allowed_refs=tuple(spec.get("allowed-refs", ())),
            freeze=tuple(FreezeWindow.of(w) for w in spec.get("freeze", ())),
            promotion_after=tuple((spec.get("promotion") or {}).get("after", ())),
            break_glass_teams=tuple(spec.get("break-glass", {}).get("teams", ())),
            # an empty mapping asks for nothing
            approval=PolicyApproval(
                title=approval.get("title"),
                instructions=approval.get("instructions"),
                teams=tuple(approval.get("teams", ())),
                require=tuple(Quorum(q["team"], q["count"]) for q in approval.get("require", ())),
                prevent_self_approval=approval.get("prevent-self-approval", False),
                timeout_minutes=approval.get("timeout-minutes"),
            )
            if approval
            else None,
        )


class Policy(Struct, frozen=True):
    """A policy file: the rules of each environment it names."""

    #: only environments with rules (an empty mapping, like no entry, asks for nothing)
    environments: Mapping[str, EnvironmentPolicy]

    def of_environment(self, environment: str) -> EnvironmentPolicy | None:
        return self.environments.get(environment)


def parse_policy(raw: bytes, source: str) -> Policy:

    try:
        doc = load_yaml(source, raw)
    except LoadError as exc:
        raise WorkflowError(exc.diagnostics) from None
    if not isinstance(doc.data, dict):
        raise WorkflowError(
            [
                Diagnostic(
                    doc.location(()), "a policy must be a mapping with `environments`", "policy"
                )
            ]
        )
    problems = validate_document(doc, "policy")
    if problems:
        raise WorkflowError(problems)
    for name, spec in doc.data["environments"].items():
        for i, window in enumerate(spec.get("freeze", [])):
            try:
                _window_problem(window)
            except ValueError as exc:
                location = doc.location(("environments", name, "freeze", i))
                raise WorkflowError([Diagnostic(location, str(exc), "policy")]) from None
    return Policy(
        {
            name: EnvironmentPolicy.of(spec)
            for name, spec in doc.data["environments"].items()
            if spec
        }
    )


def load_policy(workflow: Workflow, git: GitReader, *, insecure: bool) -> Policy | None:
    """The policy document, from the protected trust ref; None when the workflow names none."""

    trust = workflow.approvals.trust
    if trust is None or not trust.policy:
        return None
    files = TrustFiles.of(trust, git)
    if not files.protected and not insecure:
        raise RefusedError(
            "the policy file would be read from the working tree, which the deployment "
            "controls: set `approvals.trust.ref` to a protected branch or tag",
            hint="for a local try only, pass --insecure-local-trust",
        )
    if trust.ref:
        refuse_deployed_commit(git, trust.ref, trust.commit)
    if trust.anchored and not has_policy(git, trust):
        return None  # the anchored ref holds no policy: only its maintainers decide that
    return parse_policy(files.read(trust.policy), files.where(trust.policy))


def _parse_instant(text: str, zone: ZoneInfo | None) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        if zone is None:
            raise ValueError(f"time {text!r} needs a UTC offset or `time-zone`")
        moment = moment.replace(tzinfo=zone)
    return moment


def _zone(name: object) -> ZoneInfo | None:
    if not name:
        return None

    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _window_problem(window: Mapping[str, Any]) -> None:
    zone = _zone(window.get("time-zone"))
    if "days" in window:
        if "from" in window or "to" in window:
            raise ValueError(
                "a freeze window is either one-off (`from`, `to`) or weekly (`days`, `start`, "
                "`end`), not both"
            )
        if zone is None:
            raise ValueError("a weekly freeze window needs `time-zone` (e.g. Europe/London or UTC)")
        # times compare as text: an overnight window would silently never match
        if str(window["end"]) <= str(window["start"]):
            raise ValueError(
                "a weekly freeze window must end after it starts on the same day; for an "
                "overnight freeze list two windows (e.g. 22:00-24:00 and 00:00-06:00)"
            )
        return
    start = _parse_instant(str(window["from"]), zone)
    end = _parse_instant(str(window["to"]), zone)
    if end <= start:
        raise ValueError("a freeze window must end after it starts")


def in_window(window: FreezeWindow, now: datetime) -> bool:
    zone = _zone(window.time_zone)
    if window.start_at is not None:
        assert window.end_at is not None  # the schema requires both
        return _parse_instant(window.start_at, zone) <= now < _parse_instant(window.end_at, zone)
    assert zone is not None and window.start is not None and window.end is not None
    local = now.astimezone(zone)
    if DAYS[local.weekday()] not in window.days:
        return False
    hhmm = local.strftime("%H:%M")
    return window.start <= hhmm < window.end or (window.end == "24:00" and hhmm >= window.start)


def evaluate(
    policy: Policy | None,
    environment: str,
    *,
    ref: str | None,
    now: datetime,
    history: Iterable[Mapping[str, Any]],
    digest: str,
    commit: str | None,
    actor_teams: Iterable[str] = (),
    actor: str = "",
    break_glass: str | None = None,
) -> Verdict:
    """Which rules of the environment's policy pass for this run."""
    spec = policy.of_environment(environment) if policy else None
    if spec is None:
        return Verdict(environment, ())
    may_break = bool(set(spec.break_glass_teams) & set(actor_teams))
    glass = break_glass if break_glass and break_glass.strip() else None
    checks: list[Check] = []
    patterns = spec.allowed_refs
    if patterns:
        if ref is None:
            checks.append(
                Check(
                    "allowed-refs",
                    False,
                    "the ref being deployed is unknown (no CI variables and no git branch or tag)",
                )
            )
        else:
            ok = any(fnmatch.fnmatchcase(ref, p) for p in patterns)
            checks.append(
                Check(
                    "allowed-refs",
                    ok,
                    f"{ref} is " + ("" if ok else "not ") + f"one of {', '.join(patterns)}",
                )
            )
    for window in spec.freeze:
        frozen = in_window(window, now)
        checks.append(
            Check(
                "freeze",
                not frozen,
                f"{environment} is frozen now: {window.reason}"
                if frozen
                else f"not in the freeze window ({window.reason})",
                overridable=True,
                overridden=frozen and glass is not None and may_break,
            )
        )
    if spec.promotion_after:
        for before in spec.promotion_after:
            done = any(
                r.get("environment") == before
                and r.get("status") == "success"
                and r.get("digest") == digest
                # an unknown commit matches only another run whose commit was unknown
                and r.get("commit") == commit
                for r in history
            )
            checks.append(
                Check(
                    "promotion",
                    done,
                    f"this digest and commit succeeded in {before}"
                    if done
                    else f"the same workflow digest and commit have not succeeded in {before} yet",
                    overridable=True,
                    overridden=not done and glass is not None and may_break,
                )
            )
    if spec.approval is not None:
        who = ", ".join(spec.approval.teams) or "anyone in the people file"
        checks.append(Check("approval", True, f"a manual intervention by {who} comes first"))
    used = [c.rule for c in checks if c.overridden]
    record = None
    if glass is not None:
        if not may_break:
            checks.append(
                Check(
                    "break-glass",
                    False,
                    f"{actor or 'the deployer'} is not in a break-glass team of this environment",
                )
            )
        elif used:
            record = BreakGlass(
                by=actor, reason=glass, overrode=tuple(used), at=now.isoformat(timespec="seconds")
            )
    return Verdict(environment, tuple(checks), record)


def with_policy_approval(workflow: Workflow, policy: Policy | None, environment: str) -> Workflow:
    """The workflow with the policy's manual intervention as its first step."""
    rules = policy.of_environment(environment) if policy else None
    spec = rules.approval if rules else None
    if spec is None:
        return workflow
    for step in workflow.steps:
        if step.id == POLICY_STEP_ID:
            message = (
                f"step id `{POLICY_STEP_ID}` is taken by the approval the policy of "
                f"{environment} adds before the first step; rename this step"
            )
            where = step.at("id") or Location(workflow.path, 1, 1)
            raise WorkflowError([Diagnostic(where, message, "policy")])
    manual = Manual(
        title=spec.title if spec.title is not None else f"Policy approval for {environment}",
        instructions=spec.instructions
        if spec.instructions is not None
        else f"The policy of {environment} requires an approval before any step runs.",
        teams=spec.teams,
        require=spec.require,
        prevent_self_approval=spec.prevent_self_approval,
        timeout_minutes=spec.timeout_minutes,
        sources=workflow.approvals.sources,
    )
    gate = Step(
        id=POLICY_STEP_ID,
        name=f"Policy approval for {environment}",
        kind="manual",
        index=0,
        required=True,
        manual=manual,
        location=workflow.location,
        barrier=True,
    )
    # "before any step runs": the workflow's first step does not start beside it (with
    # `start: with-previous` it ran while the gate waited), and no step runs after it unless it
    # passed (an `always()` step ran once it timed out or was aborted)
    steps = (
        gate,
        *(
            structs.replace(s, index=s.index + 1, with_previous=s.with_previous and s.index > 0)
            for s in workflow.steps
        ),
    )
    return structs.replace(workflow, steps=steps)


def current_ref(environ: Mapping[str, str], git: GitReader) -> str | None:
    """The ref being deployed, from the CI's variables, else from git."""
    if environ.get("GITHUB_REF"):
        return environ["GITHUB_REF"]
    if environ.get("CI_COMMIT_TAG"):
        return f"refs/tags/{environ['CI_COMMIT_TAG']}"
    if environ.get("CI_COMMIT_BRANCH") or environ.get("CI_COMMIT_REF_NAME"):
        return f"refs/heads/{environ.get('CI_COMMIT_BRANCH') or environ['CI_COMMIT_REF_NAME']}"
    for args in (("symbolic-ref", "-q", "HEAD"), ("describe", "--exact-match", "--tags", "HEAD")):
        out = git.query(*args)
        value = out.decode("utf-8", "replace").strip() if out is not None else ""
        if value:
            return value if value.startswith("refs/") else f"refs/tags/{value}"
    return None


def describe(verdict: Verdict) -> list[str]:
    lines = []
    for check in verdict.checks:
        mark = "ok  " if check.ok else ("OVERRIDDEN" if check.overridden else "FAIL")
        lines.append(f"{mark:<10} {check.rule}: {check.message}")
    glass = verdict.break_glass
    if glass is not None:
        lines.append(
            f"break-glass by {glass.by}: {glass.reason} (overrides {', '.join(glass.overrode)})"
        )
    return lines


__all__ = [
    "BreakGlass",
    "Check",
    "EnvironmentPolicy",
    "FreezeWindow",
    "Policy",
    "PolicyApproval",
    "Verdict",
    "evaluate",
    "load_policy",
    "timedelta",
    "with_policy_approval",
]
