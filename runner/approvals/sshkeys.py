"""OpenSSH public keys: wire encoding, parsing and ``SHA256:`` fingerprints.

Only what the approval checks need. Keys travel as their SSH wire blob (RFC 4253 section 6.6);
two keys are the same key exactly when their blobs are equal, which is also how OpenSSH's
``sshkey_equal`` behaves for the Ed25519 family (public point, plus the application string for
``sk-`` keys).

The Ed25519 family is decoded and validated field by field. Every other key type OpenSSH knows
is kept *opaque* (type name and blob only): such a key may appear in a shared allowed_signers
file, but a signature made with it is never accepted (see :data:`ACCEPTED_KEY_TYPES`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from msgspec import Struct

ED25519 = "ssh-ed25519"
SK_ED25519 = "sk-ssh-ed25519@openssh.com"

#: Key types whose signatures we verify. RSA, DSA and ECDSA are refused on purpose: one modern
#: algorithm is less to get wrong, and approvers can all create Ed25519 keys (or FIDO ones).
ACCEPTED_KEY_TYPES = frozenset({ED25519, SK_ED25519})

_PLAIN_KEY_TYPES = frozenset(
    {
        ED25519,
        SK_ED25519,
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-xmss@openssh.com",
    }
)
_CERT_SUFFIX = "-cert-v01@openssh.com"


def _cert_name(plain: str) -> str:
    base, at, domain = plain.partition("@")
    return f"{base}{_CERT_SUFFIX}" if not at else f"{base}-cert-v01@{domain}"


#: Certificate key types, e.g. ``ssh-ed25519-cert-v01@openssh.com``. We never trust certificates.
CERT_KEY_TYPES = frozenset(_cert_name(t) for t in _PLAIN_KEY_TYPES)

#: Every key type name OpenSSH's ``sshkey_read`` would recognise at the start of a key.
KNOWN_KEY_TYPES = _PLAIN_KEY_TYPES | CERT_KEY_TYPES

_ED25519_PUBLIC_KEY_SIZE = 32


class SSHFormatError(ValueError):
    """Bytes or text that are not a well-formed SSH encoding. Callers add the context."""


class WireReader:
    """Reads the RFC 4253 section 5 types from a byte string, refusing anything short."""

    def __init__(self, data: bytes, *, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def _take(self, size: int, field: str) -> bytes:
        if size > len(self._data) - self._pos:
            raise SSHFormatError(f"{self._what} is truncated in its {field}")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def raw(self, size: int, field: str) -> bytes:
        """Exactly ``size`` bytes."""
        return self._take(size, field)

    def u8(self, field: str) -> int:
        """One byte."""
        return self._take(1, field)[0]

    def u32(self, field: str) -> int:
        """A big-endian unsigned 32-bit integer."""
        value: int = struct.unpack(">I", self._take(4, field))[0]
        return value

    def string(self, field: str) -> bytes:
        """A ``string``: uint32 length, then that many bytes."""
        return self._take(self.u32(field), field)

    def text(self, field: str) -> str:
        """A ``string`` holding UTF-8 text without NUL bytes.

        OpenSSH reads these fields with ``sshbuf_get_cstring``, which refuses embedded NULs; we
        also require UTF-8 so that what we compare is what a person reads.
        """
        value = self.string(field)
        if b"\0" in value:
            raise SSHFormatError(f"{self._what} has a NUL byte in its {field}")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise SSHFormatError(f"{self._what} has a {field} that is not UTF-8") from None

    def end(self) -> None:
        """Refuse trailing bytes, as OpenSSH does for keys, signatures and SSHSIG blobs."""
        if self._pos != len(self._data):
            extra = len(self._data) - self._pos
            raise SSHFormatError(f"{self._what} has {extra} byte(s) of trailing data")


def ssh_string(value: bytes | str) -> bytes:
    """Encode an SSH ``string`` (uint32 length, then the bytes; text is UTF-8)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack(">I", len(data)) + data


