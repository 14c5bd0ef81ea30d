"""Offline verification of OpenSSH ``SSHSIG`` signatures (``ssh-keygen -Y sign``).

The format is openssh-portable ``PROTOCOL.sshsig``; the checks follow ``sshsig.c``
(``sshsig_dearmor``, ``sshsig_wrap_verify``) and are stricter where OpenSSH is lenient:

* armour: header at the very start, canonical base64 lines, footer, at most one newline
  after it, LF line ends only (OpenSSH ignores anything after the footer; we refuse it);
* version exactly 1 (OpenSSH accepts any version <= 1, i.e. also 0);
* hash algorithm ``sha256`` or ``sha512`` (the same list as OpenSSH's ``HASHALG_ALLOWED``;
  the ``sshsig`` PyPI package also takes md5 and sha1, which is why this module exists);
* the ``reserved`` field must be empty (OpenSSH signs an empty one and ignores what the blob
  carries there, so a non-empty value can only come from tampering);
* key types ``ssh-ed25519`` and ``sk-ssh-ed25519@openssh.com`` only, no certificates;
* for ``sk-`` signatures the user-presence flag is required. Note that ``ssh-keygen -Y
  verify`` itself only logs the flags; requiring presence is what ``sshd`` does by default
  (``auth2-pubkey.c``, unless ``no-touch-required``) and is the safe reading of an approval.

Every refusal raises :class:`runner.errors.VerificationError` with the precise reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from msgspec import Struct

from runner.approvals.sshkeys import (
    ACCEPTED_KEY_TYPES,
    ED25519,
    SK_ED25519,
    PublicKey,
    SSHFormatError,
    WireReader,
    parse_public_key_blob,
    ssh_string,
)
from runner.errors import SigningError as SigningError
from runner.errors import VerificationError
from runner.process import ProgramError, capture

MAGIC = b"SSHSIG"
VERSION = 1
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
HASH_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}

#: FIDO flag bits carried by ``sk-`` signatures (PROTOCOL.u2f, OpenSSH ``sk-api.h``).
SK_USER_PRESENCE = 0x01
SK_USER_VERIFICATION = 0x04

_ED25519_SIGNATURE_SIZE = 64
#: what ``ssh-keygen -Y sign`` may print: a signature is a few hundred bytes
SIGNATURE_LIMIT = 1024 * 1024
_ARMOUR_WIDTH = 70  # what ssh-keygen writes (sshbuf_dtob64 with wrapping)


class Signature(Struct, frozen=True):
    """A parsed SSHSIG blob. ``signature_blob`` is the inner SSH signature encoding."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    signature_blob: bytes
    blob: bytes

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the key that made the signature (not yet a trusted key)."""
        return self.public_key.fingerprint


class SignatureDetails(Struct, frozen=True):
    """What a successful :func:`check` learned. ``sk_flags``/``sk_counter`` are FIDO-only."""

    public_key: PublicKey
    namespace: str
    hash_algorithm: str
    sk_flags: int | None = None
    sk_counter: int | None = None


def armor(blob: bytes) -> bytes:
    """Armour an SSHSIG blob the way ``sshsig_armor`` does (70-column base64 lines)."""
    b64 = base64.b64encode(blob).decode("ascii")
    lines = [b64[i : i + _ARMOUR_WIDTH] for i in range(0, len(b64), _ARMOUR_WIDTH)]
    return "\n".join([BEGIN, *lines, END, ""]).encode("ascii")


def dearmor(armored: bytes | str) -> bytes:
    """The SSHSIG blob inside an armoured signature, refusing anything around or inside it
    that ``ssh-keygen -Y sign`` would not have written.

    CRLF line ends are refused: only recent ``sshsig_dearmor`` versions accept them (OpenSSH
    9.2 does not), and a signature must not verify here yet fail with the approver's tools.
    """
    if isinstance(armored, bytes):
        try:
            text = armored.decode("ascii")
        except UnicodeDecodeError:
            raise VerificationError("signature is not ASCII armour") from None
    else:
        text = armored
    if not text.startswith(BEGIN):
        raise VerificationError(f"signature does not start with {BEGIN!r}")
    if "\r" in text:
        raise VerificationError(
            "signature has CRLF line ends", hint="convert it to LF line ends (git autocrlf?)"
        )
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # one newline after the footer is normal
    if len(lines) < 3 or lines[0] != BEGIN:
        raise VerificationError("signature armour is malformed (no body or footer)")
    try:
        end = lines.index(END)
    except ValueError:
        raise VerificationError(f"signature does not end with {END!r}") from None
    if end != len(lines) - 1:
        raise VerificationError("signature has trailing data after its footer")
    body = lines[1:end]
    if not body or any(not line for line in body):
        raise VerificationError("signature armour has an empty line")
    b64 = "".join(body)
    try:
        blob = base64.b64decode(b64.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("signature body is not valid base64") from None
    if base64.b64encode(blob).decode("ascii") != b64:
        # OpenSSH's b64_pton refuses non-zero padding bits too: one encoding per blob.
        raise VerificationError("signature body is not canonical base64")
    return blob


def encode_signature(
    public_key_blob: bytes,
    namespace: str,
    hash_algorithm: str,
    signature_blob: bytes,
    *,
    reserved: bytes = b"",
    version: int = VERSION,
) -> bytes:
    """Encode an SSHSIG blob (PROTOCOL.sshsig section 2), as ``sshsig_wrap_sign`` does.

    Any field may be given an unusual value, so that tests can build what we must refuse.
    """
    return (
        MAGIC
        + version.to_bytes(4, "big")
        + ssh_string(public_key_blob)
        + ssh_string(namespace)
        + ssh_string(reserved)
        + ssh_string(hash_algorithm)
        + ssh_string(signature_blob)
    )


def parse_signature_blob(blob: bytes) -> Signature:
    """Parse a dearmoured SSHSIG blob (PROTOCOL.sshsig section 2), strictly."""
    reader = WireReader(blob, what="signature")
    try:
        if reader.raw(len(MAGIC), "magic") != MAGIC:
            raise VerificationError("signature does not start with the SSHSIG magic")
        version = reader.u32("version")
        if version != VERSION:
            raise VerificationError(f"unsupported SSHSIG version {version}, expected {VERSION}")
        key_blob = reader.string("public key")
        namespace = reader.text("namespace")
        reserved = reader.string("reserved field")
        hash_algorithm = reader.text("hash algorithm")
        signature_blob = reader.string("signature")
        reader.end()
    except SSHFormatError as exc:
        raise VerificationError(str(exc)) from None
    if not namespace:
        raise VerificationError("signature has an empty namespace")  # PROTOCOL.sshsig: MUST NOT
    if reserved:
        raise VerificationError("signature has a non-empty reserved field")
    if hash_algorithm not in HASH_ALGORITHMS:
        raise VerificationError(f"unsupported hash algorithm {hash_algorithm!r}")
    try:
        public_key = parse_public_key_blob(key_blob)
    except SSHFormatError as exc:
        raise VerificationError(f"signature carries a bad public key: {exc}") from None
    return Signature(public_key, namespace, hash_algorithm, signature_blob, blob)


def parse_signature(armored: bytes | str) -> Signature:
    """Parse an armoured SSH signature (``-----BEGIN SSH SIGNATURE-----`` ...).

    Raises :class:`VerificationError` on anything malformed: armour, base64, magic, version,
    field lengths, trailing data, unsupported hash algorithms.
    """
    return parse_signature_blob(dearmor(armored))


def signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    """The bytes an SSHSIG signature covers (PROTOCOL.sshsig section 3): magic, namespace,
    empty reserved, hash algorithm name, and ``H(message)`` as a string."""
    digest = HASH_ALGORITHMS[hash_algorithm](message).digest()
    return (
        MAGIC
        + ssh_string(namespace)
        + ssh_string(b"")
        + ssh_string(hash_algorithm)
        + ssh_string(digest)
    )


def sk_signed_data(application: str, flags: int, counter: int, data: bytes) -> bytes:
    """What a FIDO authenticator signs for ``data`` (PROTOCOL.u2f, ``ssh-ed25519-sk.c``):
    sha256(application) || flags || counter || sha256(data)."""
    return (
        hashlib.sha256(application.encode("utf-8")).digest()
        + bytes([flags])
        + counter.to_bytes(4, "big")
        + hashlib.sha256(data).digest()
    )


def _ed25519_verify(point: bytes, signature: bytes, data: bytes) -> None:
    # cryptography's Rust bindings: about 10 ms of every `runner` start; a run that checks no
    # signature never pays it
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(point).verify(signature, data)
    except (InvalidSignature, ValueError):
        raise VerificationError("signature does not match") from None


def check(
    message: bytes,
    signature: Signature | bytes | str,
    *,
    namespace: str,
    public_key: PublicKey,
    require_user_verification: bool = False,
) -> SignatureDetails:
    """Like :func:`verify`, and return what was verified (FIDO flags and counter included)."""
    sig = signature if isinstance(signature, Signature) else parse_signature(signature)
    key = sig.public_key
    if key.key_type not in ACCEPTED_KEY_TYPES:
        raise VerificationError(
            f"key type {key.key_type} not accepted",
            hint=f"use one of {', '.join(sorted(ACCEPTED_KEY_TYPES))}",
        )
    if sig.namespace != namespace:
        raise VerificationError(f"wrong namespace {sig.namespace!r}, expected {namespace!r}")
    if key.blob != public_key.blob:
        # The key inside the signature is only a claim; the trusted key decides.
        raise VerificationError(
            f"signed by {key.fingerprint}, not by the trusted key {public_key.fingerprint}"
        )
    point = key.ed25519
    if point is None:  # cannot happen: parse_public_key_blob decodes the whole Ed25519 family
        raise VerificationError(f"{key.key_type} key has no Ed25519 point")
    data = signed_data(namespace, sig.hash_algorithm, message)
    reader = WireReader(sig.signature_blob, what="signature blob")
    try:
        sig_type = reader.text("signature type")
        raw = reader.string("Ed25519 signature")
        flags = reader.u8("flags") if key.key_type == SK_ED25519 else None
        counter = reader.u32("counter") if key.key_type == SK_ED25519 else None
        reader.end()
    except SSHFormatError as exc:
        raise VerificationError(str(exc)) from None
    if sig_type != key.key_type:
        # ssh-ed25519.c / ssh-ed25519-sk.c: the signature type must name the key type.
        raise VerificationError(f"signature type {sig_type} does not match key type {key.key_type}")
    if len(raw) != _ED25519_SIGNATURE_SIZE:
        raise VerificationError(f"Ed25519 signature is {len(raw)} bytes, expected 64")
    if key.key_type == ED25519:
        _ed25519_verify(point, raw, data)
        return SignatureDetails(key, sig.namespace, sig.hash_algorithm)
    if flags is None or counter is None or key.application is None:  # cannot happen for sk
        raise VerificationError(f"{key.key_type} signature lacks its FIDO fields")
    _ed25519_verify(point, raw, sk_signed_data(key.application, flags, counter, data))
    if not flags & SK_USER_PRESENCE:
        raise VerificationError(
            "security key signature lacks user presence (authenticator was not touched)"
        )
    if require_user_verification and not flags & SK_USER_VERIFICATION:
        raise VerificationError("security key signature lacks user verification (PIN)")
    return SignatureDetails(key, sig.namespace, sig.hash_algorithm, flags, counter)


def verify(
    message: bytes,
    signature: Signature | bytes | str,
    *,
    namespace: str,
    public_key: PublicKey,
) -> None:
    """Verify that ``signature`` is ``public_key``'s SSHSIG signature of ``message`` in
    ``namespace``; raise :class:`VerificationError` with the reason otherwise.

    The order of checks follows ``sshsig_wrap_verify``: structure, namespace, key, then the
    cryptographic check. The key embedded in the signature must be ``public_key`` (compared as
    blobs), so a valid signature by some other key is refused.
    """
    check(message, signature, namespace=namespace, public_key=public_key)


def sign_with_ssh_keygen(
    message: bytes | Path,
    key_path: str | Path,
    namespace: str,
    *,
    ssh_keygen: str = "ssh-keygen",
    quiet: bool = False,
    timeout: float | None = 300,
) -> bytes:
    """Sign with ``ssh-keygen -Y sign -f KEY -n NAMESPACE`` and return the armoured signature.

    Going through ssh-keygen means ssh-agent, passphrases and FIDO keys all work as approvers
    already use them. ``key_path`` may name the private key or, with an agent, the ``.pub``
    file. The message is fed on stdin (so no ``.sig`` file is written beside it). With
    ``quiet=False`` ssh-keygen's prompts ("Confirm user presence ...") reach the terminal;
    with ``quiet=True`` they are captured and included in any error. The timeout leaves room
    for a person to touch a security key.
    """
    if not namespace:
        raise SigningError("cannot sign with an empty namespace")
    argv = [ssh_keygen, "-Y", "sign", "-f", str(key_path), "-n", namespace]
    try:
        # not quiet: ssh-keygen may ask for a passphrase or a touch, on the terminal
        proc = capture(
            argv, stdin=message, timeout=timeout, limit=SIGNATURE_LIMIT, terminal=not quiet
        )
    except ProgramError as exc:
        if exc.kind == "not-found":
            raise SigningError(
                f"cannot sign: {ssh_keygen} not found", hint="install OpenSSH 8.2 or later"
            ) from None
        if exc.kind == "timed-out":
            raise SigningError(f"ssh-keygen did not finish signing within {timeout} s") from None
        raise SigningError(f"cannot sign: {exc.message}") from None
    if proc.exit_code != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()
        raise SigningError(
            f"ssh-keygen -Y sign failed (exit {proc.exit_code}) with key {key_path}"
            + (f": {detail}" if detail else "")
        )
    try:
        parse_signature(proc.stdout)
    except VerificationError as exc:
        raise SigningError(f"ssh-keygen -Y sign printed no usable signature: {exc}") from None
    return bytes(proc.stdout)
