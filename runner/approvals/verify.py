"""Re-verifying recorded decisions from their evidence: a run record is not evidence (#17).

Whoever can write the state folder (a CI artifact carries it between jobs) can write a record
that says a gate passed. A decision counts again only from what the record cannot forge:

- a signed file: the body and signature kept as evidence are verified again against the allowed
  signers of the pinned trust commit and the revoked keys of that commit and of the trust ref's
  tip, and bound again to this run, step, environment, the digest of the workflow file here and
  the commit deployed here;
- the approval server: its own decision rows for the interruption, fetched again (the server's
  copy of a record is no more evidence than the local one);
- the terminal prompt: nothing to verify after the fact (``runner.engine.evidence`` decides).

The submissions that verify are then judged again (``quorum.judge``) under the rules of the
workflow file, not of the interruption the record holds.

An auditor's checks of one signed file (``runner approval verify``) and of the signed approvals a
record keeps (``runner runs show``) are here too, as a :class:`SignedFileReport` the CLI prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from msgspec import Struct, field

from runner.approvals.allowed_signers import (
    AllowedSigner,
)
from runner.approvals.document import (
    MAX_BODY_BYTES,
    SignedApproval,
    body_digest,
    check_binding,
    check_window,
    parse_instant,
    submission_of,
    verify_signed,
)
from runner.approvals.identity import Person, parse_directory
from runner.approvals.quorum import check_fields
from runner.approvals.request import Interruption, Submission, inputs_digest, specs_of
from runner.approvals.trust import TrustFiles, reachable, read_keys
from runner.bounded import read_prefix
from runner.errors import ApprovalError, RunnerError, UsageError, VerificationError
from runner.git import Git
from runner.load import load_workflow


def signed_submission(
    evidence: Mapping[str, Any],
    *,
    signers: list[AllowedSigner],
    revoked: frozenset[bytes],
    namespace: str,
    request: Interruption | None,
    at: datetime,
) -> Submission:
    """The submission a recorded signed file makes, verified again as of ``at``; bound to
    ``request`` when given. VerificationError says why it does not hold."""
    if not isinstance(evidence, Mapping):
        raise VerificationError("the record keeps no evidence for it")
    body, signature = evidence.get("body"), evidence.get("signature")
    if not isinstance(body, str) or not isinstance(signature, str):
        raise VerificationError("the record keeps no signed body and signature for it")
    raw, armored = body.encode("utf-8"), signature.encode("utf-8")
    signed = verify_signed(
        raw, armored, signers=signers, revoked=revoked, namespace=namespace, at=at
    )
    if request is not None:
        check_binding(signed.body, request, at)
    kept = {k: v for k, v in evidence.items() if k in ("file", "remote")}
    return submission_of(signed, signature, kept, f"file:{body_digest(raw)}:{body_digest(armored)}")


def server_rows(view: Mapping[str, Any], interruption_id: str, url: str) -> list[Submission]:
    """The decisions of a server's view of an interruption, as submissions."""
    found = []
    submissions = view.get("submissions")
    for item in submissions if isinstance(submissions, list) else []:
        try:
            found.append(
                Submission(
                    source="server",
                    result=item["result"],
                    who=str(item["username"]),
                    who_kind="username",
                    notes=str(item.get("notes", "")),
                    fields={str(k): str(v) for k, v in (item.get("fields") or {}).items()},
                    submitted_at=str(item.get("at", "")),
                    evidence={
                        "server": url,
                        "interruption": interruption_id,
                        "submission": item.get("id"),
                    },
                    key=f"server:{interruption_id}:{item.get('id')}",
                )
            )
        except (KeyError, TypeError, AttributeError):
            continue
    return [s for s in found if s.result in ("proceed", "abort", "retry", "skip", "fail")]


def check_server_view(view: Mapping[str, Any], request: Interruption) -> None:
    """Refuse a server view that is not of this run, step, environment, digest and commit."""
    asked = view.get("request")
    if not isinstance(asked, dict):
        raise VerificationError("the server's interruption holds no request")
    pairs = (
        ("run", asked.get("run_id"), request.run_id),
        ("step", asked.get("step_id"), request.step_id),
        ("environment", asked.get("environment"), request.environment),
        ("workflow digest", asked.get("digest"), request.digest),
    )
    for what, given, expected in pairs:
        if given != expected:
            raise VerificationError(
                f"the server's interruption is for {what} {given!r}, not {expected!r}"
            )
    if request.commit and asked.get("commit") != request.commit:
        raise VerificationError(
            f"the server's interruption is for commit {asked.get('commit')!r}, "
            f"not {request.commit!r}"
        )


