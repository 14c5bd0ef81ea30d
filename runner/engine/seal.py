"""The record's seal: an HMAC that makes a run record tamper-evident between CI jobs (#17).

The state folder travels between jobs as an artifact, and whoever can upload an artifact can
rewrite it. With ``RUNNER_RECORD_KEY`` set (a CI secret scoped to the deployment environment,
which the artifact uploader does not have) every snapshot of the record (``record.json``)
appends an HMAC-SHA256 of the record's text, keyed by it, as the record's last field; a resume
with the key refuses a record whose seal is missing or does not verify, whatever field was
changed. The journal's lines between snapshots carry their own chained MACs with the same key
(``runner.engine.journal``).

The seal is one more line of the same file, written by the same atomic rename: a record and its
seal can never be out of step after a crash. It is computed over the exact bytes before it
(``hmac`` over the encoded text: no re-encoding, no canonical form to get wrong), so verifying
is one HMAC over the file, and sealing one over the text being written anyway.

The key is a secret: it never reaches the record, a log or a step's environment (``Run``
removes it and masks it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from runner.errors import UsageError

KEY_ENV = "RUNNER_RECORD_KEY"
#: shortest key taken: 32 characters (``openssl rand -hex 32`` gives 64)
MIN_KEY_LENGTH = 32
_TAIL = "\n}\n"
_SEAL = re.compile(r',\n "seal": "hmac-sha256:([0-9a-f]{64})"\n\}\n\Z')


class SealError(ValueError):
    """A record's seal is missing or does not verify."""


def record_key(environ: Mapping[str, str]) -> bytes | None:
    """The key in ``$RUNNER_RECORD_KEY``, or ``None`` when it is unset or empty; a
    ``UsageError`` for a key too short to be a secret."""
    value = environ.get(KEY_ENV, "")
    if not value:
        return None
    if len(value) < MIN_KEY_LENGTH:
        raise UsageError(
            f"${KEY_ENV} is {len(value)} characters long; a record key must have at least "
            f"{MIN_KEY_LENGTH}",
            hint="generate one with `openssl rand -hex 32` and store it as a CI secret of the "
            "deployment environment",
        )
    return value.encode("utf-8")


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def seal(data: bytes, key: bytes) -> bytes:
    """``data`` (a record's JSON as ``RunRecord.to_json`` writes it, encoded) with its seal as
    the last field: one HMAC over the bytes about to be written, no second encoding."""
    tail = _TAIL.encode()
    if not data.endswith(tail):
        raise ValueError("not a record's text")
    mac = hmac.new(key, data, hashlib.sha256).hexdigest()
    return b"".join((data[: -len(tail)], b',\n "seal": "hmac-sha256:', mac.encode(), b'"', tail))


def is_sealed(text: str) -> bool:
    return _SEAL.search(text) is not None


def unseal(text: str, key: bytes) -> str:
    """The record's text without its seal; ``SealError`` when the seal is missing or is not
    this key's HMAC of the text."""
    found = _SEAL.search(text)
    if found is None:
        raise SealError("it has no seal")
    body = text[: found.start()] + _TAIL
    if not hmac.compare_digest(found.group(1), _mac(key, body)):
        raise SealError("its seal does not verify (the record was changed after it was saved)")
    return body
