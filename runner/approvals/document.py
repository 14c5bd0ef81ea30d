"""Signed approval files: the JSON body an approver signs, and its strict checks.

The body binds everything that makes an approval mean one thing: the run, the step, the
environment, the workflow digest and source commit, the run's inputs (``inputs_digest``, left
out for a run without inputs), the decision, the approver's principal, the notes and field
values, and a validity window. A guided-failure decision (retry, skip, fail) also
binds ``kind: guided-failure`` and the failed ``attempt``, so that it decides that attempt alone;
a manual step's body has neither key, as before (its files verify unchanged). It is parsed only
after its signature verified, from the very bytes that were verified; duplicate keys, trailing
data, unknown or missing keys refuse it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from msgspec import Struct, field
from msgspec.structs import asdict

from runner.approvals import sshsig
from runner.approvals.allowed_signers import verify_approval_signature
from runner.approvals.request import GUIDED, Interruption, Result, Submission, inputs_digest
from runner.bounded import check_depth, holds_half_character
from runner.errors import InputLimitError, VerificationError

FORMAT = "runner-approval/v1"
#: an approval issued this far in the future (approver's clock ahead) is still accepted
CLOCK_SKEW = timedelta(minutes=5)
#: the longest validity window an approval may claim
MAX_VALIDITY = timedelta(days=7)
NAMESPACE = "runner-approval"
MAX_BODY_BYTES = 64 * 1024


class ApprovalBody(Struct, frozen=True):
    run_id: str
    step_id: str
    environment: str
    workflow_digest: str
    commit: str | None
    decision: str  # proceed | abort
    approver: str  # the SSH principal that signs
    issued_at: str
    expires_at: str
    notes: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT
    #: ``guided-failure`` for a failed step's decision; a manual step's body leaves both out
    kind: str = "manual"
    attempt: int | None = None
    #: the run's inputs (see :func:`inputs_digest`): another run under the same id (another
    #: state folder, a copy of the artifact) with other inputs is not approved by this one
    inputs_digest: str | None = None

    def encode(self) -> bytes:
        """The canonical bytes to sign: sorted keys, compact, one trailing newline."""
        data = asdict(self)
        if self.kind == "manual":
            del data["kind"]
        for optional in ("attempt", "inputs_digest"):
            if data[optional] is None:
                del data[optional]
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    @property
    def issued(self) -> datetime:
        return parse_instant(self.issued_at, "issued_at")

    @property
    def expires(self) -> datetime:
        return parse_instant(self.expires_at, "expires_at")


_KEYS = set(ApprovalBody.__struct_fields__)
#: ``commit`` must be present (null when the run knows no commit): a body that leaves out a
#: bound field is refused, never filled in with a default
_REQUIRED = _KEYS - {"notes", "fields", "kind", "attempt", "inputs_digest"}
#: the decisions of each kind of body
_DECISIONS = {"manual": ("proceed", "abort"), GUIDED: ("retry", "skip", "fail")}


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_instant(text: Any, name: str) -> datetime:
    if not isinstance(text, str) or not text.endswith("Z"):
        raise VerificationError(f"`{name}` must be a UTC time like 2026-01-31T12:00:00Z")
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        raise VerificationError(f"`{name}` is not a valid time: {text!r}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise VerificationError(f"approval body has the key {key!r} twice")
        result[key] = value
    return result


def parse_body(raw: bytes) -> ApprovalBody:
    """Parse verified bytes strictly. Raise :class:`VerificationError` with the reason."""
    if len(raw) > MAX_BODY_BYTES:
        raise VerificationError("approval body is too large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("approval body is not UTF-8") from None
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    try:
        check_depth(text, what="approval body")
        data, end = decoder.raw_decode(text)
    except InputLimitError as exc:
        raise VerificationError(str(exc)) from None
    except ValueError as exc:
        raise VerificationError(f"approval body is not JSON: {exc}") from None
    except RecursionError:  # not after check_depth; kept so that no body ever crashes a run
        raise VerificationError("approval body is nested too deeply") from None
    if text[end:] not in ("", "\n"):
        raise VerificationError("approval body has data after the JSON document")
    if not isinstance(data, dict):
        raise VerificationError("approval body must be a JSON object")
    if holds_half_character(data):
        # its notes would go into the run's record, which cannot hold one (an internal error)
        raise VerificationError("approval body holds half of a character (a lone \\ud800 escape)")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise VerificationError(f"approval body has unknown key {unknown[0]!r}")
    missing = sorted(_REQUIRED - set(data))
    if missing:
        raise VerificationError(f"approval body lacks {missing[0]!r}")
    if data["format"] != FORMAT:
        raise VerificationError(f"approval format {data['format']!r} is not {FORMAT}")
    for key in _KEYS - {"fields", "commit", "attempt"}:
        if key in data and not isinstance(data[key], str):
            raise VerificationError(f"`{key}` must be a string")
    if data.get("commit") is not None and not isinstance(data["commit"], str):
        raise VerificationError("`commit` must be a string or null")
    fields = data.get("fields", {})
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise VerificationError("`fields` must map names to strings")
    kind = data.get("kind", "manual")
    if kind not in _DECISIONS:
        raise VerificationError(f"`kind` {str(kind)[:40]!r} is neither manual nor {GUIDED}")
    attempt = data.get("attempt")
    if kind == GUIDED:
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise VerificationError("a guided-failure approval needs `attempt`, a number from 1")
    elif "attempt" in data:
        raise VerificationError("a manual step's approval has no `attempt`")
    if data["decision"] not in _DECISIONS[kind]:
        if kind == GUIDED:
            raise VerificationError(f"decision {data['decision']!r} is not retry, skip or fail")
        raise VerificationError(f"decision {data['decision']!r} is neither proceed nor abort")
    try:
        body = ApprovalBody(**data)
    except TypeError as exc:  # fail closed on any shape the checks above did not foresee
        raise VerificationError(f"approval body does not have the expected shape: {exc}") from None
    body.issued  # noqa: B018 - validates the format
    body.expires  # noqa: B018
    return body


def check_binding(body: ApprovalBody, request: Interruption, now: datetime) -> None:
    """Refuse an approval that is not for this very request, or not valid now."""
    if body.kind != request.kind:
        raise VerificationError(
            f"approval is a {body.kind} decision, but the step asks for a {request.kind} one"
        )
    pairs = (
        ("run", body.run_id, request.run_id),
        ("step", body.step_id, request.step_id),
        ("environment", body.environment, request.environment),
        ("workflow digest", body.workflow_digest, request.digest),
    )
    for what, given, expected in pairs:
        if given != expected:
            raise VerificationError(f"approval is for {what} {given!r}, not {expected!r}")
    if request.guided and body.attempt != request.attempt:
        # a retry decided for one failed attempt must not decide the next one too (issue 21)
        raise VerificationError(
            f"approval is for attempt {body.attempt} of step {body.step_id!r}, not attempt "
            f"{request.attempt}"
        )
    if request.commit and body.commit != request.commit:
        raise VerificationError(f"approval is for commit {body.commit!r}, not {request.commit!r}")
    bound = inputs_digest(request.inputs, request.skipped)
    if body.inputs_digest != bound:
        raise VerificationError(
            "approval is for a run with other inputs"
            if bound and body.inputs_digest
            else "approval binds inputs this run does not have"
            if body.inputs_digest
            else "approval does not bind this run's inputs (sign it from the request file the "
            "waiting run wrote, or with --inputs-digest)"
        )
    check_window(body, now, request.run_started or None)


#: the decisions that stop a deployment: they count after they expire (see ``check_window``)
STOPPING = frozenset({"abort", "fail"})


def check_window(body: ApprovalBody, now: datetime, run_started: str | None = None) -> None:
    """Refuse an approval whose validity window is malformed or does not include ``now``.

    An abort (a guided ``fail``) still counts once it has expired: expiry keeps a proceed from
    being used long after it was given, while an expired abort that no longer counted let a
    run aborted in one CI job go ahead in a later one, resumed from the state folder an
    earlier job had left (attack pass)."""
    issued, expires = body.issued, body.expires
    if expires <= issued:
        raise VerificationError("approval expires before it is issued")
    if expires - issued > MAX_VALIDITY:
        raise VerificationError("approval claims a validity longer than 7 days")
    if issued > now + CLOCK_SKEW:
        raise VerificationError(f"approval is issued in the future ({body.issued_at})")
    if now >= expires and body.decision not in STOPPING:
        raise VerificationError(f"approval expired at {body.expires_at}")
    if run_started:
        try:
            started = datetime.fromisoformat(run_started.replace("Z", "+00:00"))
        except ValueError:
            # the run's start comes from its record: a malformed one proves nothing
            raise VerificationError(
                f"the run's start time {run_started[:40]!r} is not a time"
            ) from None
        if started.tzinfo is None:
            raise VerificationError(f"the run's start time {run_started[:40]!r} has no time zone")
        if issued < started - CLOCK_SKEW:
            raise VerificationError(
                f"approval was issued at {body.issued_at}, before the run started"
            )


def body_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def new_body(
    request: dict[str, Any],
    decision: str,
    principal: str,
    notes: str,
    fields: dict[str, str],
    now: datetime,
    valid_for: timedelta,
) -> ApprovalBody:
    """A body for a request (an interruption as JSON, or the same facts from the command line);
    a guided-failure request's body binds its kind and attempt."""
    guided = request.get("kind") == GUIDED
    return ApprovalBody(
        kind=GUIDED if guided else "manual",
        attempt=int(request["attempt"]) if guided else None,
        run_id=request["run_id"],
        step_id=request["step_id"],
        environment=request["environment"],
        workflow_digest=request["digest"],
        commit=request.get("commit"),
        inputs_digest=(
            inputs_digest(request["inputs"], request.get("skipped") or ())
            if isinstance(request.get("inputs"), dict)
            else request.get("inputs_digest")
        ),
        decision=decision,
        approver=principal,
        notes=notes,
        fields=fields,
        issued_at=instant(now),
        expires_at=instant(now + valid_for),
    )


