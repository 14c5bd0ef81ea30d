"""The environment policy's rules, evaluated purely: the ref, the clock, the history, the actor's
teams and the break-glass reason are all passed in (:func:`runner.policy.evaluate`).

Every policy in these tables goes through :func:`runner.policy.parse_policy` first, so a table
cannot test a document that the schema would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner.errors import WorkflowError
from runner.git import Git
from runner.load import load_workflow
from runner.policy import (
    POLICY_STEP_ID,
    BreakGlass,
    Check,
    FreezeWindow,
    Policy,
    Verdict,
    current_ref,
    describe,
    evaluate,
    in_window,
    parse_policy,
    with_policy_approval,
)

ENV = "production"
#: a Friday, noon UTC (13:00 in London, 14:00 in Berlin)
NOW = datetime(2024, 6, 14, 12, 0, tzinfo=UTC)
DIGEST = "d" * 64
COMMIT = "c" * 40


def z(text: str) -> datetime:
    """An instant written in UTC: ``z("2024-06-14T12:00:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def policy_of(spec: Mapping[str, Any], **others: Mapping[str, Any]) -> Policy:
    """A validated policy document with ``spec`` for production (and other environments)."""
    document = {"environments": {ENV: dict(spec), **{k: dict(v) for k, v in others.items()}}}
    return parse_policy(json.dumps(document).encode(), "policy.yml")


def verdict_of(spec: Mapping[str, Any], **arguments: Any) -> Verdict:
    values: dict[str, Any] = {
        "ref": "refs/heads/main",
        "now": NOW,
        "history": (),
        "digest": DIGEST,
        "commit": COMMIT,
    }
    values.update(arguments)
    return evaluate(policy_of(spec), ENV, **values)


def only(verdict: Verdict, rule: str) -> Check:
    found = [c for c in verdict.checks if c.rule == rule]
    assert len(found) == 1, verdict.checks
    return found[0]


def success(**changes: Any) -> dict[str, Any]:
    """A history entry: a successful staging run of this digest and commit."""
    entry = {
        "run_id": "s1",
        "environment": "staging",
        "status": "success",
        "digest": DIGEST,
        "commit": COMMIT,
    }
    entry.update(changes)
    return entry


# -- no policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [None, {"environments": {}}, {"environments": {"staging": {"allowed-refs": ["x"]}}}],
    ids=["no-document", "no-environments", "other-environment-only"],
)
def test_an_environment_without_a_policy_has_no_checks(policy: dict[str, Any] | None) -> None:
    parsed = None if policy is None else parse_policy(json.dumps(policy).encode(), "policy.yml")
    verdict = evaluate(parsed, ENV, ref=None, now=NOW, history=(), digest=DIGEST, commit=None)
    assert verdict == Verdict(ENV, ())
    assert verdict.allowed
    assert verdict.refusal() == ""


# -- allowed-refs ---------------------------------------------------------------------------------

REFS: list[tuple[list[str], str, bool]] = [
    (["refs/heads/main"], "refs/heads/main", True),
    (["refs/heads/main"], "refs/heads/feature-x", False),
    (["refs/heads/main"], "refs/heads/main-old", False),
    (["refs/heads/main"], "refs/heads/Main", False),
    # patterns are whole refs: a bare branch name matches nothing
    (["main"], "refs/heads/main", False),
    (["refs/heads/release/*"], "refs/heads/release/2024.06", True),
    (["refs/heads/release/*"], "refs/heads/releases/2024.06", False),
    (["refs/tags/v*"], "refs/tags/v1.2.3", True),
    (["refs/tags/v*"], "refs/tags/1.2.3", False),
    # a branch named like a release tag is still a branch
    (["refs/tags/v*"], "refs/heads/v1.2.3", False),
    (["refs/tags/v[0-9]*"], "refs/tags/v2.0", True),
    (["refs/tags/v[0-9]*"], "refs/tags/vnext", False),
    (["refs/heads/main", "refs/tags/v*"], "refs/tags/v2", True),
    (["refs/heads/main", "refs/tags/v*"], "refs/pull/7/merge", False),
]


