"""Fuzzing the parsers of signed approvals: the approval JSON body, the SSHSIG armour and blob,
and the trust files (allowed_signers, revoked keys).

Properties: ``document.parse_body`` returns an ``ApprovalBody`` or raises ``VerificationError``;
``sshsig.parse_signature`` returns a ``Signature`` or raises ``VerificationError`` (the
documented refusal; its trust-file subclass for the trust files); a parsed body's validity window
is checked without any other exception. (Whether a mutated *valid* signature still verifies the
way ``ssh-keygen`` says is ``tests/approvals/test_sshsig_property.py``'s differential property.)
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.approvals import sshsig
from runner.approvals.allowed_signers import parse_allowed_signers, parse_revoked_keys
from runner.approvals.document import (
    FORMAT,
    MAX_BODY_BYTES,
    ApprovalBody,
    check_window,
    parse_body,
)
from runner.approvals.sshkeys import ssh_string
from runner.errors import VerificationError

FUZZ = settings.get_profile("runner-fuzz")
NOW = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)

VALID_BODY: dict[str, Any] = {
    "commit": "c" * 40,
    "decision": "proceed",
    "environment": "production",
    "expires_at": "2030-01-31T13:00:00Z",
    "fields": {"ticket": "CHG-1"},
    "format": FORMAT,
    "issued_at": "2030-01-31T12:00:00Z",
    "approver": "alice@example.com",
    "notes": "ok",
    "run_id": "r1",
    "step_id": "gate",
    "workflow_digest": "d" * 64,
}


def check_body(raw: bytes) -> None:
    try:
        body = parse_body(raw)
    except VerificationError as exc:
        assert exc.message
        return
    assert isinstance(body, ApprovalBody)
    assert body.decision in ("proceed", "abort")
    # the parsed body's times are usable on the runner's clock, whatever they say
    try:
        check_window(body, NOW, "2030-01-31T11:59:00Z")
    except VerificationError as exc:
        assert exc.message


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=25)
    | st.sampled_from(
        [
            "2030-01-31T12:00:00Z",
            "2030-01-31T12:00:00+05:00Z",
            "2030-01-31Z",
            "20300131T120000Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "2030-01-31T12:00:00.123456789Z",
            "2030-02-30T12:00:00Z",
            "proceed",
            "abort",
            FORMAT,
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    data = dict(VALID_BODY)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*VALID_BODY, "extra", "__proto__", "format "]))
        operation = draw(st.sampled_from(["replace", "delete", "replace"]))
        if operation == "delete":
            data.pop(key, None)
        else:
            data[key] = draw(JSON_VALUES)
    text = json.dumps(data, sort_keys=draw(st.booleans()), ensure_ascii=draw(st.booleans()))
    suffix = draw(st.sampled_from(["", "\n", "\n\n", " ", "{}", "\x00", "\r\n"]))
    return (text + suffix).encode("utf-8", "surrogatepass")


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_are_a_body_or_refused(raw: bytes) -> None:
    check_body(raw)


@FUZZ
@given(mutated_bodies())
def test_mutated_bodies_are_a_body_or_refused(raw: bytes) -> None:
    check_body(raw)


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            ['{"a":', "[", "]", "{", "}", ",", '"k"', ":", "1", "null", '"', "\\u0000"]
        ),
        max_size=40,
    )
)
def test_json_token_soup_is_a_body_or_refused(tokens: list[str]) -> None:
    check_body("".join(tokens).encode())


def test_the_valid_body_parses() -> None:
    """The control for the mutations."""
    body = parse_body(json.dumps(VALID_BODY).encode())
    check_window(body, NOW, "2030-01-31T11:59:00Z")


# -- SSHSIG ------------------------------------------------------------------------------------

KEY = Ed25519PrivateKey.generate()
POINT = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
KEY_BLOB = ssh_string("ssh-ed25519") + ssh_string(POINT)
SIGNATURE_BLOB = ssh_string("ssh-ed25519") + ssh_string(KEY.sign(b"x"))


@st.composite
def signature_blobs(draw: st.DrawFn) -> bytes:
    """An SSHSIG blob built field by field, each field valid or not."""

    def field(valid: bytes) -> bytes:
        return draw(
            st.sampled_from([valid, b"", b"\x00" * 3, valid[:-1], valid + b"\x00"])
            | st.binary(max_size=12)
        )

    blob = sshsig.encode_signature(
        draw(st.sampled_from([KEY_BLOB, KEY_BLOB[:-1], b"", ssh_string("ssh-rsa") + b"\x00"])),
        draw(st.sampled_from(["runner-approval", "", "x" * 300, "é"])),
        draw(st.sampled_from(["sha512", "sha256", "md5", "SHA512", ""])),
        field(SIGNATURE_BLOB),
        reserved=draw(st.sampled_from([b"", b"x"])),
        version=draw(st.sampled_from([1, 0, 2, 2**32 - 1])),
    )
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(blob)))
        blob = blob[:cut] + draw(st.binary(max_size=8)) + blob[cut:]
    return blob


@FUZZ
@given(signature_blobs())
def test_sshsig_blobs_are_a_signature_or_refused(blob: bytes) -> None:
    for armored in (sshsig.armor(blob), sshsig.armor(blob).decode()):
        try:
            parsed = sshsig.parse_signature(armored)
        except VerificationError as exc:
            assert exc.message
        else:
            assert parsed.blob == blob
            try:
                sshsig.check(
                    b"x", parsed, namespace="runner-approval", public_key=parsed.public_key
                )
            except VerificationError as exc:
                assert exc.message


ARMOUR_PIECES = st.sampled_from(
    [sshsig.BEGIN, sshsig.END, "\n", "\r\n", "U1NIU0lH", "AAAA", "=", "==", " ", "-", "é"]
)


@FUZZ
@given(
    st.binary(max_size=200)
    | st.lists(ARMOUR_PIECES | st.text(max_size=4), max_size=20).map("".join)
)
def test_random_armour_is_a_signature_or_refused(armored: bytes | str) -> None:
    try:
        sshsig.parse_signature(armored)
    except VerificationError as exc:
        assert exc.message


# -- trust files -------------------------------------------------------------------------------

PUBLIC = "ssh-ed25519 " + base64.b64encode(KEY_BLOB).decode()
LINE_PIECES = st.sampled_from(
    [
        "alice@example.com",
        "a,b",
        "*",
        '"',
        " ",
        "\t",
        ",",
        'namespaces="runner-approval"',
        'valid-after="20300101Z"',
        'valid-before="20300101"',
        'valid-before="99999999Z"',
        "cert-authority",
        "ssh-ed25519",
        "ssh-rsa",
        "ssh-ed25519-cert-v01@openssh.com",
        PUBLIC,
        base64.b64encode(KEY_BLOB).decode(),
        "AAAA",
        "#",
        "\n",
        "\r",
    ]
)


@FUZZ
@given(st.lists(LINE_PIECES | st.text(max_size=3), max_size=15).map("".join))
def test_allowed_signers_parse_or_are_refused_with_a_place(text: str) -> None:
    try:
        signers = parse_allowed_signers(text, source="allowed_signers")
    except VerificationError as exc:  # TrustFileError
        assert exc.location is not None and exc.location.path == "allowed_signers"
        return
    for signer in signers:
        assert signer.principals and all(signer.principals)


@FUZZ
@given(
    st.binary(max_size=100) | st.lists(LINE_PIECES, max_size=10).map(lambda p: "".join(p).encode())
)
def test_revoked_keys_parse_or_are_refused(raw: bytes) -> None:
    try:
        parse_revoked_keys(raw, source="revoked")
    except VerificationError as exc:
        assert exc.location is not None


# -- regressions found by this fuzzing ---------------------------------------------------------


@pytest.mark.parametrize("shape", ["array", "object"])
def test_a_deeply_nested_body_is_refused(shape: str) -> None:
    depth = 20_000
    raw = ("[" * depth if shape == "array" else '{"a":' * depth).encode()
    assert len(raw) <= MAX_BODY_BYTES * 2
    with pytest.raises(VerificationError):
        parse_body(raw[:MAX_BODY_BYTES])


def test_the_window_uses_the_runners_clock() -> None:
    """A control for check_window: the same body is valid at one instant and not an hour later."""
    body = parse_body(json.dumps(VALID_BODY).encode())
    check_window(body, NOW, None)
    with pytest.raises(VerificationError, match="expired"):
        check_window(body, NOW + timedelta(hours=2), None)
