"""OpenSSH allowed_signers files, revoked-key lists, and the one call that checks an approval.

Format: ``ssh-keygen(1)`` "ALLOWED SIGNERS", as implemented by ``sshsig.c``
(``parse_principals_key_and_options``, ``sshsigopt_parse``, ``check_allowed_keys_line``)::

    principals [options] keytype base64-key [comment]

We parse the same syntax, with deliberate restrictions (each is an error naming
``source:line``, so a trust file that means something we do not implement fails closed
instead of being half understood):

* principals are **exact** names, comma-separated; ``*``, ``?`` and ``!`` (OpenSSH patterns
  and negation) are refused, as are quoted principals and empty list entries;
* ``namespaces="a,b"`` lists exact namespaces too, without white space (OpenSSH allows
  patterns there);
* ``valid-after=``/``valid-before=`` take ``YYYYMMDD[HHMM[SS]]`` with a ``Z`` (or ``UTC``)
  suffix only. OpenSSH reads times without a suffix in the *local* time zone of whichever
  machine verifies; the same file would then mean different instants on different runners,
  so we refuse such times and ask for the ``Z`` form (which ``ssh-keygen`` >= 8.9 reads the
  same way). Bounds are inclusive in seconds, as in ``check_allowed_keys_line``;
* ``cert-authority`` is refused: certificates are not supported, and ignoring the option
  would turn a CA key into a plain trusted key;
* certificate key types are refused. Lines with other key types OpenSSH knows (RSA, ECDSA,
  ...) are kept, so a file shared with git can be used, but signatures by those keys are never
  accepted (see :mod:`runner.approvals.sshkeys`).

Option names are case-insensitive, as in OpenSSH's ``opt_match``. Like ``ssh-keygen``, a line
whose options refuse the use (namespace, time) does not end the search: a later line for the
same principal and key may still allow it.

Errors in trust files raise :class:`TrustFileError`, a :class:`VerificationError` (an approval
checked against a broken trust file must not count) whose ``location`` is ``source:line:column``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from msgspec import Struct

from runner.approvals import sshsig
from runner.approvals.sshkeys import CERT_KEY_TYPES, KNOWN_KEY_TYPES, PublicKey, SSHFormatError
from runner.approvals.sshkeys import parse_public_key as _parse_key
from runner.errors import Location, VerificationError
from runner.errors import TrustFileError as TrustFileError

#: Magic at the start of a binary KRL (OpenSSH ``krl.h``: ``KRL_MAGIC``, "SSHKRL\n\0").
KRL_MAGIC = b"SSHKRL\n\0"

_PATTERN_CHARS = frozenset("*?!")
_WHITESPACE = " \t"
_TIME_RE = re.compile(r"(\d{8}|\d{12}|\d{14})(?:Z|UTC)?", re.IGNORECASE | re.ASCII)


class AllowedSigner(Struct, frozen=True):
    """One line of an allowed_signers file.

    ``namespaces`` is ``None`` when the line allows every namespace; ``valid_after`` and
    ``valid_before`` are aware UTC datetimes or ``None``.
    """

    principals: tuple[str, ...]
    public_key: PublicKey
    namespaces: tuple[str, ...] | None
    valid_after: datetime | None
    valid_before: datetime | None
    source: str
    line: int

    @property
    def location(self) -> Location:
        """Where the line is, for messages."""
        return Location(self.source, self.line, 1)

    def refusal(self, namespace: str, at: datetime) -> str | None:
        """Why this line does not allow a signature in ``namespace`` at ``at``, or ``None``."""
        where = f"{self.source}:{self.line}"
        if self.namespaces is not None and namespace not in self.namespaces:
            allowed = ",".join(self.namespaces)
            return f"namespace {namespace!r} not allowed for this key ({where} allows {allowed})"
        # OpenSSH compares whole seconds (uint64 verify_time); floor, as time(NULL) would.
        when = math.floor(at.timestamp())
        if self.valid_after is not None and when < self.valid_after.timestamp():
            return (
                f"key not yet valid at {_fmt(at)} (valid-after {_fmt(self.valid_after)}, {where})"
            )
        if self.valid_before is not None and when > self.valid_before.timestamp():
            return f"key expired at {_fmt(at)} (valid-before {_fmt(self.valid_before)}, {where})"
        return None


class VerifiedSignature(Struct, frozen=True):
    """A signature that verified against a trusted, unrevoked, currently valid key."""

    principal: str
    namespace: str
    key_type: str
    fingerprint: str
    public_key: PublicKey
    signer: AllowedSigner
    hash_algorithm: str
    sk_flags: int | None = None
    sk_counter: int | None = None


def _fmt(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(
    source: str, line: int, column: int, message: str, hint: str | None = None
) -> TrustFileError:
    return TrustFileError(message, location=Location(source, line, column), hint=hint)


def _parse_time(value: str) -> datetime:
    """``YYYYMMDD[HHMM[SS]]`` + ``Z``/``UTC`` (OpenSSH ``parse_absolute_time``), UTC only."""
    match = _TIME_RE.fullmatch(value)
    if match is None:
        raise ValueError("expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS followed by Z")
    if len(match.group(1)) == len(value):
        raise ValueError("time without Z: OpenSSH would read it in the local time zone")
    d = match.group(1) + "0" * (14 - len(match.group(1)))
    try:
        when = datetime(
            int(d[0:4]),
            int(d[4:6]),
            int(d[6:8]),
            int(d[8:10]),
            int(d[10:12]),
            int(d[12:14]),
            tzinfo=UTC,
        )
    except ValueError:
        raise ValueError("not a valid date and time") from None
    if when.timestamp() <= 0:
        # parse_absolute_time refuses times before the epoch; sshsigopt_parse refuses 0.
        raise ValueError("time must be after 1970-01-01T00:00:00Z")
    return when


def _split_token(text: str, start: int) -> tuple[str, int]:
    """The run of non-blank characters at ``start`` and the index just after it."""
    end = start
    while end < len(text) and text[end] not in _WHITESPACE:
        end += 1
    return text[start:end], end


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _options_end(text: str, start: int) -> int:
    """End of the options field: the first unquoted blank (``sshkey_advance_past_options``)."""
    quoted = False
    pos = start
    while pos < len(text) and (quoted or text[pos] not in _WHITESPACE):
        if text[pos] == "\\" and text[pos + 1 : pos + 2] == '"':
            pos += 1
        elif text[pos] == '"':
            quoted = not quoted
        pos += 1
    if quoted:
        raise ValueError("unterminated quote in options")
    return pos


def _dequote(opts: str, pos: int) -> tuple[str, int]:
    """A quoted option value at ``pos`` (OpenSSH ``opt_dequote``: ``\\"`` is a quote)."""
    if opts[pos : pos + 1] != '"':
        raise ValueError("option value must be quoted")
    out: list[str] = []
    pos += 1
    while pos < len(opts) and opts[pos] != '"':
        if opts[pos] == "\\" and opts[pos + 1 : pos + 2] == '"':
            pos += 1
        out.append(opts[pos])
        pos += 1
    if pos >= len(opts):
        raise ValueError("missing end quote in option value")
    return "".join(out), pos + 1


def _exact_list(value: str, what: str) -> tuple[str, ...]:
    items = tuple(value.split(","))
    for item in items:
        if not item:
            raise ValueError(f"empty {what} in list {value!r}")
        if _PATTERN_CHARS & set(item):
            raise ValueError(f"{what} {item!r} is a pattern; only exact {what}s are supported")
        if any(c.isspace() for c in item):
            raise ValueError(f"{what} {item!r} contains white space")
    return items


class _Options(Struct):
    namespaces: tuple[str, ...] | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None


def _option_at(opts: str, pos: int, word: str) -> bool:
    """Whether ``word`` starts at ``pos``, ignoring case as OpenSSH's ``opt_match`` does
    (``strncasecmp``), in ASCII only: ``str.lower()`` would map e.g. the Kelvin sign to k."""
    chunk = opts[pos : pos + len(word)]
    return chunk.isascii() and chunk.lower() == word


def _parse_options(opts: str) -> _Options:
    """``sshsigopt_parse``, restricted as the module docstring says."""
    result = _Options()
    seen: set[str] = set()
    pos = 0
    while True:
        if _option_at(opts, pos, "cert-authority") and opts[pos + 14 : pos + 15] in ("", ","):
            raise ValueError(
                "cert-authority is not supported: certificates are not accepted for approvals"
            )
        names = ("namespaces", "valid-after", "valid-before")
        name = next((n for n in names if _option_at(opts, pos, n + "=")), None)
        if name is None:
            shown = opts[pos:].split(",", 1)[0]
            raise ValueError(f"unknown option {shown!r}")
        if name in seen:
            raise ValueError(f'multiple "{name}" options')
        seen.add(name)
        value, pos = _dequote(opts, pos + len(name) + 1)
        if name == "namespaces":
            result.namespaces = _exact_list(value, "namespace")
        else:
            try:
                when = _parse_time(value)
            except ValueError as exc:
                raise ValueError(f'invalid "{name}" time {value!r}: {exc}') from None
            if name == "valid-after":
                result.valid_after = when
            else:
                result.valid_before = when
        if pos == len(opts):
            break
        if opts[pos] != ",":
            raise ValueError(f"unexpected {opts[pos:]!r} after {name} option")
        pos += 1
        if pos == len(opts):
            raise ValueError("options end with a comma")
    if (
        result.valid_after is not None
        and result.valid_before is not None
        and result.valid_before <= result.valid_after
    ):
        raise ValueError('"valid-before" is not after "valid-after"')
    return result


def _parse_key_at(text: str, pos: int) -> tuple[PublicKey, int]:
    key_type, pos = _split_token(text, pos)
    if key_type in CERT_KEY_TYPES:
        raise ValueError(f"certificate key type {key_type} is not supported")
    if key_type not in KNOWN_KEY_TYPES:
        raise ValueError(f"expected a key type, found {key_type!r}")
    b64, end = _split_token(text, _skip_blanks(text, pos))
    if not b64:
        raise ValueError(f"{key_type} key has no base64 data")
    try:
        return _parse_key(key_type, b64), end
    except SSHFormatError as exc:
        raise ValueError(str(exc)) from None


def _parse_line(text: str, source: str, number: int) -> AllowedSigner | None:
    pos = _skip_blanks(text, 0)
    if pos == len(text) or text[pos] == "#":
        return None
    principals_text, after = _split_token(text, pos)
    column = pos + 1
    try:
        if '"' in principals_text:
            raise ValueError("quoted principals are not supported")
        principals = _exact_list(principals_text, "principal")
        column = _skip_blanks(text, after) + 1
        if column > len(text):
            raise ValueError("line has principals but no key")
        start = column - 1
        token, _ = _split_token(text, start)
        options = _Options()
        if token not in KNOWN_KEY_TYPES:
            # sshkey_read failed, so OpenSSH takes this field as options.
            end = _options_end(text, start)
            options = _parse_options(text[start:end])
            column = _skip_blanks(text, end) + 1
            if column > len(text):
                raise ValueError("line has options but no key")
        key, _ = _parse_key_at(text, column - 1)
    except ValueError as exc:
        raise _error(source, number, column, str(exc)) from None
    return AllowedSigner(
        principals=principals,
        public_key=key,
        namespaces=options.namespaces,
        valid_after=options.valid_after,
        valid_before=options.valid_before,
        source=source,
        line=number,
    )


def _lines(text: str) -> Iterable[tuple[int, str]]:
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.rstrip("\r")


def parse_allowed_signers(text: str, *, source: str) -> list[AllowedSigner]:
    """Parse an allowed_signers file; raise :class:`TrustFileError` at ``source:line:col``
    on the first line that is malformed or uses something we do not support."""
    signers: list[AllowedSigner] = []
    for number, line in _lines(text):
        signer = _parse_line(line, source, number)
        if signer is not None:
            signers.append(signer)
    return signers


def find_key(
    signers: Iterable[AllowedSigner],
    principal: str,
    public_key: PublicKey,
    namespace: str,
    at: datetime,
) -> AllowedSigner:
    """The first line that lets ``principal`` sign in ``namespace`` with ``public_key`` at
    ``at`` (``check_allowed_keys_line`` semantics); :class:`VerificationError` otherwise,
    saying whether the principal is unknown, the key is not theirs, or which option refused.
    """
    if at.tzinfo is None:
        raise ValueError("find_key needs an aware datetime")
    for_principal = [s for s in signers if principal in s.principals]
    if not for_principal:
        raise VerificationError(f"principal {principal!r} is not in the allowed signers")
    with_key = [s for s in for_principal if s.public_key.blob == public_key.blob]
    if not with_key:
        raise VerificationError(
            f"key {public_key.fingerprint} is not allowed for principal {principal!r}"
        )
    refusals: list[str] = []
    for signer in with_key:
        reason = signer.refusal(namespace, at)
        if reason is None:
            return signer
        refusals.append(reason)
    raise VerificationError("; ".join(refusals))


def parse_revoked_keys(text: str | bytes, *, source: str = "revoked keys") -> frozenset[bytes]:
    """Key blobs of a plain revoked-keys list (one ``keytype base64 [comment]`` per line, ``#``
    comments), the non-KRL form ``ssh-keygen -Y verify -r`` accepts (``sshkey_in_file``).

    Binary KRLs are detected by their magic and refused: we do not implement them, and an
    unread revocation list must not mean "nothing revoked".
    """
    if isinstance(text, bytes):
        if text.startswith(KRL_MAGIC):
            raise _krl_error(source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise _error(source, 1, 1, "revoked keys file is neither text nor a KRL") from None
    elif text.startswith(KRL_MAGIC.decode("ascii")):
        raise _krl_error(source)
    blobs: set[bytes] = set()
    for number, line in _lines(text):
        pos = _skip_blanks(line, 0)
        if pos == len(line) or line[pos] == "#":
            continue
        try:
            key, _ = _parse_key_at(line, pos)
        except ValueError as exc:
            raise _error(source, number, pos + 1, str(exc)) from None
        blobs.add(key.blob)
    return frozenset(blobs)


def _krl_error(source: str) -> TrustFileError:
    return _error(
        source,
        1,
        1,
        "binary KRL revocation lists are not supported",
        hint="list revoked public keys one per line instead (keytype base64 [comment])",
    )


def verify_approval_signature(
    message: bytes,
    armored_sig: bytes | str,
    *,
    principal: str,
    namespace: str,
    signers: Iterable[AllowedSigner],
    revoked: Iterable[bytes] = frozenset(),
    at: datetime,
) -> VerifiedSignature:
    """Check an approval as ``ssh-keygen -Y verify -f ALLOWED -I principal -n namespace
    -r REVOKED -s SIG < message`` would, with the restrictions of this package.

    Order as in ``ssh-keygen``'s ``sig_verify``: the signature against the key it carries,
    then revocation, then the allowed_signers lookup for ``principal`` at time ``at``.
    Raises :class:`VerificationError` with the reason.
    """
    sig = sshsig.parse_signature(armored_sig)
    details = sshsig.check(message, sig, namespace=namespace, public_key=sig.public_key)
    key = details.public_key
    if key.blob in set(revoked):
        raise VerificationError(f"key {key.fingerprint} is revoked")
    signer = find_key(signers, principal, key, namespace, at)
    return VerifiedSignature(
        principal=principal,
        namespace=namespace,
        key_type=key.key_type,
        fingerprint=key.fingerprint,
        public_key=key,
        signer=signer,
        hash_algorithm=details.hash_algorithm,
        sk_flags=details.sk_flags,
        sk_counter=details.sk_counter,
    )