@pytest.mark.parametrize(("patterns", "ref", "ok"), REFS, ids=[f"{r[1]}-{r[0]}" for r in REFS])
def test_allowed_refs(patterns: list[str], ref: str, ok: bool) -> None:
    verdict = verdict_of({"allowed-refs": patterns}, ref=ref)
    listed = ", ".join(patterns)
    expected = f"{ref} is one of {listed}" if ok else f"{ref} is not one of {listed}"
    assert verdict.checks == (Check("allowed-refs", ok, expected),)
    assert verdict.allowed is ok
    assert verdict.refusal() == ("" if ok else f"policy rule `allowed-refs`: {expected}")


def test_an_unknown_ref_is_refused() -> None:
    verdict = verdict_of({"allowed-refs": ["refs/heads/main"]}, ref=None)
    message = "the ref being deployed is unknown (no CI variables and no git branch or tag)"
    assert verdict.checks == (Check("allowed-refs", False, message),)
    assert verdict.refusal() == f"policy rule `allowed-refs`: {message}"


def test_without_allowed_refs_any_ref_and_an_unknown_one_may_deploy() -> None:
    assert verdict_of({}, ref=None).checks == ()
    assert verdict_of({"promotion": {"after": ["staging"]}}, ref=None, history=[success()]).allowed


# -- freeze: one-off windows ----------------------------------------------------------------------

YEAR_END = {"reason": "year-end", "from": "2024-12-20T00:00:00Z", "to": "2025-01-02T00:00:00Z"}
#: 09:00 in Paris (UTC+1 in December) is 08:00 UTC
PARIS_OFFSET = {
    "reason": "audit",
    "from": "2024-12-20T09:00:00+01:00",
    "to": "2024-12-20T17:00:00+01:00",
}
#: a naive time read in the window's time zone: 09:00 in New York (UTC-5 in December)
NEW_YORK = {
    "reason": "audit",
    "from": "2024-12-20T09:00:00",
    "to": "2024-12-20T17:00:00",
    "time-zone": "America/New_York",
}
#: a date alone is midnight in the window's time zone
DATES = {"reason": "move", "from": "2024-12-20", "to": "2024-12-21", "time-zone": "Asia/Tokyo"}

ONE_OFF: list[tuple[str, dict[str, str], datetime, bool]] = [
    ("before-start", YEAR_END, z("2024-12-19T23:59:59"), False),
    ("at-start", YEAR_END, z("2024-12-20T00:00:00"), True),
    ("inside", YEAR_END, z("2024-12-25T12:00:00"), True),
    ("just-before-end", YEAR_END, z("2025-01-01T23:59:59"), True),
    ("at-end", YEAR_END, z("2025-01-02T00:00:00"), False),
    ("offset-before", PARIS_OFFSET, z("2024-12-20T07:59:59"), False),
    ("offset-start", PARIS_OFFSET, z("2024-12-20T08:00:00"), True),
    ("offset-end", PARIS_OFFSET, z("2024-12-20T16:00:00"), False),
    ("zone-before", NEW_YORK, z("2024-12-20T13:59:59"), False),
    ("zone-start", NEW_YORK, z("2024-12-20T14:00:00"), True),
    ("zone-last-second", NEW_YORK, z("2024-12-20T21:59:59"), True),
    ("zone-end", NEW_YORK, z("2024-12-20T22:00:00"), False),
    ("date-before", DATES, z("2024-12-19T14:59:59"), False),
    ("date-start", DATES, z("2024-12-19T15:00:00"), True),
    ("date-end", DATES, z("2024-12-20T15:00:00"), False),
]