def missing_server_rows(
    recorded: Iterable[Mapping[str, Any]], rows: Iterable[Submission]
) -> list[str]:
    """Server decisions the record claims that the server has no row for (same id, person,
    result): a record that says "the server approved" proves nothing by itself."""
    have = {(s.evidence.get("submission"), s.who, s.result) for s in rows}
    missing = []
    for decision in recorded:
        evidence = decision.get("evidence")
        evidence = evidence if isinstance(evidence, Mapping) else {}
        key = (evidence.get("submission"), decision.get("username"), decision.get("result"))
        if key not in have:
            missing.append(f"{decision.get('result')} by {decision.get('username')}")
    return missing


class SignedFileReport(Struct, frozen=True):
    """What checking one signed approval file found (``runner approval verify``, and ``runner
    runs show`` re-verifying a recorded one). ``refusal`` says why its proof does not hold (then
    nothing else is known); ``problems`` why a proof that holds still does not count."""

    refusal: str | None = None
    signed: SignedApproval | None = None
    namespace: str = ""
    #: who the principal is in the people file, and their teams (None: not in it)
    person: Person | None = None
    teams: tuple[str, ...] = ()
    #: the sha256 of the signed body (what the record and audit name it by)
    sha256: str = ""
    problems: tuple[str, ...] = ()
    #: why the run's gate will refuse a file whose proof holds: its fields do not satisfy the
    #: step the workflow has (``approval verify`` said "valid" and the resume refused it)
    will_refuse: str = ""

    @property
    def valid(self) -> bool:
        return self.refusal is None and not self.problems and not self.will_refuse


class Claims(Struct, frozen=True):
    """What a run's record says of one decision it counted (``runner runs show`` prints it),
    to be found in the signed body that proves it."""

    run_id: str
    step_id: str
    environment: str
    digest: str
    commit: str | None
    inputs: dict[str, Any]
    result: str
    username: str
    #: as the record keeps them: masked where they quoted a secret
    notes: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    kind: str = "manual"
    attempt: int | None = None
    #: the steps the run skipped with ``--skip``
    skipped: tuple[str, ...] = ()


def unproven_claims(report: SignedFileReport, claims: Claims) -> list[str]:
    """What the record claims of a decision that its signed approval (verified in ``report``)
    does not say: a record is rewritable (a CI artifact), so who decided what, for which run,
    with which notes, is believed only as far as the signed body says it. Notes and field values
    the record masked match the body's with each ``***`` standing for what it hid."""
    signed = report.signed
    if signed is None:
        return []
    body = signed.body
    said = (
        ("run", claims.run_id, body.run_id),
        ("step", claims.step_id, body.step_id),
        ("environment", claims.environment, body.environment),
        ("workflow digest", claims.digest, body.workflow_digest),
        ("commit", claims.commit, body.commit),
        # an approval signed before inputs were bound says nothing of them
        (
            "inputs digest",
            inputs_digest(claims.inputs, claims.skipped) if body.inputs_digest else None,
            body.inputs_digest,
        ),
        ("kind", claims.kind, body.kind),
        ("attempt", claims.attempt, body.attempt),
        ("decision", claims.result, body.decision),
        ("person", claims.username, report.person.username if report.person else None),
    )
    found = [
        f"the record says {what} {recorded!r}, the signed approval {proven!r}"
        for what, recorded, proven in said
        if recorded != proven
    ]
    if not _masking_of(claims.notes, body.notes):
        found.append("the record's notes are not the signed approval's")
    if set(claims.fields) != set(body.fields) or not all(
        _masking_of(value, body.fields[name]) for name, value in claims.fields.items()
    ):
        found.append("the record's fields are not the signed approval's")
    return found


#: a mask ``***`` in a masked text, with any ``*`` written beside it (`*S` masked is `****`)
_MASKS = re.compile(r"\*{3,}")


def _masking_of(recorded: str, signed: str) -> bool:
    """Whether ``recorded`` is ``signed`` with some parts of it, each not empty, replaced by
    ``***``: the pieces between the masks found in order, each as early as it can be (which
    leaves the most room for the rest), in linear time whatever a record holds. A run of n
    stars is a mask with the stars the text had beside it: it hides n - 2 characters or more."""
    runs = [len(run) for run in _MASKS.findall(recorded)]
    if not runs:
        return recorded == signed
    pieces = _MASKS.split(recorded)
    first, middle, last = pieces[0], pieces[1:-1], pieces[-1]
    end = len(signed) - len(last)
    if not signed.startswith(first) or not signed.endswith(last) or end < len(first):
        return False
    at = len(first)
    for stars, piece in zip(runs, middle, strict=False):
        found = signed.find(piece, at + stars - 2)
        if found < 0:
            return False
        at = found + len(piece)
    return end - at >= runs[-1] - 2


def masked_parts(claims: Claims) -> int:
    """How many masks the record's notes and field values show: what they hid is not shown,
    and only that it was there can be checked against the signed body."""
    texts = [claims.notes, *claims.fields.values()]
    return sum(len(_MASKS.findall(text)) for text in texts)


