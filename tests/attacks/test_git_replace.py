"""What git itself lets an attacker substitute under the runner's reads, with real git.

The trust ref is pinned to a commit id when the run starts, and the approvals branch is read
through its history: both assume that a commit id names its contents and its parents. git has
three ways to make it name something else, each writable by whoever runs a step of the deployed
commit (or pushes a ref that a checkout fetches):

* ``git replace PINNED EVIL`` (``refs/replace/<id>``): ``git show PINNED:trust/people.yml`` then
  shows EVIL's files, the deployer's own people and keys;
* ``.git/info/grafts``: a commit listed there has no parents, so the approvals branch's history
  ends there and an abort pushed before it is never seen;
* ``.git/hooks`` (or ``core.hooksPath``): the runner's own ``git fetch`` of the approvals branch
  runs the ``reference-transaction`` hook, with the runner's environment.

``runner.git`` reads with ``GIT_NO_REPLACE_OBJECTS=1``, no graft file and no hooks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from helpers.approval_world import World, git

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


def push_signed_by(
    world: World, who: str, run_id: str, digest: str, commit: str, **changes: Any
) -> None:
    key = getattr(world.keys, who)
    request = world.request(run_id=run_id, digest=digest, commit=commit)
    world.push_signed(world.body(request, key, **changes).encode(), key, run_id=run_id)


def refused_mallory(world: World, run_id: str) -> None:
    # in process on a fake clock: the gate's timeout passes at once (git and the steps are real)
    assert world.monkeypatch is not None
    done = world.run_here(world.monkeypatch, "--run-id", run_id)
    output = done.stdout + done.stderr
    assert "approved by" not in output, "mallory approved through substituted trust"
    assert done.returncode == 4, output
    assert "principal 'mallory@example.com' is not in the allowed signers" in output
    (gate,) = [s for s in world.record(run_id)["steps"] if s["id"] == "gate"]
    assert gate["approval"]["decisions"] == []


# -- replace refs ------------------------------------------------------------------------------

REPLACE_THE_PINNED_TRUST = """\
  - id: prepare
    name: Prepare
    run: |
      # the deployed commit carries permissive trust files: make the pinned trust commit show them
      git replace "$(git rev-parse refs/remotes/origin/approvals-trust)" \\
        "$(git commit-tree HEAD^{tree} -m trust)"
      git show refs/remotes/origin/approvals-trust:trust/allowed_signers | grep -c mallory