@pytest.mark.parametrize(
    ("window", "now", "frozen"), [c[1:] for c in ONE_OFF], ids=[c[0] for c in ONE_OFF]
)
def test_one_off_freeze_window(window: dict[str, str], now: datetime, frozen: bool) -> None:
    verdict = verdict_of({"freeze": [window]}, now=now)
    reason = window["reason"]
    expected = (
        f"{ENV} is frozen now: {reason}" if frozen else f"not in the freeze window ({reason})"
    )
    assert verdict.checks == (Check("freeze", not frozen, expected, overridable=True),)
    assert verdict.allowed is not frozen
    if frozen:
        assert verdict.refusal() == f"policy rule `freeze`: {expected}"


# -- freeze: weekly windows in a time zone ---------------------------------------------------------

FRIDAY_LONDON = {
    "reason": "no Friday releases",
    "days": ["fri"],
    "start": "16:00",
    "end": "18:00",
    "time-zone": "Europe/London",
}
#: Sunday 2024-03-31 clocks go 01:00 GMT -> 02:00 BST; Sunday 2024-10-27 02:00 BST -> 01:00 GMT
SUNDAY_NIGHT_LONDON = {
    "reason": "maintenance",
    "days": ["sun"],
    "start": "01:00",
    "end": "03:00",
    "time-zone": "Europe/London",
}
FRIDAY_EVENING_BERLIN = {
    "reason": "Friday evening",
    "days": ["fri"],
    "start": "22:00",
    "end": "24:00",
    "time-zone": "Europe/Berlin",
}
WEEKEND_LOS_ANGELES = {
    "reason": "weekend",
    "days": ["sat", "sun"],
    "start": "00:00",
    "end": "24:00",
    "time-zone": "America/Los_Angeles",
}
SATURDAY_TOKYO = {
    "reason": "Saturday in Tokyo",
    "days": ["sat"],
    "start": "00:00",
    "end": "24:00",
    "time-zone": "Asia/Tokyo",
}

