"""Policy and trust bypasses through what the deployer controls: the deployed commit.

With ``approvals.trust.ref`` a protected ref, trust files (people, allowed signers, revoked
keys) committed on the deployed branch are ignored, even at the very paths the trust ref uses,
and an approval by someone only they trust is refused. (A permissive *policy* in the deployed
commit is ``tests/policy/test_policy_e2e.py``'s; a trust ref naming the deployed commit itself
is ``tests/approvals/test_file_source.py``'s.)

A deployed commit is also code that runs before its manual step: a script step can move the
local trust ref. That is the last test here.
"""

from __future__ import annotations

import hashlib

import pytest
from helpers.approval_world import World

TRUST_REF = "refs/remotes/origin/approvals-trust"

GATED = """\
name: Seed
environments: [production]
approvals:
  trust: {{ref: {ref}, people: trust/people.yml, allowed-signers: trust/allowed_signers, \
revoked-keys: trust/revoked_keys}}
  file: {{remote: origin, branch: approvals, path: approvals, poll-seconds: 1}}
steps:
{before}  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
      timeout-minutes: 0.05
  - id: after
    name: After
    run: echo "approved by $WHO"
    env:
      WHO: "#{{Octopus.Action[Approve release].Output.Manual.ResponsibleUser.DisplayName}}"
"""

MALLORY_PEOPLE = """\
  - id: u-mallory
    username: mallory
    display-name: Mallory
    ssh-principals: [mallory@example.com]
"""


def permissive_trust(world: World) -> dict[str, str]:
    """Trust files that let mallory approve: her in the desk, her key allowed, nothing revoked."""
    people = world.PEOPLE_YML.replace("teams:\n", MALLORY_PEOPLE + "teams:\n").replace(
        "trading-desk: [alice, bob, dave]", "trading-desk: [alice, bob, dave, mallory]"
    )
    keys = world.keys
    return {
        "trust/people.yml": people,
        "trust/allowed_signers": keys.allowed_signers()
        + f'{keys.mallory.principal} namespaces="runner-approval" {keys.mallory.public}\n',
        "trust/revoked_keys": "",
    }


def deploy(world: World, before: str = "", extra: dict[str, str] | None = None) -> tuple[str, str]:
    path = world.commit_workflow(GATED.format(ref=TRUST_REF, before=before), extra)
    return hashlib.sha256(path.read_bytes()).hexdigest(), world.head


def push_mallorys_approval(world: World, run_id: str, digest: str, commit: str) -> None:
    mallory = world.keys.mallory
    request = world.request(run_id=run_id, digest=digest, commit=commit)
    world.push_signed(world.body(request, mallory).encode(), mallory, run_id=run_id)


def test_trust_files_on_the_deployed_branch_are_ignored(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest, commit = deploy(world, extra=permissive_trust(world))
    push_mallorys_approval(world, "b1", digest, commit)
    done = world.run_here(monkeypatch, "--run-id", "b1")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "approved by" not in output
    assert (
        "refused file: gate.mallory@example.com.json: principal 'mallory@example.com' is not in "
        "the allowed signers" in output
    )
    gate = world.record("b1")["steps"][0]
    assert gate["approval"]["decisions"] == []


MOVE_THE_TRUST_REF = """\
  - id: prepare
    name: Prepare
    run: |
      # the deployed commit carries permissive trust files; point the "protected" ref at it
      git update-ref refs/remotes/origin/approvals-trust HEAD
"""


def test_a_step_cannot_move_the_trust_ref_before_the_gate(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a child commit of HEAD, so that the moved ref is not the deployed commit itself
    child = MOVE_THE_TRUST_REF.replace(
        "git update-ref refs/remotes/origin/approvals-trust HEAD",
        'git update-ref refs/remotes/origin/approvals-trust "$(git commit-tree HEAD^{tree} '
        '-p HEAD -m trust)"',
    )
    digest, commit = deploy(world, before=child, extra=permissive_trust(world))
    push_mallorys_approval(world, "b2", digest, commit)
    done = world.run_here(monkeypatch, "--run-id", "b2")
    output = done.stdout + done.stderr
    assert "approved by" not in output, "mallory approved through a trust ref moved by a step"
    assert done.returncode == 4, output
