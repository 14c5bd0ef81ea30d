"""Revocation under the trust anchor: the deployed workflow names which revocation list is
read, so deleting its ``revoked-keys:`` line turned revocation off, the anchor set or not
(attack pass). Anchored, the list beside the allowed signers on the anchored ref is read
whatever the workflow says. Real git, real ``ssh-keygen`` signatures, the CLI in this process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers.approval_world import TRUST_REF, World, clean_env
from helpers.cli import cli_in
from helpers.git_world import git

WORKFLOW = """\
name: Seed
environments: [production]
approvals:
  trust: {{ref: {ref}, people: trust/people.yml, allowed-signers: trust/allowed_signers{revoked}}}
  file: {{remote: origin, branch: approvals, path: approvals, poll-seconds: 1}}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
  - id: after
    name: After
    run: echo "DEPLOYED"
"""


ENV = clean_env(RUNNER_TRUST_REF=TRUST_REF)
ARGV = ("--state-dir", "S", "--detach-on-wait")


def detached(world: World, revoked: str) -> Path:
    """Run r1 of the workflow, naming ``revoked`` in its trust, detached at its gate."""
    assert world.monkeypatch is not None
    path = world.commit_workflow(WORKFLOW.format(ref=TRUST_REF, revoked=revoked))
    argv = ("run", "deploy.yml", "--env", "production", "--run-id", "r1", *ARGV)
    started = cli_in(world.monkeypatch, world.repo, ENV, *argv)
    assert started.returncode == 75, started.stdout + started.stderr
    return path


def resumed_on_daves_approval(world: World, path: Path) -> str:
    """Dave (in trading-desk, his key in trust/revoked_keys) approves r1; its resume's output."""
    assert world.monkeypatch is not None
    dave = world.keys.dave
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    request = world.request(run_id="r1", step_id="gate", digest=digest, commit=world.head)
    world.push_signed(world.body(request, dave).encode(), dave, name="gate.dave.json")
    done = cli_in(world.monkeypatch, world.repo, ENV, "resume", "r1", *ARGV)
    assert done.returncode == 75, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    "revoked", ["", ", revoked-keys: trust/revoked_keys"], ids=["dropped", "named"]
)
def test_a_revoked_key_is_refused_under_the_anchor_whatever_the_workflow_names(
    world: World, revoked: str
) -> None:
    output = resumed_on_daves_approval(world, detached(world, revoked))
    assert "DEPLOYED" not in output, output
    assert "is revoked" in output, output


def trust_change(world: World, *, revoked: str | None) -> None:
    """The trust maintainers remove the revocation list, or write it."""
    clone = world.root / "trust-admin"
    if not clone.exists():
        git(world.root, "clone", "-q", "-b", "approvals-trust", str(world.origin), str(clone))
    if revoked is None:
        git(clone, "rm", "-q", "trust/revoked_keys")
    else:
        (clone / "trust" / "revoked_keys").write_text(revoked)
        git(clone, "add", "trust")
    git(clone, "commit", "-qm", "trust change")
    git(clone, "push", "-q", "origin", "approvals-trust")
    git(world.repo, "fetch", "-q", "origin")


def test_a_revocation_list_the_anchored_ref_gets_while_a_run_waits_counts(world: World) -> None:
    """Found by a review: the anchored default list was read only when the pinned commit had
    one, so a list first created while a run waited (a stolen key) was ignored on resume. And
    an anchored ref with no list at all revokes nothing (the run goes on as before)."""
    trust_change(world, revoked=None)
    path = detached(world, "")
    trust_change(world, revoked=world.keys.revoked_keys())  # dave's key
    output = resumed_on_daves_approval(world, path)
    assert "DEPLOYED" not in output, output
    assert "is revoked" in output, output