WEEKLY: list[tuple[str, dict[str, Any], datetime, bool]] = [
    # winter: London is UTC
    ("winter-before", FRIDAY_LONDON, z("2024-01-12T15:59:59"), False),
    ("winter-start", FRIDAY_LONDON, z("2024-01-12T16:00:00"), True),
    ("winter-17:30Z", FRIDAY_LONDON, z("2024-01-12T17:30:00"), True),
    ("winter-end", FRIDAY_LONDON, z("2024-01-12T18:00:00"), False),
    ("winter-thursday", FRIDAY_LONDON, z("2024-01-11T16:30:00"), False),
    # summer: London is UTC+1, the window is 15:00-17:00 UTC
    ("summer-before", FRIDAY_LONDON, z("2024-06-14T14:59:59"), False),
    ("summer-start", FRIDAY_LONDON, z("2024-06-14T15:00:00"), True),
    ("summer-last-minute", FRIDAY_LONDON, z("2024-06-14T16:59:00"), True),
    ("summer-17:30Z", FRIDAY_LONDON, z("2024-06-14T17:30:00"), False),
    # the night the clocks go forward: 01:00-02:00 local does not exist
    ("spring-forward-00:59GMT", SUNDAY_NIGHT_LONDON, z("2024-03-31T00:59:59"), False),
    ("spring-forward-02:00BST", SUNDAY_NIGHT_LONDON, z("2024-03-31T01:00:00"), True),
    ("spring-forward-02:59BST", SUNDAY_NIGHT_LONDON, z("2024-03-31T01:59:59"), True),
    ("spring-forward-03:00BST", SUNDAY_NIGHT_LONDON, z("2024-03-31T02:00:00"), False),
    # the night the clocks go back: 01:00-02:00 local happens twice, both count
    ("fall-back-00:59BST", SUNDAY_NIGHT_LONDON, z("2024-10-26T23:59:59"), False),
    ("fall-back-01:00BST", SUNDAY_NIGHT_LONDON, z("2024-10-27T00:00:00"), True),
    ("fall-back-01:00GMT", SUNDAY_NIGHT_LONDON, z("2024-10-27T01:00:00"), True),
    ("fall-back-02:59GMT", SUNDAY_NIGHT_LONDON, z("2024-10-27T02:59:59"), True),
    ("fall-back-03:00GMT", SUNDAY_NIGHT_LONDON, z("2024-10-27T03:00:00"), False),
    # "24:00" runs to midnight; midnight itself is the next day
    ("24:00-before", FRIDAY_EVENING_BERLIN, z("2024-06-14T19:59:59"), False),
    ("24:00-start", FRIDAY_EVENING_BERLIN, z("2024-06-14T20:00:00"), True),
    ("24:00-last-second", FRIDAY_EVENING_BERLIN, z("2024-06-14T21:59:59"), True),
    ("24:00-midnight", FRIDAY_EVENING_BERLIN, z("2024-06-14T22:00:00"), False),
    # whole days, in the window's zone, not UTC
    ("weekend-friday-23:59PDT", WEEKEND_LOS_ANGELES, z("2024-06-15T06:59:59"), False),
    ("weekend-saturday-00:00PDT", WEEKEND_LOS_ANGELES, z("2024-06-15T07:00:00"), True),
    ("weekend-sunday-23:59PDT", WEEKEND_LOS_ANGELES, z("2024-06-17T06:59:59"), True),
    ("weekend-monday-00:00PDT", WEEKEND_LOS_ANGELES, z("2024-06-17T07:00:00"), False),
    ("tokyo-friday-UTC-is-saturday", SATURDAY_TOKYO, z("2024-06-14T15:00:00"), True),
    ("tokyo-friday", SATURDAY_TOKYO, z("2024-06-14T14:59:59"), False),
    ("tokyo-saturday-UTC-is-sunday", SATURDAY_TOKYO, z("2024-06-15T15:00:00"), False),
]


@pytest.mark.parametrize(
    ("window", "now", "frozen"), [c[1:] for c in WEEKLY], ids=[c[0] for c in WEEKLY]
)
def test_weekly_freeze_window(window: dict[str, Any], now: datetime, frozen: bool) -> None:
    verdict = verdict_of({"freeze": [window]}, now=now)
    check = only(verdict, "freeze")
    assert check.ok is not frozen
    assert verdict.allowed is not frozen
    assert in_window(FreezeWindow.of(window), now) is frozen


def test_a_weekly_window_reads_any_instant_in_its_own_zone() -> None:
    window = {"reason": "r", "days": ["fri"], "start": "16:00", "end": "17:00", "time-zone": "UTC"}
    # 18:30 at UTC+2 is 16:30 UTC; 16:30 at UTC+2 is 14:30 UTC
    frozen = FreezeWindow.of(window)
    assert in_window(frozen, datetime.fromisoformat("2024-06-14T18:30:00+02:00")) is True
    assert in_window(frozen, datetime.fromisoformat("2024-06-14T16:30:00+02:00")) is False


def test_an_overnight_weekly_window_is_refused_or_spans_midnight() -> None:
    window = {
        "reason": "nightly batch",
        "days": ["fri"],
        "start": "22:00",
        "end": "06:00",
        "time-zone": "UTC",
    }
    try:
        policy_of({"freeze": [window]})
    except WorkflowError:
        return  # refused when loading: acceptable
    assert in_window(FreezeWindow.of(window), z("2024-06-14T23:00:00")) is True


MULTIPLE = [
    {
        "reason": "weekend",
        "days": ["sat", "sun"],
        "start": "00:00",
        "end": "24:00",
        "time-zone": "UTC",
    },
    YEAR_END,
]


