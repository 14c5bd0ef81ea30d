"""SSHSIG parsing and verification, checked against the real ``ssh-keygen``."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runner.approvals import sshsig
from runner.approvals.sshkeys import (
    SK_ED25519,
    PublicKey,
    parse_public_key,
    parse_public_key_blob,
    sk_ed25519_public_key_blob,
    ssh_string,
)
from runner.approvals.sshsig import SigningError
from runner.errors import VerificationError

SSH_KEYGEN = shutil.which("ssh-keygen")
pytestmark = pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen (OpenSSH) not installed")

NS = "deploy-approval@example.com"
MESSAGE = b"approve: production deploy #42\n"


@dataclass(frozen=True)
class Key:
    path: Path
    public: PublicKey


def keygen(directory: Path, name: str, key_type: str = "ed25519") -> Key:
    path = directory / name
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", name, "-f", str(path)]
    if key_type == "rsa":
        argv[4:4] = ["-b", "2048"]
    subprocess.run(argv, check=True, capture_output=True)
    key_type_name, b64 = path.with_suffix(".pub").read_text().split()[:2]
    return Key(path, parse_public_key(key_type_name, b64))


def ssh_keygen_verify(
    directory: Path, key: PublicKey, message: bytes, armored: bytes, namespace: str = NS
) -> subprocess.CompletedProcess[bytes]:
    """``ssh-keygen -Y verify`` with an allowed_signers file trusting ``key`` for ``alice``."""
    allowed = directory / "allowed_signers.verify"
    allowed.write_text(f"alice {key.openssh}\n")
    sig = directory / "message.sig"
    sig.write_bytes(armored)
    argv = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "alice", "-n", namespace]
    return subprocess.run([*argv, "-s", str(sig)], input=message, capture_output=True)


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sshsig-keys")


@pytest.fixture(scope="module")
def alice(keydir: Path) -> Key:
    return keygen(keydir, "alice")


@pytest.fixture(scope="module")
def bob(keydir: Path) -> Key:
    return keygen(keydir, "bob")


@pytest.fixture(scope="module")
def alice_sig(alice: Key) -> bytes:
    return sshsig.sign_with_ssh_keygen(MESSAGE, alice.path, NS, quiet=True)


def reencode(armored: bytes, **changes: object) -> bytes:
    """Re-encode a signature with some SSHSIG fields replaced (a forger's view of it)."""
    sig = sshsig.parse_signature(armored)
    fields: dict[str, object] = {
        "public_key_blob": sig.public_key.blob,
        "namespace": sig.namespace,
        "hash_algorithm": sig.hash_algorithm,
        "signature_blob": sig.signature_blob,
    }
    fields.update(changes)
    return sshsig.armor(sshsig.encode_signature(**fields))  # type: ignore[arg-type]


# --- accepted ------------------------------------------------------------------------------


def test_verifies_ssh_keygen_signature(alice: Key, alice_sig: bytes) -> None:
    sig = sshsig.parse_signature(alice_sig)
    assert sig.namespace == NS
    assert sig.hash_algorithm == "sha512"  # ssh-keygen's default (HASHALG_DEFAULT)
    assert sig.public_key == alice.public
    sshsig.verify(MESSAGE, alice_sig, namespace=NS, public_key=alice.public)
    sshsig.verify(MESSAGE, sig, namespace=NS, public_key=alice.public)


def test_verifies_sha256_signature(alice: Key, keydir: Path) -> None:
    argv = ["ssh-keygen", "-Y", "sign", "-f", str(alice.path), "-n", NS, "-O", "hashalg=sha256"]
    armored = subprocess.run(argv, input=MESSAGE, capture_output=True, check=True).stdout
    assert sshsig.parse_signature(armored).hash_algorithm == "sha256"
    sshsig.verify(MESSAGE, armored, namespace=NS, public_key=alice.public)


def test_sign_from_file_and_armor_round_trip(alice: Key, tmp_path: Path) -> None:
    path = tmp_path / "approval.txt"
    path.write_bytes(MESSAGE)
    armored = sshsig.sign_with_ssh_keygen(path, alice.path, NS, quiet=True)
    assert not (tmp_path / "approval.txt.sig").exists()  # fed on stdin, nothing written
    sig = sshsig.parse_signature(armored)
    assert sshsig.armor(sig.blob) == armored  # we armour exactly as sshsig_armor does
    sshsig.verify(MESSAGE, armored, namespace=NS, public_key=alice.public)


def test_fingerprint_matches_ssh_keygen(alice: Key) -> None:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(alice.path.with_suffix(".pub"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split()[1] == alice.public.fingerprint


def test_crlf_armour_is_refused(alice: Key, alice_sig: bytes) -> None:
    # OpenSSH 9.2's sshsig_dearmor refuses it too; later versions accept it.
    crlf = alice_sig.replace(b"\n", b"\r\n")
    with pytest.raises(VerificationError, match="CRLF"):
        sshsig.verify(MESSAGE, crlf, namespace=NS, public_key=alice.public)


def test_accepts_str_armour(alice: Key, alice_sig: bytes) -> None:
    sshsig.verify(MESSAGE, alice_sig.decode(), namespace=NS, public_key=alice.public)


# --- refused -------------------------------------------------------------------------------


def test_tampered_message(alice: Key, alice_sig: bytes) -> None:
    with pytest.raises(VerificationError, match=r"^signature does not match$"):
        sshsig.verify(MESSAGE + b"!", alice_sig, namespace=NS, public_key=alice.public)


def test_wrong_namespace(alice: Key, alice_sig: bytes) -> None:
    with pytest.raises(VerificationError) as info:
        sshsig.verify(MESSAGE, alice_sig, namespace="git", public_key=alice.public)
    assert info.value.message == f"wrong namespace {NS!r}, expected 'git'"


def test_namespace_swapped_in_blob_does_not_verify(alice: Key, alice_sig: bytes) -> None:
    forged = reencode(alice_sig, namespace="git")
    with pytest.raises(VerificationError, match="signature does not match"):
        sshsig.verify(MESSAGE, forged, namespace="git", public_key=alice.public)


def test_untrusted_key(alice: Key, bob: Key) -> None:
    bob_sig = sshsig.sign_with_ssh_keygen(MESSAGE, bob.path, NS, quiet=True)
    with pytest.raises(VerificationError, match="not by the trusted key") as info:
        sshsig.verify(MESSAGE, bob_sig, namespace=NS, public_key=alice.public)
    assert bob.public.fingerprint in info.value.message


def test_key_swapped_in_blob(alice: Key, bob: Key, alice_sig: bytes) -> None:
    # Claiming to be bob with alice's signature bytes: bob's key does not verify them.
    forged = reencode(alice_sig, public_key_blob=bob.public.blob)
    with pytest.raises(VerificationError, match="signature does not match"):
        sshsig.verify(MESSAGE, forged, namespace=NS, public_key=bob.public)


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "SHA512", "sha384", ""])
def test_unsupported_hash_algorithm(
    alice: Key, alice_sig: bytes, keydir: Path, algorithm: str
) -> None:
    forged = reencode(alice_sig, hash_algorithm=algorithm)
    with pytest.raises(VerificationError) as info:
        sshsig.parse_signature(forged)
    assert info.value.message == f"unsupported hash algorithm {algorithm!r}"
    assert ssh_keygen_verify(keydir, alice.public, MESSAGE, forged).returncode != 0


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa"])
def test_other_key_types_refused(keydir: Path, key_type: str) -> None:
    key = keygen(keydir, f"other-{key_type}", key_type)
    armored = sshsig.sign_with_ssh_keygen(MESSAGE, key.path, NS, quiet=True)
    # ssh-keygen accepts these; we do not, by policy.
    assert ssh_keygen_verify(keydir, key.public, MESSAGE, armored).returncode == 0
    with pytest.raises(VerificationError) as info:
        sshsig.verify(MESSAGE, armored, namespace=NS, public_key=key.public)
    assert info.value.message == f"key type {key.public.key_type} not accepted"


def test_certificate_key_type_refused(alice: Key, alice_sig: bytes) -> None:
    cert_blob = ssh_string("ssh-ed25519-cert-v01@openssh.com") + ssh_string(b"x" * 40)
    forged = reencode(alice_sig, public_key_blob=cert_blob)
    with pytest.raises(
        VerificationError, match=re.escape("key type ssh-ed25519-cert-v01@openssh.com")
    ):
        sshsig.verify(MESSAGE, forged, namespace=NS, public_key=alice.public)


def test_trailing_data_in_blob(alice: Key, alice_sig: bytes, keydir: Path) -> None:
    blob = sshsig.parse_signature(alice_sig).blob + b"\0"
    forged = sshsig.armor(blob)
    with pytest.raises(VerificationError, match="1 byte\\(s\\) of trailing data"):
        sshsig.parse_signature(forged)
    assert ssh_keygen_verify(keydir, alice.public, MESSAGE, forged).returncode != 0


def test_trailing_data_after_footer(alice: Key, alice_sig: bytes, keydir: Path) -> None:
    forged = alice_sig + b"junk\n"
    with pytest.raises(VerificationError, match="trailing data after its footer"):
        sshsig.parse_signature(forged)
    # Stricter than OpenSSH, which ignores what follows the footer:
    assert ssh_keygen_verify(keydir, alice.public, MESSAGE, forged).returncode == 0


def test_trailing_data_in_inner_signature(alice: Key, alice_sig: bytes, keydir: Path) -> None:
    inner = sshsig.parse_signature(alice_sig).signature_blob + b"\0"
    forged = reencode(alice_sig, signature_blob=inner)
    with pytest.raises(VerificationError, match="signature blob has 1 byte"):
        sshsig.verify(MESSAGE, forged, namespace=NS, public_key=alice.public)
    assert ssh_keygen_verify(keydir, alice.public, MESSAGE, forged).returncode != 0


@pytest.mark.parametrize("version", [0, 2, 0xFFFFFFFF])
def test_unknown_versions(alice_sig: bytes, version: int) -> None:
    sig = sshsig.parse_signature(alice_sig)
    blob = sshsig.encode_signature(
        sig.public_key.blob, NS, "sha512", sig.signature_blob, version=version
    )
    with pytest.raises(VerificationError, match=f"unsupported SSHSIG version {version}"):
        sshsig.parse_signature(sshsig.armor(blob))


def test_bad_magic(alice_sig: bytes) -> None:
    blob = b"SSHSIH" + sshsig.parse_signature(alice_sig).blob[6:]
    with pytest.raises(VerificationError, match="SSHSIG magic"):
        sshsig.parse_signature(sshsig.armor(blob))


@pytest.mark.parametrize("cut", [1, 5, 10, 30, 60, 100])
def test_truncated_blob(alice_sig: bytes, cut: int) -> None:
    blob = sshsig.parse_signature(alice_sig).blob
    with pytest.raises(VerificationError, match="truncated"):
        sshsig.parse_signature(sshsig.armor(blob[:-cut]))


def test_length_field_too_large(alice_sig: bytes) -> None:
    blob = bytearray(sshsig.parse_signature(alice_sig).blob)
    blob[10:14] = (0xFFFFFFF0).to_bytes(4, "big")  # the public key's length
    with pytest.raises(VerificationError, match="truncated in its public key"):
        sshsig.parse_signature(sshsig.armor(bytes(blob)))


def test_empty_namespace_and_reserved_field(alice_sig: bytes) -> None:
    with pytest.raises(VerificationError, match="empty namespace"):
        sshsig.parse_signature(reencode(alice_sig, namespace=""))
    sig = sshsig.parse_signature(alice_sig)
    blob = sshsig.encode_signature(
        sig.public_key.blob, NS, "sha512", sig.signature_blob, reserved=b"tag"
    )
    with pytest.raises(VerificationError, match="non-empty reserved field"):
        sshsig.parse_signature(sshsig.armor(blob))


def test_bad_public_key_in_signature(alice: Key, alice_sig: bytes) -> None:
    short = ssh_string("ssh-ed25519") + ssh_string(alice.public.blob[-31:])
    with pytest.raises(VerificationError, match="31-byte point"):
        sshsig.parse_signature(reencode(alice_sig, public_key_blob=short))
    with pytest.raises(VerificationError, match="unknown key type 'ssh-foo'"):
        sshsig.parse_signature(reencode(alice_sig, public_key_blob=ssh_string("ssh-foo")))


def test_signature_type_must_match_key(alice: Key, alice_sig: bytes) -> None:
    inner = sshsig.parse_signature(alice_sig).signature_blob
    swapped = ssh_string(SK_ED25519) + inner[len(ssh_string("ssh-ed25519")) :]
    forged = reencode(alice_sig, signature_blob=swapped)
    with pytest.raises(VerificationError, match="does not match key type ssh-ed25519"):
        sshsig.verify(MESSAGE, forged, namespace=NS, public_key=alice.public)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda s: s[1:], "does not start with"),
        (lambda s: s.replace(b"-----END SSH SIGNATURE-----", b""), "does not end with"),
        (lambda s: s.replace(b"\n", b"\n\n", 2), "empty line"),
        (lambda s: s.replace(b"U1NI", b"U1N*", 1), "not valid base64"),
        (lambda s: b"\xff" + s, "not ASCII"),
        (lambda s: s.replace(b"-----\n", b"-----\nAAAA", 1), "SSHSIG magic"),
    ],
)
def test_bad_armour(alice_sig: bytes, mangle: object, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        sshsig.parse_signature(mangle(alice_sig))  # type: ignore[operator]


def test_non_canonical_base64(alice_sig: bytes) -> None:
    blob = sshsig.parse_signature(alice_sig).blob
    b64 = base64.b64encode(blob).decode()
    assert b64.endswith("=")  # 157-byte blob: the last quantum has spare bits
    last = b64.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    bumped = last[:-1] + alphabet[alphabet.index(last[-1]) + 1] + b64[len(last) :]
    assert base64.b64decode(bumped) == blob  # same bytes, different text
    armored = f"{sshsig.BEGIN}\n{bumped}\n{sshsig.END}\n".encode()
    with pytest.raises(VerificationError, match="not canonical"):
        sshsig.parse_signature(armored)


# --- security keys (sk-ssh-ed25519@openssh.com) ---------------------------------------------


def sk_signature(
    private: Ed25519PrivateKey,
    message: bytes,
    *,
    flags: int = sshsig.SK_USER_PRESENCE,
    counter: int = 7,
    application: str = "ssh:",
    namespace: str = NS,
) -> bytes:
    """What a FIDO token plus ``ssh-keygen -Y sign`` would produce (PROTOCOL.u2f)."""
    point = private.public_key().public_bytes_raw()
    key_blob = sk_ed25519_public_key_blob(point, application)
    data = sshsig.signed_data(namespace, "sha512", message)
    raw = private.sign(sshsig.sk_signed_data(application, flags, counter, data))
    inner = ssh_string(SK_ED25519) + ssh_string(raw) + bytes([flags]) + counter.to_bytes(4, "big")
    return sshsig.armor(sshsig.encode_signature(key_blob, namespace, "sha512", inner))


@pytest.fixture(scope="module")
def sk_private() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def sk_public(private: Ed25519PrivateKey, application: str = "ssh:") -> PublicKey:
    point = private.public_key().public_bytes_raw()
    return parse_public_key_blob(sk_ed25519_public_key_blob(point, application))


def test_sk_signature_verifies_and_ssh_keygen_agrees(
    sk_private: Ed25519PrivateKey, keydir: Path
) -> None:
    armored = sk_signature(sk_private, MESSAGE, flags=0x05, counter=1234)
    key = sk_public(sk_private)
    details = sshsig.check(MESSAGE, armored, namespace=NS, public_key=key)
    assert (details.sk_flags, details.sk_counter) == (0x05, 1234)
    assert key.application == "ssh:"
    result = ssh_keygen_verify(keydir, key, MESSAGE, armored)
    assert result.returncode == 0, result.stderr
    assert key.fingerprint.encode() in result.stdout
    sshsig.check(MESSAGE, armored, namespace=NS, public_key=key, require_user_verification=True)


def test_sk_without_user_presence(sk_private: Ed25519PrivateKey, keydir: Path) -> None:
    armored = sk_signature(sk_private, MESSAGE, flags=0x00)
    key = sk_public(sk_private)
    with pytest.raises(VerificationError, match="lacks user presence"):
        sshsig.verify(MESSAGE, armored, namespace=NS, public_key=key)
    # ssh-keygen -Y verify only logs the flags (ssh-keygen.c sig_verify); we are stricter.
    assert ssh_keygen_verify(keydir, key, MESSAGE, armored).returncode == 0


def test_sk_user_verification_when_required(sk_private: Ed25519PrivateKey) -> None:
    armored = sk_signature(sk_private, MESSAGE, flags=0x01)
    with pytest.raises(VerificationError, match="lacks user verification"):
        sshsig.check(
            MESSAGE,
            armored,
            namespace=NS,
            public_key=sk_public(sk_private),
            require_user_verification=True,
        )


def test_sk_tampered_flags_or_counter(sk_private: Ed25519PrivateKey, keydir: Path) -> None:
    key = sk_public(sk_private)
    armored = sk_signature(sk_private, MESSAGE, flags=0x01, counter=7)
    inner = bytearray(sshsig.parse_signature(armored).signature_blob)
    for position, value in ((-5, 0x05), (-1, 8)):  # flags byte, low byte of the counter
        changed = bytearray(inner)
        changed[position] = value
        forged = reencode(armored, signature_blob=bytes(changed))
        with pytest.raises(VerificationError, match="signature does not match"):
            sshsig.verify(MESSAGE, forged, namespace=NS, public_key=key)
        assert ssh_keygen_verify(keydir, key, MESSAGE, forged).returncode != 0


def test_sk_application_is_signed(sk_private: Ed25519PrivateKey) -> None:
    armored = sk_signature(sk_private, MESSAGE, application="ssh:other")
    other = sk_public(sk_private, "ssh:other")
    sshsig.verify(MESSAGE, armored, namespace=NS, public_key=other)
    forged = reencode(armored, public_key_blob=sk_public(sk_private).blob)
    with pytest.raises(VerificationError, match="signature does not match"):
        sshsig.verify(MESSAGE, forged, namespace=NS, public_key=sk_public(sk_private))


def test_sk_tampered_message(sk_private: Ed25519PrivateKey) -> None:
    armored = sk_signature(sk_private, MESSAGE)
    with pytest.raises(VerificationError, match="signature does not match"):
        sshsig.verify(b"other", armored, namespace=NS, public_key=sk_public(sk_private))


# --- signing helper -------------------------------------------------------------------------


def test_sign_with_missing_key(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="ssh-keygen -Y sign failed") as info:
        sshsig.sign_with_ssh_keygen(MESSAGE, tmp_path / "absent", NS, quiet=True)
    assert "absent" in info.value.message


def test_sign_without_ssh_keygen(alice: Key, tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="not found"):
        sshsig.sign_with_ssh_keygen(
            MESSAGE, alice.path, NS, ssh_keygen=str(tmp_path / "no-ssh-keygen")
        )


def test_sign_with_empty_namespace(alice: Key) -> None:
    with pytest.raises(SigningError, match="empty namespace"):
        sshsig.sign_with_ssh_keygen(MESSAGE, alice.path, "")