def verify_signed_file(
    path: str,
    workflow_path: str,
    *,
    run_id: str | None,
    at: str | None,
    insecure: bool,
    trust_commit: str | None = None,
) -> SignedFileReport:
    """Check the signed approval ``path`` (and ``path.sig``) against the trust of the workflow
    at ``workflow_path`` (read from ``trust_commit``, the commit a run pinned, when given), as of
    ``at`` (else now); for run ``run_id`` when given. A RunnerError when it cannot be checked at
    all (no allowed signers, trust from the working tree without ``insecure``, unreadable
    files)."""

    def read() -> tuple[bytes, bytes]:
        try:
            # at most one byte past what a body may be: more is refused as too large, and a
            # link to /dev/zero or a huge file is not read whole (it was a MemoryError)
            return read_prefix(path, MAX_BODY_BYTES), read_prefix(path + ".sig", MAX_BODY_BYTES)
        except OSError as exc:
            raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None

    return _verify(
        read,
        workflow_path,
        run_id=run_id,
        at=at,
        insecure=insecure,
        pin=trust_commit,
        judge_fields=True,
    )


def reverify_evidence(
    evidence: Mapping[str, Any],
    workflow_path: str,
    *,
    at: str | None,
    insecure: bool,
    trust_commit: str | None = None,
) -> SignedFileReport:
    """Verify a recorded signed approval (its body and signature kept as evidence) again, as
    of its decision (``at``) and against the trust the run read (``trust_commit``). A
    RunnerError when it cannot be re-verified at all."""
    raw = str(evidence.get("body", "")).encode("utf-8")
    armored = str(evidence.get("signature", "")).encode()
    return _verify(
        lambda: (raw, armored),
        workflow_path,
        run_id=None,
        at=at,
        insecure=insecure,
        pin=trust_commit,
    )


def _verify(
    read: Callable[[], tuple[bytes, bytes]],
    workflow_path: str,
    *,
    run_id: str | None,
    at: str | None,
    insecure: bool,
    pin: str | None,
    judge_fields: bool = False,
) -> SignedFileReport:
    # read only once the workflow and its trust are known to be usable: those errors come first
    loaded = load_workflow(workflow_path)
    workflow = loaded.workflow
    assert workflow is not None
    trust = workflow.approvals.trust
    if trust is None or not trust.allowed_signers:
        raise UsageError(f"{workflow_path} has no `approvals.trust.allowed-signers`")
    git = Git(loaded.workspace)
    if trust.ref and not pin:
        # each file from the same commit, however the ref moves while they are read
        files = TrustFiles.at_tip(git, trust.ref)
    else:
        files = TrustFiles(git, trust.ref, pin if trust.ref else None)
    # a run record names the commit: one the trust ref never named is anyone's trust
    if files.commit is not None and trust.ref and not reachable(git, files.commit, trust.ref):
        return SignedFileReport(
            refusal=f"the trust commit {files.commit[:12]} the record pins is not reachable "
            f"from {trust.ref}"
        )
    if not files.protected and not insecure:
        raise UsageError(
            "the workflow reads trust from the working tree; set "
            "`approvals.trust.ref` or pass --insecure-local-trust"
        )
    namespace = workflow.approvals.file.namespace if workflow.approvals.file else "runner-approval"
    raw, armored = read()
    try:
        signers, revoked = read_keys(trust, files)
        directory = parse_directory(files.read(trust.people), files.where(trust.people))
        when = parse_instant(at, "--at") if at else datetime.now(UTC)
        signed = verify_signed(
            raw, armored, signers=signers, revoked=revoked, namespace=namespace, at=when
        )
    except ApprovalError as exc:
        return SignedFileReport(refusal=exc.message)
    except RunnerError as exc:
        return SignedFileReport(refusal=str(exc))
    body = signed.body
    person = directory.by_principal(signed.principal)
    problems = []
    if person is None:
        problems.append(f"principal {signed.principal} is not in the people file")
    if run_id and body.run_id != run_id:
        problems.append(f"it is for run {body.run_id}, not {run_id}")
    try:
        check_window(body, when)
    except VerificationError as exc:
        problems.append(exc.message)
    step = next((s for s in workflow.steps if s.id == body.step_id), None)
    will_refuse = None
    if judge_fields and body.kind == "manual" and step is not None and step.manual is not None:
        # the rule the gate judges fields by, on the step as this workflow file has it
        will_refuse = check_fields(specs_of(step.manual.fields), body.fields, body.decision)
    return SignedFileReport(
        signed=signed,
        namespace=namespace,
        person=person,
        teams=tuple(directory.teams_of(person)) if person else (),
        sha256=body_digest(raw),
        problems=tuple(problems),
        will_refuse=will_refuse or "",
    )