"""


def test_a_step_cannot_replace_the_pinned_trust_commit(world: World) -> None:
    digest, commit = deploy(world, REPLACE_THE_PINNED_TRUST, permissive_trust(world))
    push_signed_by(world, "mallory", "g1", digest, commit)
    refused_mallory(world, "g1")
    # the step did substitute the commit for plain git: the runner's reads ignored it
    assert "mallory" in git(world.repo, "show", f"{TRUST_REF}:trust/allowed_signers")


def test_a_replace_ref_fetched_with_the_repository_does_not_substitute_trust(
    world: World,
) -> None:
    """A pusher's ``refs/replace/<trust commit>`` on the remote, fetched along with everything
    (a mirror, or a checkout fetching ``refs/*``) before the run starts."""
    digest, commit = deploy(world, extra=permissive_trust(world))
    trust = git(world.repo, "rev-parse", TRUST_REF)
    evil = git(world.repo, "commit-tree", "HEAD^{tree}", "-m", "trust")
    git(world.repo, "push", "-q", "origin", f"{evil}:refs/replace/{trust}")
    git(world.repo, "update-ref", "-d", f"refs/replace/{trust}")
    git(world.repo, "fetch", "-q", "origin", "+refs/replace/*:refs/replace/*")
    assert git(world.repo, "rev-parse", f"refs/replace/{trust}") == evil
    push_signed_by(world, "mallory", "g2", digest, commit)
    refused_mallory(world, "g2")


OVERWRITE_THE_PINNED_TRUST = """\
  - id: prepare
    name: Prepare
    run: |
      # no replace ref: overwrite the pinned trust commit's object file with another commit's
      trust="$(git rev-parse refs/remotes/origin/approvals-trust)"
      evil="$(git commit-tree HEAD^{tree} -m trust)"
      objects="$(git rev-parse --git-dir)/objects"
      chmod u+w "$objects/${trust:0:2}/${trust:2}"
      cp "$objects/${evil:0:2}/${evil:2}" "$objects/${trust:0:2}/${trust:2}"
      git show refs/remotes/origin/approvals-trust:trust/allowed_signers | grep -c mallory
"""


def test_a_step_cannot_overwrite_the_pinned_trust_commits_object(world: World) -> None:
    """git does not check that an object hashes to its id when it reads it: the runner does,
    for every object from the pinned commit down to each trust file."""
    digest, commit = deploy(world, OVERWRITE_THE_PINNED_TRUST, permissive_trust(world))
    push_signed_by(world, "mallory", "g5", digest, commit)
    done = world.run("--run-id", "g5")
    output = done.stdout + done.stderr
    assert "approved by" not in output, "mallory approved through an overwritten trust commit"
    assert done.returncode != 0, output
    assert "does not hash to its id" in output, output
    assert "mallory" in git(world.repo, "show", f"{TRUST_REF}:trust/allowed_signers")


# -- grafts ------------------------------------------------------------------------------------

GRAFT_THE_APPROVALS_TIP = """\
  - id: prepare
    name: Prepare
    run: |
      # cut the approvals branch's history at its tip: the abort before it is out of sight
      git fetch -q origin approvals
      git rev-parse FETCH_HEAD > "$(git rev-parse --git-dir)/info/grafts"
"""


def test_a_graft_cannot_hide_an_abort_in_the_approvals_history(world: World) -> None:
    """Bob aborts; the deployer (who can push to the approvals branch) deletes the abort with an
    ordinary commit, alice approves, and a step grafts the branch's tip: plain git's history of
    the branch is then that one commit, with alice's approval and no abort."""
    digest, commit = deploy(world, GRAFT_THE_APPROVALS_TIP)
    push_signed_by(world, "bob", "g3", digest, commit, decision="abort", notes="not today")
    folder = "approvals/g3"
    abort = f"{folder}/gate.{world.keys.bob.principal}.json"
    git(world.approver, "rm", "-q", abort, abort + ".sig")
    git(world.approver, "commit", "-qm", "tidy up")
    push_signed_by(world, "alice", "g3", digest, commit)
    done = world.run("--run-id", "g3")
    output = done.stdout + done.stderr
    assert "approved by" not in output, "an abort hidden by a graft let the run proceed"
    assert done.returncode == 3, output
    grafts = world.repo / ".git" / "info" / "grafts"
    assert grafts.read_text().strip() == git(world.approver, "rev-parse", "HEAD")


# -- hooks -------------------------------------------------------------------------------------


def write_hook(world: World, marker: Path) -> str:
    return f"""\
  - id: prepare
    name: Prepare
    run: |
      # the runner's own fetch of the approvals branch moves a ref: this hook would run in it
      hooks="$(git rev-parse --git-dir)/hooks"
      printf '#!/bin/sh\\nenv >> {marker}\\n' > "$hooks/reference-transaction"
      chmod +x "$hooks/reference-transaction"
"""


def test_a_hook_a_step_wrote_does_not_run_in_the_runners_fetch(
    world: World, tmp_path: Path
) -> None:
    marker = tmp_path / "hook-ran"
    digest, commit = deploy(world, write_hook(world, marker))
    push_signed_by(world, "alice", "g4", digest, commit)
    done = world.run("--run-id", "g4")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "approved by Alice" in output
    assert not marker.exists(), "the runner's git fetch ran a hook a step wrote"
    # the hook is in place and runs for plain git: the test would see it run
    git(world.repo, "update-ref", "refs/heads/probe", "HEAD")
    assert marker.exists()
