"""allowed_signers / revoked keys parsing and the full approval check, against ``ssh-keygen``."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from runner.approvals import sshsig
from runner.approvals.allowed_signers import (
    AllowedSigner,
    TrustFileError,
    VerifiedSignature,
    find_key,
    parse_allowed_signers,
    parse_revoked_keys,
    verify_approval_signature,
)
from runner.approvals.sshkeys import PublicKey, parse_public_key
from runner.errors import VerificationError

SSH_KEYGEN = shutil.which("ssh-keygen")
pytestmark = pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen (OpenSSH) not installed")

NS = "deploy-approval@example.com"
MESSAGE = b"approve: production deploy #42\n"
NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Key:
    path: Path
    public: PublicKey


def keygen(directory: Path, name: str, key_type: str = "ed25519") -> Key:
    path = directory / name
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", name, "-f", str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    key_type_name, b64 = path.with_suffix(".pub").read_text().split()[:2]
    return Key(path, parse_public_key(key_type_name, b64))


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("allowed-signers-keys")


@pytest.fixture(scope="module")
def alice(keydir: Path) -> Key:
    return keygen(keydir, "alice")


@pytest.fixture(scope="module")
def bob(keydir: Path) -> Key:
    return keygen(keydir, "bob")


@pytest.fixture(scope="module")
def alice_sig(alice: Key) -> bytes:
    return sshsig.sign_with_ssh_keygen(MESSAGE, alice.path, NS, quiet=True)


def ssh_keygen_verify(
    directory: Path,
    allowed: str,
    armored: bytes,
    *,
    principal: str = "alice",
    revoked: str | bytes | None = None,
    at: datetime = NOW,
) -> subprocess.CompletedProcess[str]:
    (directory / "allowed").write_text(allowed)
    (directory / "sig").write_bytes(armored)
    argv = ["ssh-keygen", "-Y", "verify", "-f", str(directory / "allowed"), "-I", principal]
    argv += ["-n", NS, "-s", str(directory / "sig"), "-O", f"verify-time={at:%Y%m%d%H%M%S}Z"]
    if revoked is not None:
        path = directory / "revoked"
        if isinstance(revoked, bytes):
            path.write_bytes(revoked)
        else:
            path.write_text(revoked)
        argv += ["-r", str(path)]
    return subprocess.run(argv, input=MESSAGE.decode(), capture_output=True, text=True)


def approve(
    allowed: str,
    armored: bytes,
    *,
    principal: str = "alice",
    revoked: frozenset[bytes] = frozenset(),
    at: datetime = NOW,
) -> VerifiedSignature:
    signers = parse_allowed_signers(allowed, source="allowed_signers")
    return verify_approval_signature(
        MESSAGE,
        armored,
        principal=principal,
        namespace=NS,
        signers=signers,
        revoked=revoked,
        at=at,
    )


def parse_error(text: str) -> TrustFileError:
    with pytest.raises(TrustFileError) as info:
        parse_allowed_signers(text, source="signers")
    return info.value


# --- parsing -------------------------------------------------------------------------------


def test_parse_lines_comments_and_options(alice: Key, bob: Key) -> None:
    text = (
        "# team approvers\n"
        "\n"
        f"alice@example.com,alice {alice.public.openssh} alice's laptop\n"
        f'   bob NAMESPACES="{NS},git",Valid-After="20300101Z" {bob.public.openssh}\r\n'
        f'carol valid-before="203001020304UTC" {bob.public.openssh}\n'
        f'dave valid-after="20300101000000z" {bob.public.openssh}'
    )
    signers = parse_allowed_signers(text, source="team/allowed_signers")
    assert [s.line for s in signers] == [3, 4, 5, 6]
    first, second, third, fourth = signers
    assert first.principals == ("alice@example.com", "alice")
    assert first.public_key == alice.public
    assert (first.namespaces, first.valid_after, first.valid_before) == (None, None, None)
    assert second.namespaces == (NS, "git")
    assert second.valid_after == datetime(2030, 1, 1, tzinfo=UTC)
    assert third.valid_before == datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    assert fourth.valid_after == datetime(2030, 1, 1, tzinfo=UTC)
    assert str(second.location) == "team/allowed_signers:4:1"


def test_ssh_keygen_parses_what_we_parse(alice: Key, bob: Key, tmp_path: Path) -> None:
    text = (
        "# team approvers\n\n"
        f"alice@example.com,alice {alice.public.openssh} alice's laptop\n"
        f'   bob NAMESPACES="{NS},git",Valid-After="20300101Z" {bob.public.openssh}\r\n'
        f'carol valid-before="203001020304UTC" {bob.public.openssh}\n'
        f'dave valid-after="20300101000000z",namespaces="a\\"b" {bob.public.openssh}'
    )
    path = tmp_path / "allowed_signers"
    path.write_text(text)
    for signer in parse_allowed_signers(text, source=str(path)):
        for principal in signer.principals:
            argv = ["ssh-keygen", "-Y", "match-principals", "-I", principal, "-f", str(path)]
            result = subprocess.run(argv, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            assert principal in result.stdout.split("\n")[0].split(",")


def test_quoted_namespace_with_escaped_quote(alice: Key) -> None:
    (signer,) = parse_allowed_signers(
        f'alice namespaces="a\\"b,c" {alice.public.openssh}', source="s"
    )
    assert signer.namespaces is not None
    assert signer.namespaces == ('a"b', "c")
    with pytest.raises(TrustFileError, match="white space"):
        parse_allowed_signers(f'alice namespaces="c d" {alice.public.openssh}', source="s")


def test_other_key_types_are_kept_but_opaque(keydir: Path) -> None:
    ecdsa = keygen(keydir, "ecdsa", "ecdsa")
    (signer,) = parse_allowed_signers(f"erin {ecdsa.public.openssh}", source="s")
    assert signer.public_key.key_type == "ecdsa-sha2-nistp256"
    assert not signer.public_key.accepted


@pytest.mark.parametrize("principal", ["*", "alice*", "al?ce", "!bob", "alice,*@example.com"])
def test_wildcard_principals_refused(alice: Key, principal: str) -> None:
    error = parse_error(f"# comment\n{principal} {alice.public.openssh}\n")
    assert str(error).startswith("signers:2:1: principal ")
    assert "only exact principals are supported" in error.message


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("cert-authority", "cert-authority is not supported"),
        ('cert-authority,namespaces="x"', "cert-authority is not supported"),
        ('namespaces="x",CERT-AUTHORITY', "cert-authority is not supported"),
        ('valid-after="20300101"', "time without Z"),
        ('valid-before="203001010000"', "time without Z"),
        ('valid-after="2030010"', "expected YYYYMMDD"),
        ('valid-after="20301301Z"', "not a valid date"),
        ('valid-after="19700101Z"', "after 1970"),
        ('valid-after="\u0662\u0660\u0663\u0660\u0660\u0661\u0660\u0661Z"', "expected YYYYMMDD"),
        ('VALİD-after="20300101Z"', "unknown option"),
        ("valid-after=20300101Z", "must be quoted"),
        ('namespaces="a', "unterminated quote"),
        ('namespaces="*"', "only exact namespaces"),
        ('namespaces="a,,b"', "empty namespace"),
        ('namespaces="a",namespaces="b"', 'multiple "namespaces"'),
        ('no-touch-required,namespaces="a"', "unknown option 'no-touch-required'"),
        ('namespaces="a",', "options end with a comma"),
        ('namespaces="a"x', "unexpected 'x'"),
        ('valid-after="20300102Z",valid-before="20300101Z"', "not after"),
        ('valid-after="20300101Z",valid-before="20300101Z"', "not after"),
    ],
)
def test_bad_options(alice: Key, options: str, reason: str) -> None:
    error = parse_error(f"\n\nalice {options} {alice.public.openssh}\n")
    assert error.location is not None
    assert (error.location.path, error.location.line, error.location.column) == ("signers", 3, 7)
    assert reason in error.message


def test_bad_lines(alice: Key) -> None:
    b64 = alice.public.openssh.split()[1]
    cases = {
        "alice": "no key",
        'alice namespaces="x"': "options but no key",
        f"alice ssh-ed25519 {b64[:-4]}": "truncated in its Ed25519 point",
        f"alice ssh-ed25519 {b64}x": "not valid base64",
        f"alice ssh-rsa {b64}": "labelled ssh-rsa but its blob holds ssh-ed25519",
        f"alice ssh-ed25519-cert-v01@openssh.com {b64}": "certificate key type",
        f'alice namespaces="x" ssh-foo {b64}': "expected a key type, found 'ssh-foo'",
        f'"alice smith" ssh-ed25519 {b64}': "quoted principals",
        f"alice,,bob ssh-ed25519 {b64}": "empty principal",
        "alice ssh-ed25519": "no base64 data",
    }
    for line, reason in cases.items():
        error = parse_error(line)
        assert reason in error.message, (line, error.message)
        assert str(error).startswith("signers:1:")


# --- find_key ------------------------------------------------------------------------------


def signers_for(alice: Key, bob: Key) -> list[AllowedSigner]:
    return parse_allowed_signers(
        f'alice namespaces="git" {alice.public.openssh}\n'
        f'alice valid-after="20300101Z",valid-before="20301231235959Z" {alice.public.openssh}\n'
        f"bob {bob.public.openssh}\n",
        source="s",
    )


def test_find_key_first_line_that_allows(alice: Key, bob: Key) -> None:
    signers = signers_for(alice, bob)
    assert find_key(signers, "alice", alice.public, NS, NOW).line == 2
    assert find_key(signers, "alice", alice.public, "git", NOW).line == 1
    assert find_key(signers, "bob", bob.public, NS, NOW).line == 3


def test_find_key_reasons(alice: Key, bob: Key) -> None:
    signers = signers_for(alice, bob)
    with pytest.raises(VerificationError, match="principal 'carol' is not in the allowed"):
        find_key(signers, "carol", alice.public, NS, NOW)
    with pytest.raises(
        VerificationError, match=re.escape(f"key {bob.public.fingerprint} is not allowed")
    ):
        find_key(signers, "alice", bob.public, NS, NOW)
    late = datetime(2031, 1, 1, tzinfo=UTC)
    with pytest.raises(VerificationError) as info:
        find_key(signers, "alice", alice.public, NS, late)
    assert info.value.message == (
        "namespace 'deploy-approval@example.com' not allowed for this key (s:1 allows git); "
        "key expired at 2031-01-01T00:00:00Z (valid-before 2030-12-31T23:59:59Z, s:2)"
    )
    with pytest.raises(VerificationError, match="key not yet valid at 2029-12-31T23:59:59Z"):
        find_key(signers, "alice", alice.public, NS, datetime(2029, 12, 31, 23, 59, 59, tzinfo=UTC))


def test_find_key_bounds_are_inclusive_seconds(alice: Key, bob: Key) -> None:
    signers = signers_for(alice, bob)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    end = datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert find_key(signers, "alice", alice.public, NS, start).line == 2
    assert find_key(signers, "alice", alice.public, NS, end).line == 2
    other_zone = start.astimezone(timezone(timedelta(hours=5)))
    assert find_key(signers, "alice", alice.public, NS, other_zone).line == 2
    with pytest.raises(VerificationError, match="expired"):
        find_key(signers, "alice", alice.public, NS, end + timedelta(microseconds=1))


def test_find_key_needs_aware_time(alice: Key, bob: Key) -> None:
    with pytest.raises(ValueError, match="aware"):
        find_key(signers_for(alice, bob), "alice", alice.public, NS, datetime(2030, 6, 1))


# --- revoked keys --------------------------------------------------------------------------


def test_parse_revoked_keys(alice: Key, bob: Key) -> None:
    text = f"# revoked\n\n{alice.public.openssh} lost laptop\n  {bob.public.openssh}\n"
    assert parse_revoked_keys(text) == {alice.public.blob, bob.public.blob}
    assert parse_revoked_keys(text.encode()) == {alice.public.blob, bob.public.blob}
    assert parse_revoked_keys("") == frozenset()


def test_revoked_keys_errors(alice: Key) -> None:
    with pytest.raises(TrustFileError, match="expected a key type") as info:
        parse_revoked_keys(f"{alice.public.openssh}\nalice {alice.public.openssh}\n", source="r")
    assert str(info.value).startswith("r:2:1: ")
    with pytest.raises(TrustFileError, match="neither text nor a KRL"):
        parse_revoked_keys(b"\xff\xfe")


def test_krl_refused(alice: Key, keydir: Path) -> None:
    krl = keydir / "revoked.krl"
    subprocess.run(
        ["ssh-keygen", "-q", "-k", "-f", str(krl), str(alice.path.with_suffix(".pub"))],
        check=True,
        capture_output=True,
    )
    data = krl.read_bytes()
    with pytest.raises(TrustFileError, match="KRL revocation lists are not supported"):
        parse_revoked_keys(data, source="revoked.krl")
    with pytest.raises(TrustFileError, match="KRL"):
        parse_revoked_keys(data.decode("latin-1"))


# --- the whole check, side by side with ssh-keygen ------------------------------------------


def test_approval_verifies_like_ssh_keygen(alice: Key, alice_sig: bytes, keydir: Path) -> None:
    allowed = f'alice namespaces="{NS}" {alice.public.openssh}\n'
    result = approve(allowed, alice_sig)
    ssh = ssh_keygen_verify(keydir, allowed, alice_sig)
    assert ssh.returncode == 0, ssh.stderr
    ssh_out = ssh.stdout
    assert f'Good "{NS}" signature for alice' in ssh_out
    assert result.fingerprint == alice.public.fingerprint
    assert f"with ED25519 key {result.fingerprint}" in ssh_out
    assert (result.principal, result.key_type, result.namespace) == ("alice", "ssh-ed25519", NS)
    assert result.signer.line == 1
    assert (result.sk_flags, result.sk_counter) == (None, None)


def test_tampered_message_refused(alice: Key, alice_sig: bytes) -> None:
    signers = parse_allowed_signers(f"alice {alice.public.openssh}", source="s")
    with pytest.raises(VerificationError, match="signature does not match"):
        verify_approval_signature(
            MESSAGE + b"x", alice_sig, principal="alice", namespace=NS, signers=signers, at=NOW
        )


def test_key_of_another_principal(alice: Key, bob: Key, alice_sig: bytes, keydir: Path) -> None:
    allowed = f"alice {alice.public.openssh}\nbob {bob.public.openssh}\n"
    with pytest.raises(VerificationError, match="is not allowed for principal 'bob'"):
        approve(allowed, alice_sig, principal="bob")
    assert ssh_keygen_verify(keydir, allowed, alice_sig, principal="bob").returncode != 0


def test_untrusted_key(alice: Key, bob: Key, alice_sig: bytes, keydir: Path) -> None:
    allowed = f"alice {bob.public.openssh}\n"
    with pytest.raises(VerificationError, match="is not allowed for principal 'alice'"):
        approve(allowed, alice_sig)
    assert ssh_keygen_verify(keydir, allowed, alice_sig).returncode != 0


def test_revoked_key(alice: Key, alice_sig: bytes, keydir: Path) -> None:
    allowed = f"alice {alice.public.openssh}\n"
    revoked_text = f"{alice.public.openssh} stolen\n"
    with pytest.raises(
        VerificationError, match=re.escape(f"key {alice.public.fingerprint} is revoked")
    ):
        approve(allowed, alice_sig, revoked=parse_revoked_keys(revoked_text))
    assert ssh_keygen_verify(keydir, allowed, alice_sig, revoked=revoked_text).returncode != 0
    # ... and an unrelated revocation changes nothing, for either verifier.
    other = keygen(keydir, "other")
    approve(allowed, alice_sig, revoked=parse_revoked_keys(other.public.openssh))
    assert (
        ssh_keygen_verify(keydir, allowed, alice_sig, revoked=other.public.openssh).returncode == 0
    )


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (datetime(2030, 1, 1, tzinfo=UTC) - timedelta(seconds=1), "not yet valid"),
        (datetime(2030, 1, 1, tzinfo=UTC), None),
        (datetime(2030, 2, 1, 0, 0, 0, tzinfo=UTC), None),
        (datetime(2030, 2, 1, 0, 0, 1, tzinfo=UTC), "expired"),
    ],
)
def test_validity_window_like_ssh_keygen(
    alice: Key, alice_sig: bytes, keydir: Path, at: datetime, reason: str | None
) -> None:
    allowed = (
        f'alice valid-after="20300101Z",valid-before="20300201000000Z" {alice.public.openssh}\n'
    )
    ssh_rc = ssh_keygen_verify(keydir, allowed, alice_sig, at=at).returncode
    if reason is None:
        approve(allowed, alice_sig, at=at)
        assert ssh_rc == 0
    else:
        with pytest.raises(VerificationError, match=reason):
            approve(allowed, alice_sig, at=at)
        assert ssh_rc != 0


def test_namespace_not_allowed_like_ssh_keygen(alice: Key, alice_sig: bytes, keydir: Path) -> None:
    allowed = f'alice namespaces="git,file" {alice.public.openssh}\n'
    with pytest.raises(VerificationError, match="not allowed for this key"):
        approve(allowed, alice_sig)
    assert ssh_keygen_verify(keydir, allowed, alice_sig).returncode != 0


def test_wrong_namespace_in_signature(alice: Key) -> None:
    git_sig = sshsig.sign_with_ssh_keygen(MESSAGE, alice.path, "git", quiet=True)
    with pytest.raises(VerificationError, match="wrong namespace 'git'"):
        approve(f"alice {alice.public.openssh}", git_sig)


def test_rsa_line_parses_but_rsa_signature_refused(keydir: Path) -> None:
    rsa = keygen(keydir, "rsa", "rsa")
    armored = sshsig.sign_with_ssh_keygen(MESSAGE, rsa.path, NS, quiet=True)
    allowed = f"alice {rsa.public.openssh}\n"
    assert ssh_keygen_verify(keydir, allowed, armored).returncode == 0
    with pytest.raises(VerificationError, match="key type ssh-rsa not accepted"):
        approve(allowed, armored)