class PublicKey(Struct, frozen=True):
    """A public key as OpenSSH encodes it.

    ``blob`` is the wire encoding and the identity of the key. ``ed25519`` (the 32-byte point)
    is set for the Ed25519 family only, ``application`` for ``sk-ssh-ed25519@openssh.com`` only
    (the FIDO relying-party id, ``ssh:`` by default). Other key types are opaque.
    """

    key_type: str
    blob: bytes
    ed25519: bytes | None = None
    application: str | None = None

    @property
    def fingerprint(self) -> str:
        """The fingerprint as ``ssh-keygen -l`` prints it: ``SHA256:`` + unpadded base64."""
        return fingerprint(self.blob)

    @property
    def openssh(self) -> str:
        """The ``type base64`` form used in allowed_signers and ``.pub`` files."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"

    @property
    def accepted(self) -> bool:
        """Whether signatures by this key type can be accepted at all."""
        return self.key_type in ACCEPTED_KEY_TYPES

    def __str__(self) -> str:
        return f"{self.key_type} {self.fingerprint}"


def fingerprint(blob: bytes) -> str:
    """SHA-256 fingerprint of a key blob, as OpenSSH prints it (``SHA256:...``, no padding)."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def parse_public_key_blob(blob: bytes) -> PublicKey:
    """Decode a key blob. Ed25519-family keys are checked field by field, like OpenSSH's
    ``sshkey_from_blob`` (exact point size, application string, no trailing data); other known
    types are kept opaque; unknown types are refused.
    """
    reader = WireReader(blob, what="public key")
    try:
        key_type = reader.text("key type")
    except SSHFormatError as exc:
        raise SSHFormatError(f"public key is malformed: {exc}") from None
    if key_type in (ED25519, SK_ED25519):
        point = reader.string("Ed25519 point")
        if len(point) != _ED25519_PUBLIC_KEY_SIZE:
            raise SSHFormatError(
                f"{key_type} public key has a {len(point)}-byte point, expected 32"
            )
        application = reader.text("application") if key_type == SK_ED25519 else None
        reader.end()
        return PublicKey(key_type, blob, ed25519=point, application=application)
    if key_type in KNOWN_KEY_TYPES:
        return PublicKey(key_type, blob)
    raise SSHFormatError(f"unknown key type {key_type!r}")


def decode_base64(text: str, *, what: str) -> bytes:
    """Strict base64: the standard alphabet, correct padding, canonical trailing bits.

    OpenSSH's ``b64_pton`` also refuses non-zero trailing bits, so a canonical encoding is the
    only one both sides agree on.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SSHFormatError(f"{what} is not valid base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise SSHFormatError(f"{what} is not canonical base64")
    return data


def parse_public_key(key_type: str, b64: str) -> PublicKey:
    """Parse the ``keytype base64`` pair of a ``.pub`` or allowed_signers line.

    The type named in the text must be the type inside the blob (OpenSSH ``sshkey_read``
    refuses a mismatch too).
    """
    if key_type not in KNOWN_KEY_TYPES:
        raise SSHFormatError(f"unknown key type {key_type!r}")
    key = parse_public_key_blob(decode_base64(b64, what=f"{key_type} key"))
    if key.key_type != key_type:
        raise SSHFormatError(f"key is labelled {key_type} but its blob holds {key.key_type}")
    return key


def ed25519_public_key_blob(point: bytes) -> bytes:
    """The blob of an ``ssh-ed25519`` key with this 32-byte point."""
    return ssh_string(ED25519) + ssh_string(point)


def sk_ed25519_public_key_blob(point: bytes, application: str = "ssh:") -> bytes:
    """The blob of an ``sk-ssh-ed25519@openssh.com`` key (PROTOCOL.u2f): point, application."""
    return ssh_string(SK_ED25519) + ssh_string(point) + ssh_string(application)
