"""The ``file`` source when git misbehaves, and when the approver's clock is not the runner's.

* the remote is unreachable (a path that does not exist, a port nobody listens on): an error
  each poll, never a decision; a whole run waits and times out;
* the approvals branch is force-pushed: an approval rewritten away before the runner saw it
  does not count; one the runner already recorded stays in the record (with its body and
  signature as evidence), but the step still needs a new signed file to reach its quorum;
* clock skew: validity is judged on the runner's clock. (An approval dated 4 minutes in the
  future is accepted and one dated 10 minutes ahead refused: ``tests/approvals`` proves it on
  the real clock; here the runner's own clock is moved instead.)

The git world (origin, deploy repository, protected trust branch, approver's clone, real
ssh-keygen keys) is ``helpers.approval_world``'s.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from helpers.approval_world import World, git, utc_now

from runner.approvals.document import instant
from runner.approvals.quorum import judge
from runner.errors import ApprovalError
from runner.model import Approvals
from runner.model import FileSource as FileConfig

TRUST_REF = "refs/remotes/origin/approvals-trust"


def config(world: World, remote: str) -> Approvals:
    base = world.approvals_config()
    file = FileConfig(remote=remote, branch="approvals", path="approvals", poll_seconds=1)
    return Approvals(trust=base.trust, file=file)


# -- an unreachable remote ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "remote", ["/nonexistent/origin.git", "http://127.0.0.1:9/origin.git"], ids=["path", "port"]
)
def test_an_unreachable_remote_is_an_error_never_a_decision(world: World, remote: str) -> None:
    request = world.request()
    alice = world.keys.alice
    world.push_signed(world.body(request, alice).encode(), alice)  # on the real origin
    source = world.source(config(world, remote))
    source.register(request)  # trust comes from the local protected ref: still readable
    for _ in range(2):
        with pytest.raises(ApprovalError) as caught:
            source.poll(request)
        assert caught.value.message.startswith("git ls-remote failed: fatal: ")


GATED = """\
name: Seed
environments: [production]
approvals:
  trust: {{ref: {ref}, people: trust/people.yml, allowed-signers: trust/allowed_signers, \
revoked-keys: trust/revoked_keys}}
  file: {{remote: {remote}, branch: approvals, path: approvals, poll-seconds: 1}}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
      {require}
      timeout-minutes: {timeout}
  - id: after
    name: After
    run: echo "approved by $WHO"
    env:
      WHO: "#{{Octopus.Action[Approve release].Output.Manual.ResponsibleUser.DisplayName}}"