@pytest.mark.parametrize(
    ("now", "frozen_by"),
    [
        (z("2024-12-18T12:00:00"), []),  # a Wednesday before year-end
        (z("2024-12-14T12:00:00"), ["weekend"]),  # a Saturday before year-end
        (z("2024-12-19T23:59:59"), []),
        (z("2024-12-20T12:00:00"), ["year-end"]),  # a Friday inside year-end
        (z("2024-12-21T12:00:00"), ["weekend", "year-end"]),  # a Saturday inside year-end
    ],
)
def test_multiple_windows_each_make_a_check(now: datetime, frozen_by: list[str]) -> None:
    verdict = verdict_of({"freeze": MULTIPLE}, now=now)
    freezes = [c for c in verdict.checks if c.rule == "freeze"]
    assert [c.ok for c in freezes] == [w["reason"] not in frozen_by for w in MULTIPLE]
    assert verdict.allowed is not frozen_by
    assert verdict.refusal() == "; ".join(
        f"policy rule `freeze`: {ENV} is frozen now: {reason}" for reason in frozen_by
    )


# -- promotion ------------------------------------------------------------------------------------

PROMOTION: list[tuple[str, list[dict[str, Any]], bool]] = [
    ("no-history", [], False),
    ("success", [success()], True),
    (
        "success-among-others",
        [success(status="failure"), success(), success(digest="e" * 64)],
        True,
    ),
    ("failure", [success(status="failure")], False),
    ("aborted", [success(status="aborted")], False),
    ("timed-out", [success(status="timed-out")], False),
    ("waiting", [success(status="waiting")], False),
    ("running", [success(status="running")], False),
    ("cancelled", [success(status="cancelled")], False),
    ("other-digest", [success(digest="e" * 64)], False),
    ("other-commit", [success(commit="f" * 40)], False),
    ("unknown-commit", [success(commit=None)], False),
    ("other-environment", [success(environment="qa")], False),
    ("prefixed-environment", [success(environment="staging-eu")], False),
    ("production-itself", [success(environment=ENV)], False),
    (
        "digest-from-one-commit-from-another",
        [success(digest="e" * 64), success(commit="f" * 40)],
        False,
    ),
]


@pytest.mark.parametrize(
    ("history", "done"), [c[1:] for c in PROMOTION], ids=[c[0] for c in PROMOTION]
)
def test_promotion_needs_a_success_of_the_same_digest_and_commit(
    history: list[dict[str, Any]], done: bool
) -> None:
    verdict = verdict_of({"promotion": {"after": ["staging"]}}, history=history)
    expected = (
        "this digest and commit succeeded in staging"
        if done
        else "the same workflow digest and commit have not succeeded in staging yet"
    )
    assert verdict.checks == (Check("promotion", done, expected, overridable=True),)
    assert verdict.allowed is done


def test_promotion_after_several_environments_needs_each() -> None:
    spec = {"promotion": {"after": ["qa", "staging"]}}
    half = verdict_of(spec, history=[success()])
    assert [(c.rule, c.ok) for c in half.checks] == [("promotion", False), ("promotion", True)]
    assert half.refusal() == (
        "policy rule `promotion`: the same workflow digest and commit have not succeeded in qa yet"
    )
    both = verdict_of(spec, history=[success(), success(environment="qa")])
    assert both.allowed


def test_promotion_of_an_unknown_commit_counts_an_unknown_commit() -> None:
    """Without git (and no CI commit variable) both runs record no commit: that still promotes."""
    verdict = verdict_of(
        {"promotion": {"after": ["staging"]}}, commit=None, history=[success(commit=None)]
    )
    assert verdict.allowed


def test_promotion_of_an_unknown_commit_does_not_count_another_commit() -> None:
    verdict = verdict_of({"promotion": {"after": ["staging"]}}, commit=None, history=[success()])
    assert not verdict.allowed


