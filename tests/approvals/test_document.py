"""The signed approval body: canonical encoding, strict parsing, binding checks, and
``verify_signed`` with real ``ssh-keygen`` keys (plus a property against ``ssh-keygen -Y verify``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from runner.approvals.allowed_signers import parse_allowed_signers, parse_revoked_keys
from runner.approvals.document import (
    MAX_BODY_BYTES,
    ApprovalBody,
    check_binding,
    check_window,
    instant,
    new_body,
    parse_body,
    verify_signed,
)
from runner.approvals.request import Interruption
from runner.errors import VerificationError

if TYPE_CHECKING:
    from helpers.approval_world import Key, Keys

NAMESPACE = "runner-approval"
NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
DIGEST = "a" * 64
COMMIT = "c" * 40


def request(**changes: Any) -> Interruption:
    base = Interruption(
        id="r1--gate",
        run_id="r1",
        step_id="gate",
        step_name="Approve release",
        title="Approve release",
        instructions="",
        teams=("trading-desk",),
        quorum=(),
        fields=(),
        created=instant(NOW),
        deadline=None,
        environment="production",
        workflow="Seed",
        digest=DIGEST,
        commit=COMMIT,
        inputs={},
        following_steps=(),
        started_by="root",
        prevent_self_approval=False,
        sources=("file",),
        run_started=instant(NOW - timedelta(minutes=1)),
    )
    return replace(base, **changes)


def body(**changes: Any) -> ApprovalBody:
    base = ApprovalBody(
        run_id="r1",
        step_id="gate",
        environment="production",
        workflow_digest=DIGEST,
        commit=COMMIT,
        decision="proceed",
        approver="alice@example.com",
        issued_at=instant(NOW),
        expires_at=instant(NOW + timedelta(hours=12)),
        notes="Desk told",
        fields={"ticket": "CHG-1"},
    )
    return replace(base, **changes)


def as_json(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body().encode())
    data.update(changes)
    return data


def encode(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode()


# -- encoding ----------------------------------------------------------------------------------


def test_encoding_is_canonical_json() -> None:
    raw = body(notes="Déjà vu").encode()
    assert (
        raw
        == (
            '{"approver":"alice@example.com","commit":"' + COMMIT + '","decision":"proceed",'
            '"environment":"production","expires_at":"2026-03-03T00:00:00Z",'
            '"fields":{"ticket":"CHG-1"},"format":"runner-approval/v1",'
            '"issued_at":"2026-03-02T12:00:00Z","notes":"Déjà vu","run_id":"r1","step_id":"gate",'
            '"workflow_digest":"' + DIGEST + '"}\n'
        ).encode()
    )
    assert parse_body(raw) == body(notes="Déjà vu")


def test_new_body_from_a_request_file() -> None:
    made = new_body(
        request().to_dict(),
        "abort",
        "bob@example.com",
        "not today",
        {},
        NOW,
        timedelta(minutes=30),
    )
    assert made == body(
        decision="abort",
        approver="bob@example.com",
        notes="not today",
        fields={},
        expires_at="2026-03-02T12:30:00Z",
    )
    assert parse_body(made.encode()) == made


def test_optional_keys_may_be_left_out() -> None:
    data = as_json()
    del data["notes"], data["fields"]
    assert parse_body(encode(data)) == body(notes="", fields={})


def test_commit_may_be_null() -> None:
    assert parse_body(encode(as_json(commit=None))) == body(commit=None)


# -- strict parsing ----------------------------------------------------------------------------

CANONICAL = body().encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"notes":"x",' + CANONICAL[1:], "approval body has the key 'notes' twice"),
        (
            CANONICAL.replace(b'"CHG-1"', b'"CHG-1","ticket":"CHG-2"'),
            "approval body has the key 'ticket' twice",
        ),
        (CANONICAL + b"{}", "approval body has data after the JSON document"),
        (CANONICAL + b"\n", "approval body has data after the JSON document"),
        (CANONICAL[:-1] + b" ", "approval body has data after the JSON document"),
        (CANONICAL[:-1] + b"\r\n", "approval body has data after the JSON document"),
        (
            b" " + CANONICAL,
            "approval body is not JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        (b"[]\n", "approval body must be a JSON object"),
        (b"\xff\xfe{}", "approval body is not UTF-8"),
        (b" " * (MAX_BODY_BYTES + 1), "approval body is too large"),
        (encode(as_json(extra="1")), "approval body has unknown key 'extra'"),
        (
            encode({k: v for k, v in as_json().items() if k != "approver"}),
            "approval body lacks 'approver'",
        ),
        (
            encode({k: v for k, v in as_json().items() if k != "format"}),
            "approval body lacks 'format'",
        ),
        (
            encode({k: v for k, v in as_json().items() if k != "commit"}),
            "approval body lacks 'commit'",
        ),
        (
            encode(as_json(format="runner-approval/v2")),
            "approval format 'runner-approval/v2' is not runner-approval/v1",
        ),
        (encode(as_json(notes=1)), "`notes` must be a string"),
        (encode(as_json(run_id=None)), "`run_id` must be a string"),
        (encode(as_json(commit=1)), "`commit` must be a string or null"),
        (encode(as_json(fields={"a": 1})), "`fields` must map names to strings"),
        (encode(as_json(fields=["a"])), "`fields` must map names to strings"),
        (encode(as_json(decision="yes")), "decision 'yes' is neither proceed nor abort"),
        (
            encode(as_json(issued_at="2026-03-02T12:00:00+00:00")),
            "`issued_at` must be a UTC time like 2026-01-31T12:00:00Z",
        ),
        (
            encode(as_json(expires_at="2026-13-02T12:00:00Z")),
            "`expires_at` is not a valid time: '2026-13-02T12:00:00Z'",
        ),
    ],
    ids=[
        "duplicate-key",
        "duplicate-field",
        "second-document",
        "two-newlines",
        "trailing-space",
        "crlf",
        "leading-space",
        "array",
        "not-utf8",
        "too-large",
        "unknown-key",
        "missing-approver",
        "missing-format",
        "missing-commit",
        "other-format",
        "notes-not-string",
        "run-id-null",
        "commit-number",
        "field-not-string",
        "fields-list",
        "bad-decision",
        "offset-time",
        "bad-month",
    ],
)
def test_strict_parse_refuses(raw: bytes, reason: str) -> None:
    with pytest.raises(VerificationError) as caught:
        parse_body(raw)
    assert caught.value.message == reason


def test_body_without_trailing_newline_is_accepted() -> None:
    assert parse_body(CANONICAL[:-1]) == body()


# -- binding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"run_id": "r0"}, "approval is for run 'r0', not 'r1'"),
        ({"step_id": "deploy"}, "approval is for step 'deploy', not 'gate'"),
        ({"environment": "staging"}, "approval is for environment 'staging', not 'production'"),
        (
            {"workflow_digest": "b" * 64},
            f"approval is for workflow digest '{'b' * 64}', not '{DIGEST}'",
        ),
        ({"commit": "e" * 40}, f"approval is for commit '{'e' * 40}', not '{COMMIT}'"),
        ({"commit": None}, f"approval is for commit None, not '{COMMIT}'"),
        (
            {"expires_at": "2026-03-02T11:00:00Z"},
            "approval expires before it is issued",
        ),
        (
            {"expires_at": "2026-03-02T12:00:00Z"},
            "approval expires before it is issued",
        ),
        (
            {"expires_at": "2026-03-09T12:00:01Z"},
            "approval claims a validity longer than 7 days",
        ),
        (
            {"issued_at": "2026-03-02T12:05:01Z", "expires_at": "2026-03-02T13:00:00Z"},
            "approval is issued in the future (2026-03-02T12:05:01Z)",
        ),
        (
            {"issued_at": "2026-03-02T10:00:00Z", "expires_at": "2026-03-02T12:00:00Z"},
            "approval expired at 2026-03-02T12:00:00Z",
        ),
        (
            {"issued_at": "2026-03-02T11:53:59Z"},
            "approval was issued at 2026-03-02T11:53:59Z, before the run started",
        ),
    ],
    ids=[
        "run",
        "step",
        "environment",
        "digest",
        "commit",
        "commit-null",
        "expires-before-issue",
        "expires-at-issue",
        "too-long",
        "future",
        "expired-now",
        "before-run",
    ],
)
def test_binding_refuses(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(VerificationError) as caught:
        check_binding(body(**changes), request(), NOW)
    assert caught.value.message == reason


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"issued_at": "2026-03-02T12:05:00Z"},  # exactly the clock skew ahead
        {"issued_at": "2026-03-02T11:54:00Z"},  # exactly the skew before the run started
        {"expires_at": "2026-03-09T12:00:00Z"},  # exactly 7 days
        {"expires_at": "2026-03-02T12:00:01Z"},  # valid one more second
    ],
    ids=["plain", "skew-ahead", "skew-before-run", "seven-days", "last-second"],
)
def test_binding_accepts(changes: dict[str, Any]) -> None:
    check_binding(body(**changes), request(), NOW)


def test_binding_without_a_deployed_commit_ignores_the_body_commit() -> None:
    check_binding(body(commit="e" * 40), request(commit=None), NOW)


def test_binding_without_a_run_start_accepts_old_issue_times() -> None:
    check_binding(body(issued_at="2026-03-01T12:00:00Z"), request(run_started=""), NOW)


# -- verify_signed with real keys --------------------------------------------------------------


@dataclass(frozen=True)
class Trust:
    keys: Keys
    signers: list[Any]
    revoked: frozenset[bytes]
    sign: Callable[..., bytes]

    def verify(self, raw: bytes, armored: bytes, at: datetime = NOW) -> Any:
        return verify_signed(
            raw,
            armored,
            signers=self.signers,
            revoked=self.revoked,
            namespace=NAMESPACE,
            at=at,
        )

    def refusal(self, raw: bytes, armored: bytes) -> str:
        with pytest.raises(VerificationError) as caught:
            self.verify(raw, armored)
        return caught.value.message


@pytest.fixture(scope="module")
def trust(keys: Keys, sign: Callable[..., bytes]) -> Trust:
    text = keys.allowed_signers()
    return Trust(
        keys,
        parse_allowed_signers(text, source="allowed_signers"),
        parse_revoked_keys(keys.revoked_keys(), source="revoked_keys"),
        sign,
    )


def raw_for(key: Key, **changes: Any) -> bytes:
    return body(approver=key.principal, **changes).encode()


def test_verify_signed_accepts_a_good_signature(trust: Trust) -> None:
    alice = trust.keys.alice
    raw = raw_for(alice)
    signed = trust.verify(raw, trust.sign(raw, alice))
    assert signed.body == body()
    assert signed.raw == raw
    assert (signed.principal, signed.fingerprint, signed.key_type) == (
        "alice@example.com",
        alice.fingerprint,
        "ssh-ed25519",
    )


def test_verify_signed_refuses_a_tampered_body(trust: Trust) -> None:
    alice = trust.keys.alice
    raw = raw_for(alice)
    tampered = raw.replace(b"Desk told", b"Desk sold")
    assert trust.refusal(tampered, trust.sign(raw, alice)) == "signature does not match"


def test_verify_signed_refuses_another_namespace(trust: Trust) -> None:
    alice = trust.keys.alice
    raw = raw_for(alice)
    armored = trust.sign(raw, alice, "other")
    assert trust.refusal(raw, armored) == "wrong namespace 'other', expected 'runner-approval'"


def test_verify_signed_refuses_an_untrusted_key(trust: Trust) -> None:
    mallory = trust.keys.mallory
    raw = raw_for(trust.keys.alice)
    assert trust.refusal(raw, trust.sign(raw, mallory)) == (
        f"key {mallory.fingerprint} is not allowed for principal 'alice@example.com'"
    )
    raw = raw_for(mallory)
    assert trust.refusal(raw, trust.sign(raw, mallory)) == (
        "principal 'mallory@example.com' is not in the allowed signers"
    )


def test_verify_signed_refuses_the_key_of_another_principal(trust: Trust) -> None:
    bob = trust.keys.bob
    raw = raw_for(trust.keys.alice)
    assert trust.refusal(raw, trust.sign(raw, bob)) == (
        f"key {bob.fingerprint} is not allowed for principal 'alice@example.com'"
    )


def test_verify_signed_refuses_a_revoked_key(trust: Trust) -> None:
    dave = trust.keys.dave
    raw = raw_for(dave)
    assert trust.refusal(raw, trust.sign(raw, dave)) == f"key {dave.fingerprint} is revoked"


def test_verify_signed_parses_strictly_after_the_signature(trust: Trust) -> None:
    alice = trust.keys.alice
    raw = b'{"decision":"abort",' + raw_for(alice)[1:]
    assert trust.refusal(raw, trust.sign(raw, alice)) == (
        "approval body has the key 'decision' twice"
    )
    raw = raw_for(alice) + b"garbage"
    assert trust.refusal(raw, trust.sign(raw, alice)) == (
        "approval body has data after the JSON document"
    )


def test_verify_signed_honours_valid_before_in_allowed_signers(trust: Trust) -> None:
    alice = trust.keys.alice
    signers = parse_allowed_signers(
        f'alice@example.com namespaces="{NAMESPACE}",valid-before="20260301Z" {alice.public}\n',
        source="allowed_signers",
    )
    raw = raw_for(alice)
    with pytest.raises(VerificationError) as caught:
        verify_signed(
            raw, trust.sign(raw, alice), signers=signers, revoked=(), namespace=NAMESPACE, at=NOW
        )
    assert caught.value.message == (
        "key expired at 2026-03-02T12:00:00Z (valid-before 2026-03-01T00:00:00Z, allowed_signers:1)"
    )


# -- property: we never accept what ssh-keygen refuses ----------------------------------------

MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(min_value=0)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.sampled_from([b"\n", b" ", b"A"])),
)


def mutate(data: bytes, mutation: tuple[Any, ...]) -> bytes:
    kind = mutation[0]
    if not data:
        return data
    if kind == "flip":
        index = mutation[1] % len(data)
        return data[:index] + bytes([data[index] ^ (1 << mutation[2])]) + data[index + 1 :]
    if kind == "truncate":
        return data[: mutation[1] % len(data)]
    if kind == "append":
        return data + mutation[1]
    index = mutation[1] % (len(data) + 1)
    return data[:index] + mutation[2] + data[index:]


@pytest.fixture(scope="module")
def sample(trust: Trust, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, Path]:
    alice = trust.keys.alice
    raw = raw_for(alice)
    return raw, trust.sign(raw, alice), tmp_path_factory.mktemp("property")


@settings(max_examples=40, deadline=None)
@given(
    target=st.sampled_from(["nothing", "body", "signature", "both"]),
    body_mutation=MUTATIONS,
    signature_mutation=MUTATIONS,
)
def test_whatever_we_accept_ssh_keygen_accepts(
    trust: Trust,
    sample: tuple[bytes, bytes, Path],
    ssh_keygen_verify: Callable[..., subprocess.CompletedProcess[bytes]],
    target: str,
    body_mutation: tuple[Any, ...],
    signature_mutation: tuple[Any, ...],
) -> None:
    raw, armored, folder = sample
    if target in ("body", "both"):
        raw = mutate(raw, body_mutation)
    if target in ("signature", "both"):
        armored = mutate(armored, signature_mutation)
    try:
        signed = trust.verify(raw, armored)
    except VerificationError:
        event("refused")
        return
    event("accepted")
    done = ssh_keygen_verify(folder, trust.keys.allowed_signers(), signed.principal, raw, armored)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(
        f'Good "{NAMESPACE}" signature for {signed.principal} with ED25519 key '
    )


@pytest.mark.parametrize("started", ["yesterday", "2026-03-02T11:00:00", "2026-13-45T99:00:00Z"])
def test_a_run_start_that_is_not_a_time_refuses_the_approval(started: str) -> None:
    """The run's start comes from its record, which a resume does not trust: a malformed one
    refuses the approval (it was a ValueError, an internal error, on resume)."""
    with pytest.raises(VerificationError, match="the run's start time"):
        check_window(body(), NOW, started)