class SignedApproval(Struct, frozen=True):
    body: ApprovalBody
    raw: bytes
    principal: str
    fingerprint: str
    key_type: str


def submission_of(
    signed: SignedApproval, signature: str, evidence: dict[str, Any], key: str
) -> Submission:
    """The submission a verified signed file makes (when read from the branch, or verified
    again from a record); ``evidence`` says where it was found."""
    return Submission(
        source="file",
        result=_result(signed.body.decision),
        who=signed.principal,
        who_kind="principal",
        notes=signed.body.notes,
        fields=dict(signed.body.fields),
        submitted_at=signed.body.issued_at,
        evidence={
            **evidence,
            "sha256": body_digest(signed.raw),
            "body": signed.raw.decode("utf-8"),
            "signature": signature,
            "principal": signed.principal,
            "fingerprint": signed.fingerprint,
            "key_type": signed.key_type,
        },
        key=key,
    )


def _result(decision: str) -> Result:
    """The submission's result for a decision ``parse_body`` accepted."""
    for result in ("proceed", "abort", "retry", "skip", "fail"):
        if decision == result:
            return result
    return "abort"  # not reached: parse_body refuses any other decision


def verify_signed(
    raw: bytes,
    armored: bytes,
    *,
    signers: Any,
    revoked: Any,
    namespace: str,
    at: datetime,
) -> SignedApproval:
    """Verify the signature over ``raw``, then parse ``raw``, then check that the signing key is
    trusted for the principal the body names. Raise :class:`VerificationError` with why not."""

    signature = sshsig.parse_signature(armored)
    sshsig.check(raw, signature, namespace=namespace, public_key=signature.public_key)
    body = parse_body(raw)  # only now: these exact bytes carry a valid signature
    verified = verify_approval_signature(
        raw,
        armored,
        principal=body.approver,
        namespace=namespace,
        signers=signers,
        revoked=revoked,
        at=at,
    )
    return SignedApproval(body, raw, verified.principal, verified.fingerprint, verified.key_type)