# -- approval -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "who"),
    [
        ({"teams": ["release-managers"]}, "release-managers"),
        ({"teams": ["release-managers", "sre"]}, "release-managers, sre"),
        ({"timeout-minutes": 30}, "anyone in the people file"),
    ],
)
def test_the_approval_rule_is_listed_and_always_passes(approval: dict[str, Any], who: str) -> None:
    verdict = verdict_of({"approval": approval})
    assert verdict.checks == (
        Check("approval", True, f"a manual intervention by {who} comes first"),
    )
    assert verdict.allowed


WORKFLOW = """\
name: Demo
approvals:
  file: {remote: origin, branch: approvals, path: approvals}
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml,
          allowed-signers: trust/signers}
steps:
  - id: build
    name: Build
    run: echo build
  - id: deploy
    name: Deploy
    run: echo deploy
"""


@pytest.fixture
def workflow(tmp_path: Path) -> Any:
    (tmp_path / ".git").mkdir()
    path = tmp_path / "deploy.yml"
    path.write_text(WORKFLOW, encoding="utf-8")
    loaded = load_workflow(path)
    assert loaded.workflow is not None
    return loaded.workflow


def test_the_policy_approval_comes_first(workflow: Any) -> None:
    policy = policy_of(
        {
            "approval": {
                "teams": ["release-managers"],
                "require": [{"team": "release-managers", "count": 2}],
                "prevent-self-approval": True,
                "timeout-minutes": 45,
            }
        }
    )
    gated = with_policy_approval(workflow, policy, ENV)
    assert [(s.id, s.kind, s.index) for s in gated.steps] == [
        (POLICY_STEP_ID, "manual", 0),
        ("build", "run", 1),
        ("deploy", "run", 2),
    ]
    gate = gated.steps[0]
    assert POLICY_STEP_ID == "policy-approval"
    assert gate.name == f"Policy approval for {ENV}"
    assert gate.required and gate.unskippable
    assert gate.manual is not None
    assert gate.manual.title == f"Policy approval for {ENV}"
    assert gate.manual.instructions == (
        f"The policy of {ENV} requires an approval before any step runs."
    )
    assert gate.manual.teams == ("release-managers",)
    assert [(q.team, q.count) for q in gate.manual.require] == [("release-managers", 2)]
    assert gate.manual.prevent_self_approval is True
    assert gate.manual.timeout_minutes == 45
    assert gate.manual.sources == ("file",)
    assert gated.digest == workflow.digest


def test_the_policy_approval_takes_its_title_and_instructions(workflow: Any) -> None:
    policy = policy_of({"approval": {"title": "CAB sign-off", "instructions": "Check the ticket."}})
    gate = with_policy_approval(workflow, policy, ENV).steps[0]
    assert gate.manual is not None
    assert (gate.manual.title, gate.manual.instructions) == ("CAB sign-off", "Check the ticket.")
    assert gate.manual.teams == ()


@pytest.mark.parametrize(
    ("policy", "environment"),
    [
        (None, ENV),
        ({"environments": {ENV: {"allowed-refs": ["refs/heads/main"]}}}, ENV),
        ({"environments": {ENV: {"approval": {"teams": ["ops"]}}}}, "staging"),
    ],
    ids=["no-policy", "no-approval-rule", "other-environment"],
)
def test_no_approval_rule_leaves_the_workflow_alone(
    workflow: Any, policy: dict[str, Any] | None, environment: str
) -> None:
    parsed = None if policy is None else parse_policy(json.dumps(policy).encode(), "policy.yml")
    assert with_policy_approval(workflow, parsed, environment) is workflow


# -- break-glass ----------------------------------------------------------------------------------

AROUND_NOW = {
    "reason": "quarter close",
    "from": (NOW - timedelta(hours=1)).isoformat(),
    "to": (NOW + timedelta(hours=1)).isoformat(),
}
GUARDED = {
    "allowed-refs": ["refs/heads/main"],
    "freeze": [AROUND_NOW],
    "promotion": {"after": ["staging"]},
    "approval": {"teams": ["release-managers"]},
    "break-glass": {"teams": ["sre"]},
}
FROZEN = "production is frozen now: quarter close"
NOT_PROMOTED = "the same workflow digest and commit have not succeeded in staging yet"