"""


def deploy(
    world: World, *, remote: str = "origin", timeout: float = 0.05, quorum: int | None = None
) -> tuple[str, str]:
    require = f"require: [{{team: trading-desk, count: {quorum}}}]" if quorum else ""
    text = GATED.format(ref=TRUST_REF, remote=remote, require=require, timeout=timeout)
    path = world.commit_workflow(text)
    return hashlib.sha256(path.read_bytes()).hexdigest(), world.head


def test_a_run_with_an_unreachable_remote_waits_and_times_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(world, remote="/nonexistent/origin.git")
    done = world.run_here(monkeypatch, "--run-id", "u1")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "approval source file did not answer: git ls-remote failed" in output
    assert "a failure is never a decision" in output
    assert "approved by" not in output
    gate = world.record("u1")["steps"][0]
    assert gate["approval"]["state"] == "timed-out"
    assert gate["approval"]["decisions"] == []


# -- a force-pushed approvals branch -----------------------------------------------------------


def rewrite_approvals(world: World) -> None:
    """Force-push ``approvals`` to a fresh commit with no approval in it (history rewritten)."""
    git(world.approver, "checkout", "-q", "--orphan", "rewritten")
    git(world.approver, "rm", "-rqf", "--ignore-unmatch", ".")
    git(world.approver, "commit", "-q", "--allow-empty", "-m", "rewritten")
    git(world.approver, "push", "-q", "--force", "origin", "rewritten:approvals")
    git(world.approver, "branch", "-q", "-D", "approvals")
    git(world.approver, "checkout", "-q", "-b", "approvals")


def test_an_approval_rewritten_away_before_it_was_seen_does_not_count(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    world.push_signed(world.body(request, alice).encode(), alice)
    rewrite_approvals(world)
    submissions, verdict = world.judge(request)
    assert submissions == []
    assert verdict.state == "waiting"


def gate(world: World, run_id: str) -> dict[str, Any]:
    step: dict[str, Any] = world.record(run_id)["steps"][0]
    return step


def test_a_recorded_approval_survives_a_force_push_but_the_quorum_still_needs_a_new_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = world.keys.alice, world.keys.bob
    digest, commit = deploy(world, timeout=30, quorum=2)
    request = world.request(run_id="f1", digest=digest, commit=commit)
    alice_raw = world.body(request, alice).encode()
    world.push_signed(alice_raw, alice, run_id="f1")

    # the runner sees alice's approval, records it, and detaches: the quorum needs two
    first = world.run_here(monkeypatch, "--run-id", "f1", "--detach-on-wait")
    assert first.returncode == 75, first.stdout + first.stderr
    recorded = gate(world, "f1")["approval"]["submissions"]
    assert [(s["who"], s["source"]) for s in recorded] == [("alice@example.com", "file")]
    assert recorded[0]["evidence"]["body"] == alice_raw.decode()

    # the approvals branch is rewritten: alice's file is gone from git
    rewrite_approvals(world)
    second = world.here(monkeypatch, "resume", "f1", "--detach-on-wait", "--state-dir", "S")
    assert second.returncode == 75, second.stdout + second.stderr
    kept = gate(world, "f1")["approval"]["submissions"]
    assert [s["key"] for s in kept] == [s["key"] for s in recorded], "a recorded approval was lost"
    assert gate(world, "f1")["status"] == "waiting"

    # a new signed file (bob's) completes the quorum, with alice's recorded approval
    world.push_signed(world.body(request, bob).encode(), bob, run_id="f1")
    third = world.here(monkeypatch, "resume", "f1", "--state-dir", "S")
    assert third.returncode == 0, third.stdout + third.stderr
    decisions = gate(world, "f1")["approval"]["decisions"]
    assert sorted(d["username"] for d in decisions) == ["alice", "bob"]
    alice_decision = next(d for d in decisions if d["username"] == "alice")
    assert alice_decision["evidence"]["body"] == alice_raw.decode()
    assert alice_decision["evidence"]["signature"].startswith("-----BEGIN SSH SIGNATURE-----")


def test_a_force_push_alone_never_completes_a_quorum(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same approval pushed again after a rewrite (ssh-keygen's Ed25519 signature of the
    same body is the same bytes) is the same submission: it counts once."""
    alice = world.keys.alice
    digest, commit = deploy(world, timeout=30, quorum=2)
    request = world.request(run_id="f2", digest=digest, commit=commit)
    raw = world.body(request, alice).encode()
    world.push_signed(raw, alice, run_id="f2")
    first = world.run_here(monkeypatch, "--run-id", "f2", "--detach-on-wait")
    assert first.returncode == 75, first.stdout + first.stderr
    rewrite_approvals(world)
    # alice signs the same body again (a new signature) and pushes it under another name
    world.push_signed(raw, alice, run_id="f2", name="gate.alice-again.json")
    again = world.here(monkeypatch, "resume", "f2", "--detach-on-wait", "--state-dir", "S")
    assert again.returncode == 75, again.stdout + again.stderr
    approval = gate(world, "f2")["approval"]
    assert approval["state"] == "waiting"
    assert {s["who"] for s in approval["submissions"]} == {"alice@example.com"}
    assert gate(world, "f2")["status"] == "waiting"


# -- clock skew: the runner's clock decides ----------------------------------------------------


@pytest.mark.parametrize(
    ("runner_offset", "expected"),
    [
        (timedelta(minutes=0), "approved"),
        (timedelta(minutes=-4), "approved"),  # the approver's clock 4 min ahead: tolerated
        (timedelta(minutes=-10), "issued in the future"),  # 10 min ahead: refused
        (timedelta(minutes=59), "approved"),
        (timedelta(minutes=61), "expired"),  # valid on the approver's clock, not the runner's
    ],
    ids=["same-clock", "approver-4-min-ahead", "approver-10-min-ahead", "59-min-on", "61-min-on"],
)
def test_validity_is_judged_on_the_runners_clock(
    world: World, runner_offset: timedelta, expected: str
) -> None:
    """An approval issued now by the approver's clock, valid for an hour; the runner's clock
    is ``runner_offset`` away."""
    alice = world.keys.alice
    approver_now = utc_now()
    runner_now = approver_now + runner_offset
    request = world.request(
        run_started=instant(min(approver_now, runner_now) - timedelta(minutes=1))
    )
    body = world.body(
        request,
        alice,
        issued_at=instant(approver_now),
        expires_at=instant(approver_now + timedelta(hours=1)),
    )
    world.push_signed(body.encode(), alice)
    source = world.source(now=lambda: runner_now)
    source.register(request)
    submissions = source.poll(request)
    verdict = judge(request, submissions, world.directory(), None)
    if expected == "approved":
        assert verdict.state == "approved", [r.reason for r in verdict.refused]
    else:
        assert verdict.state == "waiting"
        (refusal,) = verdict.refused
        assert expected in refusal.reason


def test_an_approval_that_expires_while_waiting_stops_counting(world: World) -> None:
    """The latest poll wins: an approval valid at one poll and expired at the next (runner's
    clock) is refused from then on."""
    alice = world.keys.alice
    now = utc_now()
    clock = {"now": now}
    request = world.request()
    body = world.body(
        request, alice, issued_at=instant(now), expires_at=instant(now + timedelta(minutes=5))
    )
    world.push_signed(body.encode(), alice)
    source = world.source(now=lambda: clock["now"])
    source.register(request)
    assert judge(request, source.poll(request), world.directory(), None).state == "approved"
    clock["now"] = now + timedelta(minutes=6)
    later = judge(request, source.poll(request), world.directory(), None)
    assert later.state == "waiting"
    assert "expired" in later.refused[0].reason
