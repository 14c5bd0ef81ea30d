"""Checking a signed approval file, and re-verifying one a run record keeps, return a typed
report (``runner.approvals.verify``); ``runner approval verify`` and ``runner runs show`` only
print it. Real ssh-keygen signatures and a git trust ref (``helpers.approval_world``)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runner.approvals.document import parse_body
from runner.approvals.verify import SignedFileReport, reverify_evidence, verify_signed_file
from runner.cli.runs import verdict
from runner.errors import UsageError

if TYPE_CHECKING:
    from helpers.approval_world import Key, World

WORKFLOW = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers, revoked-keys: trust/revoked_keys}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
"""


def signed_evidence(world: World, key: Key, **changes: Any) -> tuple[bytes, dict[str, str]]:
    """A proceed by ``key`` for run r1, and the evidence a record keeps of it."""
    raw = world.body(world.request(), key, **changes).encode()
    evidence = {
        "file": f"approvals/r1/gate.{key.principal}.json",
        "body": raw.decode(),
        "signature": world.sign(raw, key).decode(),
    }
    return raw, evidence


@pytest.fixture
def workflow(world: World) -> str:
    return str(world.commit_workflow(WORKFLOW))


def test_a_recorded_approval_re_verifies_into_a_typed_report(world: World, workflow: str) -> None:
    raw, evidence = signed_evidence(world, world.keys.alice)
    report = reverify_evidence(evidence, workflow, at=None, insecure=False)
    assert report.valid
    assert (report.refusal, report.problems, report.namespace) == (None, (), "runner-approval")
    assert report.signed is not None
    assert (report.signed.principal, report.signed.body.decision) == (
        "alice@example.com",
        "proceed",
    )
    assert report.signed.fingerprint == world.keys.alice.fingerprint
    assert report.person is not None and report.person.username == "alice"
    assert report.teams == ("trading-desk",)
    assert report.sha256 == hashlib.sha256(raw).hexdigest()
    assert verdict(evidence, workflow, None, False, None) == (
        "signature re-verified as of the decision"
    )


def test_the_file_and_its_recorded_evidence_give_the_same_report(
    world: World, workflow: str, tmp_path: Path
) -> None:
    raw, evidence = signed_evidence(world, world.keys.bob)
    path = tmp_path / "gate.json"
    path.write_bytes(raw)
    path.with_name("gate.json.sig").write_text(evidence["signature"], encoding="utf-8")
    at = parse_body(raw).issued_at
    from_file = verify_signed_file(str(path), workflow, run_id="r1", at=at, insecure=False)
    assert from_file == reverify_evidence(evidence, workflow, at=at, insecure=False)
    assert from_file.valid


def test_a_tampered_body_is_a_refusal(world: World, workflow: str) -> None:
    _, evidence = signed_evidence(world, world.keys.alice, notes="Desk told")
    evidence["body"] = evidence["body"].replace("Desk told", "Desk sold")
    report = reverify_evidence(evidence, workflow, at=None, insecure=False)
    assert report == SignedFileReport(refusal="signature does not match")
    assert not report.valid
    assert verdict(evidence, workflow, None, False, None) == "NOT valid: signature does not match"


def test_a_signature_that_holds_but_does_not_count_lists_its_problems(
    world: World, workflow: str
) -> None:
    raw, evidence = signed_evidence(world, world.keys.alice)
    body = parse_body(raw)
    report = reverify_evidence(evidence, workflow, at=body.expires_at, insecure=False)
    assert report.refusal is None and report.signed is not None
    assert report.problems == (f"approval expired at {body.expires_at}",)
    assert not report.valid
    # as `runner runs show` always said it: the reason alone
    assert verdict(evidence, workflow, body.expires_at, False, None) == (
        f"approval expired at {body.expires_at}"
    )


def test_a_wrong_run_is_a_problem_of_the_file_check(world: World, workflow: str) -> None:
    raw, evidence = signed_evidence(world, world.keys.alice)
    path = Path(world.root / "gate.json")
    path.write_bytes(raw)
    path.with_name("gate.json.sig").write_text(evidence["signature"], encoding="utf-8")
    report = verify_signed_file(str(path), workflow, run_id="r2", at=None, insecure=False)
    assert report.problems == ("it is for run r1, not r2",)


def test_a_trust_commit_the_ref_never_named_is_refused(world: World, workflow: str) -> None:
    own = subprocess.run(
        ["git", "-C", str(world.repo), "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "mine"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _, evidence = signed_evidence(world, world.keys.alice)
    report = reverify_evidence(evidence, workflow, at=None, insecure=False, trust_commit=own)
    assert report == SignedFileReport(
        refusal=f"the trust commit {own[:12]} the record pins is not reachable from "
        "refs/remotes/origin/approvals-trust"
    )
    assert verdict(evidence, workflow, None, False, own) == f"NOT valid: {report.refusal}"


def test_a_workflow_without_allowed_signers_cannot_re_verify(world: World) -> None:
    workflow = str(
        world.commit_workflow(WORKFLOW.replace("allowed-signers: trust/allowed_signers, ", ""))
    )
    _, evidence = signed_evidence(world, world.keys.alice)
    with pytest.raises(UsageError) as caught:
        reverify_evidence(evidence, workflow, at=None, insecure=False)
    assert caught.value.message == f"{workflow} has no `approvals.trust.allowed-signers`"
    assert verdict(evidence, workflow, None, False, None) == (
        f"cannot re-verify: {workflow} has no `approvals.trust.allowed-signers`"
    )