def glass(**arguments: Any) -> Verdict:
    values: dict[str, Any] = {
        "actor": "alice",
        "actor_teams": ["sre"],
        "break_glass": "prod is down",
    }
    values.update(arguments)
    return verdict_of(GUARDED, **values)


def test_break_glass_overrides_freeze_and_promotion_and_is_recorded() -> None:
    verdict = glass()
    assert verdict.allowed
    assert verdict.checks == (
        Check("allowed-refs", True, "refs/heads/main is one of refs/heads/main"),
        Check("freeze", False, FROZEN, overridable=True, overridden=True),
        Check("promotion", False, NOT_PROMOTED, overridable=True, overridden=True),
        Check("approval", True, "a manual intervention by release-managers comes first"),
    )
    assert verdict.break_glass == BreakGlass(
        by="alice",
        reason="prod is down",
        overrode=("freeze", "promotion"),
        at="2024-06-14T12:00:00+00:00",
    )
    # as the run record keeps it
    assert verdict.break_glass.to_json() == {
        "by": "alice",
        "reason": "prod is down",
        "overrode": ["freeze", "promotion"],
        "at": "2024-06-14T12:00:00+00:00",
    }
    assert describe(verdict) == [
        "ok         allowed-refs: refs/heads/main is one of refs/heads/main",
        f"OVERRIDDEN freeze: {FROZEN}",
        f"OVERRIDDEN promotion: {NOT_PROMOTED}",
        "ok         approval: a manual intervention by release-managers comes first",
        "break-glass by alice: prod is down (overrides freeze, promotion)",
    ]


def test_break_glass_records_only_what_it_overrode() -> None:
    verdict = glass(history=[success()])
    assert verdict.allowed
    assert verdict.break_glass is not None
    assert verdict.break_glass.overrode == ("freeze",)
    assert only(verdict, "promotion") == Check(
        "promotion", True, "this digest and commit succeeded in staging", overridable=True
    )


def test_break_glass_with_nothing_to_override_records_nothing() -> None:
    calm = NOW + timedelta(days=1)
    verdict = glass(now=calm, history=[success()])
    assert verdict.allowed
    assert verdict.break_glass is None
    assert not any(c.overridden for c in verdict.checks)


def test_break_glass_does_not_override_allowed_refs() -> None:
    verdict = glass(ref="refs/heads/feature-x")
    assert not verdict.allowed
    assert verdict.refusal() == (
        "policy rule `allowed-refs`: refs/heads/feature-x is not one of refs/heads/main"
    )
    assert only(verdict, "allowed-refs").overridden is False


@pytest.mark.parametrize("reason", [None, "", "   ", "\t\n"], ids=["none", "empty", "spaces", "ws"])
def test_break_glass_needs_a_reason(reason: str | None) -> None:
    verdict = glass(break_glass=reason)
    assert not verdict.allowed
    assert verdict.break_glass is None
    assert verdict.refusal() == (
        f"policy rule `freeze`: {FROZEN}; policy rule `promotion`: {NOT_PROMOTED}"
    )


@pytest.mark.parametrize(
    ("actor", "teams", "who"),
    [
        ("bob", ["release-managers"], "bob"),
        ("bob", [], "bob"),
        ("", [], "the deployer"),
        # a team with the same name in another environment's break-glass list does not count
        ("carol", ["dev"], "carol"),
    ],
)
def test_break_glass_only_for_members_of_a_break_glass_team(
    actor: str, teams: list[str], who: str
) -> None:
    verdict = glass(actor=actor, actor_teams=teams)
    assert not verdict.allowed
    assert verdict.break_glass is None
    assert not any(c.overridden for c in verdict.checks)
    assert only(verdict, "break-glass") == Check(
        "break-glass", False, f"{who} is not in a break-glass team of this environment"
    )
    assert verdict.refusal() == (
        f"policy rule `freeze`: {FROZEN}; policy rule `promotion`: {NOT_PROMOTED}; "
        f"policy rule `break-glass`: {who} is not in a break-glass team of this environment"
    )


