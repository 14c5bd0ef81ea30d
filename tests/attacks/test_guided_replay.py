"""A guided-failure decision decides one failed attempt (issue 21): a signed ``retry`` for attempt 1
replayed when attempt 2 fails is refused, so nobody can keep a failing step running (or skip a
later failure) with a decision made about an earlier one. A manual step's approval cannot answer
a failed step's question either, nor the other way round. Real git and ssh-keygen throughout.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from helpers.approval_world import World
from msgspec.structs import replace

from runner.approvals.document import new_body
from runner.approvals.request import GUIDED

# Every decision is pushed before the run starts, so the first poll sees it; a question that
# nobody answers waits out its 5 minutes on the fake clock, one poll (a real `git ls-remote`)
# per poll-seconds: 30 s, not 1 s, keeps that to ten polls instead of three hundred.
FAILING = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers, revoked-keys: trust/revoked_keys}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 30}
guided-failure:
  teams: [trading-desk]
  timeout-minutes: 5
steps:
  - id: migrate
    name: Migrate
    run: |
      echo x >> ../attempts
      exit 5
  - id: after
    name: After
    run: echo after
"""


def guided_request(world: World, attempt: int) -> object:
    return replace(
        world.request(),
        id=f"r1--gate@attempt-{attempt}",
        kind=GUIDED,
        attempt=attempt,
        choices=("retry", "skip", "fail"),
    )


def test_a_retry_signed_for_attempt_1_does_not_decide_attempt_2(world: World) -> None:
    first = guided_request(world, 1)
    body = replace(world.body(first, world.keys.alice), decision="retry", kind=GUIDED, attempt=1)  # type: ignore[arg-type]
    world.push_signed(body.encode(), world.keys.alice, name="gate.attempt-1.alice.json")
    _, verdict = world.judge(first)  # type: ignore[arg-type]
    assert verdict.state == "approved"
    assert verdict.deciding is not None and verdict.deciding.submission.result == "retry"
    _, verdict = world.judge(guided_request(world, 2))  # type: ignore[arg-type]
    assert verdict.state == "waiting"
    assert [r.reason for r in verdict.refused] == [
        "file: gate.attempt-1.alice.json: approval is for attempt 1 of step 'gate', not attempt 2"
    ]


def test_a_manual_approval_does_not_answer_a_failed_step_nor_the_reverse(world: World) -> None:
    manual = world.body(world.request(), world.keys.alice)
    world.push_signed(manual.encode(), world.keys.alice, name="gate.alice.json")
    _, verdict = world.judge(guided_request(world, 1))  # type: ignore[arg-type]
    assert verdict.state == "waiting"
    assert [r.reason for r in verdict.refused] == [
        "file: gate.alice.json: approval is a manual decision, but the step asks for a "
        "guided-failure one"
    ]
    guided = replace(
        manual, decision="skip", kind=GUIDED, attempt=1, approver=world.keys.bob.principal
    )
    world.push_signed(guided.encode(), world.keys.bob, name="gate.attempt-1.bob.json")
    _, verdict = world.judge(world.request())
    assert verdict.state == "approved"  # alice's manual approval; bob's skip does not count
    assert any(
        "gate.attempt-1.bob.json: approval is a guided-failure decision, but the step asks for "
        "a manual one" in r.reason
        for r in verdict.refused
    )


