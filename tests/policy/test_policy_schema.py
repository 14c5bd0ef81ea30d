"""Policy files that do not hold: each problem is reported where it is, as ``file:line:col``, and
the documentation's example policy is a valid one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from textwrap import dedent

import pytest
from helpers.paths import ROOT

from runner.errors import WorkflowError
from runner.policy import evaluate, parse_policy

SOURCE = "refs/remotes/origin/approvals-trust:trust/policy.yml"
WINDOW_NEEDS = "a freeze window needs `from` and `to`, or weekly `days`, `start` and `end`"


def problems(text: str) -> list[tuple[int, int, str]]:
    """(line, column, message) of each diagnostic; every one must be in the policy file."""
    with pytest.raises(WorkflowError) as caught:
        parse_policy(dedent(text).encode(), SOURCE)
    assert caught.value.diagnostics, "a WorkflowError without diagnostics"
    assert {d.location.path for d in caught.value.diagnostics} == {SOURCE}
    return [(d.location.line, d.location.column, d.message) for d in caught.value.diagnostics]


INVALID: list[tuple[str, str, list[tuple[int, int, str]]]] = [
    (
        "window-with-neither-from-to-nor-days",
        """\
        environments:
          production:
            freeze:
              - reason: Quarter close
        """,
        [(4, 9, WINDOW_NEEDS)],
    ),
    (
        "window-with-days-but-no-times",
        """\
        environments:
          production:
            freeze:
              - reason: Weekend
                days: [sat, sun]
        """,
        [(4, 9, WINDOW_NEEDS)],
    ),
    (
        "window-with-from-but-no-to",
        """\
        environments:
          production:
            freeze:
              - reason: Year end
                from: "2024-12-20T00:00:00Z"
        """,
        [(4, 9, WINDOW_NEEDS)],
    ),
    (
        "window-with-both-kinds",
        """\
        environments:
          production:
            freeze:
              - reason: Both
                from: "2024-12-20T00:00:00Z"
                to: "2025-01-02T00:00:00Z"
                days: [fri]
                start: "16:00"
                end: "24:00"
                time-zone: UTC
        """,
        [(4, 9, WINDOW_NEEDS)],
    ),
    (
        "window-without-reason",
        """\
        environments:
          production:
            freeze:
              - from: "2024-12-20T00:00:00Z"
                to: "2025-01-02T00:00:00Z"
        """,
        [(4, 9, "an item of `freeze` is missing the required key `reason`")],
    ),
    (
        "unknown-rule",
        """\
        environments:
          production:
            aproval:
              teams: [release-managers]
        """,
        [(3, 5, "unexpected key `aproval` in `production`; did you mean `approval`?")],
    ),
    (
        "unknown-approval-key",
        """\
        environments:
          production:
            approval: {teams: [ops], timeout: 5}
        """,
        [(3, 30, "unexpected key `timeout` in `approval`; did you mean `timeout-minutes`?")],
    ),
    (
        "unknown-break-glass-key",
        """\
        environments:
          production:
            break-glass: {teams: [sre], reason-required: false}
        """,
        [
            (
                3,
                33,
                "unexpected key `reason-required` in `break-glass`; expected one of `teams`",
            )
        ],
    ),
    (
        "start-is-not-a-time",
        """\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [fri]
                start: "25:00"
                end: "23:00"
                time-zone: UTC
        """,
        [(6, 16, "`start` must be a time like 16:00, got '25:00'")],
    ),
    (
        "start-in-words",
        """\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [fri]
                start: 4pm
                end: "24:00"
                time-zone: UTC
        """,
        [(6, 16, "`start` must be a time like 16:00, got '4pm'")],
    ),
    (
        "end-is-not-a-time",
        """\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [fri]
                start: "16:00"
                end: "25:00"
                time-zone: UTC
        """,
        [(7, 14, "`end` must be a time like 23:59, or 24:00 for the end of the day, got '25:00'")],
    ),
    (
        "unknown-day",
        """\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [friday]
                start: "16:00"
                end: "24:00"
                time-zone: UTC
        """,
        [
            (
                5,
                16,
                "an item of `days` must be one of `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, "
                "`sun`, got 'friday'",
            )
        ],
    ),
    (
        "weekly-without-time-zone",
        """\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [fri]
                start: "16:00"
                end: "24:00"
        """,
        [(4, 9, "a weekly freeze window needs `time-zone` (e.g. Europe/London or UTC)")],
    ),
    (
        "unknown-time-zone",
        """\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [fri]
                start: "16:00"
                end: "24:00"
                time-zone: Mars/Olympus_Mons
        """,
        [(4, 9, "unknown time zone 'Mars/Olympus_Mons'")],
    ),
    (
        "one-off-without-offset-or-zone",
        """\
        environments:
          production:
            freeze:
              - reason: Year end
                from: "2024-12-20T00:00:00"
                to: "2025-01-02T00:00:00"
        """,
        [(4, 9, "time '2024-12-20T00:00:00' needs a UTC offset or `time-zone`")],
    ),
    (
        "one-off-ending-before-it-starts",
        """\
        environments:
          production:
            freeze:
              - reason: Year end
                from: "2025-01-02T00:00:00Z"
                to: "2024-12-20T00:00:00Z"
        """,
        [(4, 9, "a freeze window must end after it starts")],
    ),
    (
        "one-off-of-no-length",
        """\
        environments:
          production:
            freeze:
              - reason: Year end
                from: "2024-12-20T00:00:00Z"
                to: "2024-12-20T00:00:00Z"
        """,
        [(4, 9, "a freeze window must end after it starts")],
    ),
    (
        "second-window-is-the-bad-one",
        """\
        environments:
          production:
            freeze:
              - reason: Year end
                from: "2024-12-20T00:00:00Z"
                to: "2025-01-02T00:00:00Z"
              - reason: Friday
                days: [fri]
                start: "16:00"
                end: "24:00"
        """,
        [(7, 9, "a weekly freeze window needs `time-zone` (e.g. Europe/London or UTC)")],
    ),
    (
        "freeze-is-not-a-list",
        """\
        environments:
          production:
            freeze: {reason: Year end}
        """,
        [(3, 13, "`freeze` must be a list, got a mapping")],
    ),
    (
        "promotion-without-after",
        """\
        environments:
          production:
            promotion: {}
        """,
        [(3, 16, "`promotion` is missing the required key `after`")],
    ),
    (
        "empty-allowed-refs",
        """\
        environments:
          production:
            allowed-refs: []
        """,
        [(3, 19, "`allowed-refs` must not be empty")],
    ),
    (
        "empty-break-glass-teams",
        """\
        environments:
          production:
            break-glass: {teams: []}
        """,
        [(3, 26, "`teams` must not be empty")],
    ),
    (
        "quorum-without-count",
        """\
        environments:
          production:
            approval:
              require: [{team: release-managers}]
        """,
        [(4, 17, "an item of `require` is missing the required key `count`")],
    ),
    (
        "quorum-of-nobody",
        """\
        environments:
          production:
            approval:
              require: [{team: release-managers, count: 0}]
        """,
        [(4, 49, "`count` must be at least 1, got 0")],
    ),
    (
        "approval-timeout-of-zero",
        """\
        environments:
          production:
            approval: {timeout-minutes: 0}
        """,
        [(3, 33, "`timeout-minutes` must be more than 0, got 0")],
    ),
    (
        "bad-environment-name",
        """\
        environments:
          prod uction: {}
        """,
        [(2, 3, "`prod uction` is not an environment name")],
    ),
    (
        "duplicate-rule",
        """\
        environments:
          production:
            approval: {teams: [ops]}
            approval: {teams: [dev]}
        """,
        [(4, 5, "key 'approval' is duplicated (first defined at line 3)")],
    ),
    (
        "not-a-mapping",
        """\
        - production
        """,
        [(1, 1, "a policy must be a mapping with `environments`")],
    ),
    ("empty", "", [(1, 1, "file is empty; expected a YAML mapping")]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_an_invalid_policy_is_reported_where_it_is(
    text: str, expected: list[tuple[int, int, str]]
) -> None:
    assert problems(text) == expected


def test_a_missing_environments_key_is_reported() -> None:
    found = problems("environment:\n  production: {}\n")
    assert (
        1,
        1,
        "unexpected key `environment` at the top level; did you mean `environments`?",
    ) in (found)
    assert [(line, column) for line, column, _ in found] == [(1, 1), (1, 1)]


def test_a_missing_environments_key_is_not_called_a_workflow_problem() -> None:
    assert not any("workflow" in message for _, _, message in problems("other: 1\n"))


def test_a_weekly_window_with_a_stray_from_is_a_diagnostic() -> None:
    found = problems(
        """\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [fri]
                start: "16:00"
                end: "24:00"
                time-zone: UTC
                from: "2024-12-20T00:00:00Z"
        """
    )
    assert found and all(line >= 4 for line, _, _ in found)


def test_an_end_after_24_00_is_not_a_time() -> None:
    found = problems(
        """\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [fri]
                start: "16:00"
                end: "24:30"
                time-zone: UTC
        """
    )
    assert [(line, column) for line, column, _ in found] == [(7, 14)]


@pytest.mark.parametrize(("start", "end"), [("16:00", "16:00"), ("22:00", "06:00")])
def test_a_weekly_window_that_never_matches_is_refused(start: str, end: str) -> None:
    found = problems(
        f"""\
        environments:
          production:
            freeze:
              - reason: Friday
                days: [fri]
                start: "{start}"
                end: "{end}"
                time-zone: UTC
        """
    )
    assert [(line, column) for line, column, _ in found] == [(4, 9)]


@pytest.mark.parametrize(
    "text",
    [
        "environments: {}\n",
        "environments:\n  staging: {}\n",
        "environments:\n  production:\n    freeze:\n      - {reason: r, days: [sun],"
        ' start: "00:00", end: "24:00", time-zone: UTC}\n',
        'environments:\n  production:\n    freeze:\n      - {reason: r, from: "2024-12-20",'
        ' to: "2024-12-21", time-zone: Europe/Paris}\n',
        "environments:\n  production:\n    approval: {}\n",
    ],
    ids=["no-environments", "empty-environment", "whole-day", "dates-in-a-zone", "bare-approval"],
)
def test_valid_policies(text: str) -> None:
    assert isinstance(parse_policy(text.encode(), SOURCE).environments, dict)


# -- the documentation's example ------------------------------------------------------------------

DOC = ROOT / "docs" / "policy.md"
FENCE = re.compile(r"^```yaml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def yaml_blocks() -> list[str]:
    return [m.group(1) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))]


def test_the_documented_policy_is_valid() -> None:
    policy = parse_policy(yaml_blocks()[0].encode(), "docs/policy.md")
    environments = policy.environments
    assert {"staging", "production"} <= set(environments)
    production = environments["production"]
    # every rule the policy file can hold
    assert production.approval is not None
    assert production.allowed_refs and production.freeze and production.break_glass_teams
    assert production.promotion_after == ("staging",)


def test_the_documented_workflow_reads_the_policy_from_the_trust_ref() -> None:
    from ruamel.yaml import YAML

    workflows = [b for b in yaml_blocks() if b.startswith("name:")]
    assert workflows, "docs/policy.md should show the workflow's `approvals.trust` settings"
    trust = YAML(typ="safe", pure=True).load(workflows[0])["approvals"]["trust"]
    assert trust["ref"] == "refs/remotes/origin/approvals-trust"
    assert trust["policy"] == "policy.yml"


@pytest.mark.parametrize(
    ("when", "frozen_by"),
    [
        ("2024-06-12T12:00:00", []),  # a Wednesday
        ("2024-06-14T13:59:00", []),  # Friday 14:59 in London (summer)
        ("2024-06-14T14:00:00", ["No Friday afternoon releases"]),  # Friday 15:00 in London
        ("2024-01-12T14:30:00", []),  # Friday 14:30 in London (winter)
        ("2024-06-15T09:00:00", ["Weekend"]),
        ("2024-12-23T09:00:00", ["Year-end change freeze"]),  # a Monday
        ("2024-12-21T09:00:00", ["Weekend", "Year-end change freeze"]),
    ],
)
def test_the_documented_policy_freezes_as_the_doc_says(when: str, frozen_by: list[str]) -> None:
    policy = parse_policy(yaml_blocks()[0].encode(), "docs/policy.md")
    verdict = evaluate(
        policy,
        "production",
        ref="refs/heads/main",
        now=datetime.fromisoformat(when).replace(tzinfo=UTC),
        history=[
            {"environment": "staging", "status": "success", "digest": "d", "commit": "c"},
        ],
        digest="d",
        commit="c",
    )
    frozen = [c.message.split(": ", 1)[1] for c in verdict.checks if not c.ok]
    assert frozen == frozen_by
    assert verdict.allowed is not frozen_by