def test_break_glass_of_another_environment_does_not_count() -> None:
    policy = policy_of(
        {"freeze": [AROUND_NOW], "break-glass": {"teams": ["sre"]}},
        staging={"break-glass": {"teams": ["dev"]}},
    )
    verdict = evaluate(
        policy,
        ENV,
        ref="refs/heads/main",
        now=NOW,
        history=(),
        digest=DIGEST,
        commit=COMMIT,
        actor="carol",
        actor_teams=["dev"],
        break_glass="prod is down",
    )
    assert not verdict.allowed


def test_an_environment_without_break_glass_cannot_be_overridden() -> None:
    verdict = verdict_of(
        {"freeze": [AROUND_NOW]}, actor="alice", actor_teams=["sre"], break_glass="prod is down"
    )
    assert not verdict.allowed
    assert [c.rule for c in verdict.checks if not c.ok] == ["freeze", "break-glass"]


def test_a_refused_verdict_is_described_rule_by_rule() -> None:
    verdict = verdict_of(GUARDED, ref="refs/heads/feature-x")
    assert describe(verdict) == [
        "FAIL       allowed-refs: refs/heads/feature-x is not one of refs/heads/main",
        f"FAIL       freeze: {FROZEN}",
        f"FAIL       promotion: {NOT_PROMOTED}",
        "ok         approval: a manual intervention by release-managers comes first",
    ]


# -- the ref being deployed, from CI variables ----------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "ref"),
    [
        ({"GITHUB_REF": "refs/heads/main"}, "refs/heads/main"),
        ({"GITHUB_REF": "refs/tags/v1.2.0", "CI_COMMIT_BRANCH": "x"}, "refs/tags/v1.2.0"),
        ({"CI_COMMIT_TAG": "v1.2.0", "CI_COMMIT_REF_NAME": "v1.2.0"}, "refs/tags/v1.2.0"),
        ({"CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main"}, "refs/heads/main"),
        ({"CI_COMMIT_REF_NAME": "feature-x"}, "refs/heads/feature-x"),
    ],
)
def test_the_ref_comes_from_ci_variables(environ: dict[str, str], ref: str, tmp_path: Path) -> None:
    assert current_ref(environ, Git(tmp_path)) == ref


def test_no_ci_variables_and_no_repository_is_an_unknown_ref(tmp_path: Path) -> None:
    assert current_ref({}, Git(tmp_path / "nowhere")) is None


def test_the_recorded_history_is_read_once_and_only_when_a_rule_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.engine import record
    from runner.engine.history import run_history

    store = record.RecordStore(tmp_path)
    for run_id, environment in (("r1", "qa"), ("r2", "staging")):
        store.save(
            record.RunRecord(
                run_id=run_id,
                workflow_path="w.yml",
                workflow_name="w",
                digest=DIGEST,
                environment=environment,
                status="success",
                commit=COMMIT,
            )
        )
    reads: list[str] = []
    real_list = record.RecordStore.list

    def counted(self: record.RecordStore) -> Any:
        reads.append("list")
        return real_list(self)

    monkeypatch.setattr(record.RecordStore, "list", counted)
    history = run_history(tmp_path)
    assert verdict_of({}, history=history).allowed
    assert reads == []  # no promotion rule: the state folder is not read
    both = verdict_of({"promotion": {"after": ["qa", "staging"]}}, history=history)
    assert both.allowed  # each environment found: the history was iterated twice
    assert reads == ["list"]