def test_a_replayed_retry_does_not_run_the_failing_step_a_third_time(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.commit_workflow(FAILING)
    request = {
        "run_id": "g1",
        "step_id": "migrate",
        "environment": "production",
        "digest": hashlib.sha256(FAILING.encode()).hexdigest(),
        "commit": world.head,
        "kind": GUIDED,
        "attempt": 1,
    }
    retry = new_body(
        request,
        "retry",
        world.keys.alice.principal,
        "try once more",
        {},
        datetime.now(UTC),
        timedelta(hours=1),
    )
    world.push_signed(
        retry.encode(), world.keys.alice, run_id="g1", name="migrate.attempt-1.alice.json"
    )
    done = world.run_here(monkeypatch, "--run-id", "g1")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    # attempt 1 failed and was retried by alice's decision; attempt 2 failed, and the same
    # decision, replayed, is refused: nobody decided, the timeout fails the run
    assert (world.repo.parent / "attempts").read_text().count("x") == 2
    assert (
        "refused file: migrate.attempt-1.alice.json: approval is for attempt 1 of step "
        "'migrate', not attempt 2"
    ) in output
    record = world.record("g1")
    migrate = next(s for s in record["steps"] if s["id"] == "migrate")
    first, second = migrate["guided"]["decisions"]
    assert (first["attempt"], first["choice"], first["source"]) == (1, "retry", "file")
    assert first["username"] == "alice"
    assert first["evidence"]["file"] == "approvals/g1/migrate.attempt-1.alice.json"
    assert (second["attempt"], second["state"], second["choice"]) == (2, "timed-out", "fail")
    assert record["status"] == "timed-out"


def test_a_skip_forged_into_an_unsealed_record_is_refused_in_ci(world: World) -> None:
    """Whoever carries the state folder between CI jobs writes a skip nobody decided into the
    record of a run waiting at a failed step: the resume refuses it (only a sealed record can
    show a decision), and nothing after the failed step runs."""
    from test_record_tampering import resume, tamper

    world.commit_workflow(FAILING.replace("echo after", "echo DEPLOYED"))
    done = world.run("--run-id", "fs1", "--detach-on-wait")
    assert done.returncode == 75, done.stdout + done.stderr

    def forge(record: dict[str, object]) -> None:
        steps = record["steps"]
        assert isinstance(steps, list)
        migrate = next(s for s in steps if s["id"] == "migrate")
        migrate.update(
            status="failure",
            outcome="failure",
            conclusion="success",
            guided={
                "decisions": [
                    {"attempt": 1, "state": "decided", "choice": "skip", "username": "alice"}
                ]
            },
        )

    tamper(world, "fs1", forge)
    again = resume(world, "fs1", env={"CI": "true"})
    output = again.stdout + again.stderr
    assert again.returncode == 5, output
    assert "DEPLOYED" not in output
    assert (
        "step `migrate` failed and is recorded as skipped under guided failure, which only a "
        "sealed record can show"
    ) in output


def test_a_retry_signed_for_the_attempt_after_the_limit_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice may retry once; she signs a retry for attempt 1 and, ahead of time, one for attempt
    2 too (each bound to its attempt, both valid signatures): the second is refused, since the
    limit took `retry` away from attempt 2's question, and the failing step runs only twice."""
    limited = FAILING.replace(
        "  timeout-minutes: 5\n", "  timeout-minutes: 5\n  choices: [{retry: {limit: 1}}, fail]\n"
    )
    world.commit_workflow(limited)
    for attempt in (1, 2):
        request = {
            "run_id": "gl",
            "step_id": "migrate",
            "environment": "production",
            "digest": hashlib.sha256(limited.encode()).hexdigest(),
            "commit": world.head,
            "kind": GUIDED,
            "attempt": attempt,
        }
        retry = new_body(
            request,
            "retry",
            world.keys.alice.principal,
            "again",
            {},
            datetime.now(UTC),
            timedelta(hours=1),
        )
        world.push_signed(
            retry.encode(),
            world.keys.alice,
            run_id="gl",
            name=f"migrate.attempt-{attempt}.alice.json",
        )
    done = world.run_here(monkeypatch, "--run-id", "gl")
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert (world.repo.parent / "attempts").read_text().count("x") == 2
    limit = "retry by alice@example.com via file: retry is not one of the choices here (fail)"
    assert f"refused {limit}" in output
    migrate = next(s for s in world.record("gl")["steps"] if s["id"] == "migrate")
    first, second = migrate["guided"]["decisions"]
    assert (first["attempt"], first["choice"]) == (1, "retry")
    assert (second["attempt"], second["state"], second["choice"]) == (2, "timed-out", "fail")
    assert sorted(r["reason"] for r in second["refused"]) == [
        "file: migrate.attempt-1.alice.json: approval is for attempt 1 of step 'migrate', not "
        "attempt 2",
        limit,
    ]
