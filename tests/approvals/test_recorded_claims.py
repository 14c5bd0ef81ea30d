"""What ``runner runs show`` believes of a recorded decision: what its signed body says, with
the record's masks (``***``) standing for what they hid, and nothing more."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from runner.approvals.request import inputs_digest
from runner.approvals.verify import Claims, _masking_of, masked_parts


@pytest.mark.parametrize(
    ("recorded", "signed"),
    [
        ("ok", "ok"),
        ("pw ***", "pw hunter2"),
        ("*** and ***", "a and b"),
        # a secret beside a `*` the notes had: `*S` masked is `****`, `*S*` is `*****`
        ("****", "*S"),
        ("*****", "*S*"),
        ("*****", "**S"),
    ],
)
def test_a_masking_of_the_signed_text_matches(recorded: str, signed: str) -> None:
    assert _masking_of(recorded, signed)


@pytest.mark.parametrize(
    ("recorded", "signed"),
    [
        ("ok", "OK"),
        ("pw ***", "pw "),  # a mask hides one character or more
        ("x *** y", "x  y"),
        ("*** and ***", "a and "),
        ("*****", "S"),  # five stars hide three characters or more
        ("Reviewed CHG-77", "ok from alice"),
    ],
)
def test_anything_else_does_not(recorded: str, signed: str) -> None:
    assert not _masking_of(recorded, signed)


def test_a_masking_is_judged_in_linear_time_whatever_the_record_holds() -> None:
    # a regular expression built from the record (`a.+?a.+?...`) backtracks for ever here
    recorded = "a***" * 50_000 + "b"
    signed = "aa" * 50_000 + "c"
    assert not _masking_of(recorded, signed)


def test_masked_parts_are_counted_in_notes_and_fields() -> None:
    claims = Claims(
        run_id="r",
        step_id="s",
        environment="e",
        digest="d",
        commit=None,
        inputs={},
        result="proceed",
        username="alice",
        notes="pw *** and ***",
        fields={"ticket": "CHG-1", "token": "****"},
    )
    assert masked_parts(claims) == 3


def test_inputs_holding_half_a_character_are_hashed_not_refused() -> None:
    assert inputs_digest({"x": "ab\ud800"}) != inputs_digest({"x": "ab"})
    assert inputs_digest({}) is None


def test_an_approval_signed_before_inputs_were_bound_says_nothing_of_them() -> None:
    """Not "NOT valid" for every run with inputs approved by an older runner: its body has no
    `inputs_digest`, and what it never said is not held against it."""
    from runner.approvals.document import ApprovalBody, SignedApproval
    from runner.approvals.identity import Person
    from runner.approvals.verify import SignedFileReport, unproven_claims

    body = ApprovalBody(
        run_id="r",
        step_id="gate",
        environment="production",
        workflow_digest="d" * 64,
        commit="c" * 40,
        decision="proceed",
        approver="alice@example.com",
        issued_at="2026-01-01T00:00:00Z",
        expires_at="2026-01-01T01:00:00Z",
        notes="ok",
    )
    report = SignedFileReport(
        signed=SignedApproval(body, body.encode(), "alice@example.com", "SHA256:x", "ssh-ed25519"),
        person=Person(id="u-alice", username="alice", display_name="Alice"),
    )
    claims = Claims(
        run_id="r",
        step_id="gate",
        environment="production",
        digest="d" * 64,
        commit="c" * 40,
        inputs={"version": "1.4.2"},
        result="proceed",
        username="alice",
        notes="ok",
    )
    assert unproven_claims(report, claims) == []
    assert report.signed is not None
    other = replace(body, inputs_digest=inputs_digest({"v": "9"}))
    bound = replace(report, signed=replace(report.signed, body=other))
    assert unproven_claims(bound, claims) == [
        f"the record says inputs digest {inputs_digest(claims.inputs)!r}, the signed approval "
        f"{inputs_digest({'v': '9'})!r}"
    ]
