"""A failed step recorded as skipped under guided failure is a decision, and a resume verifies it
again from its evidence, as it does a passed gate's (issues 17 and 21).

A skip lets a deployment go on past a failure, so the record saying "alice skipped it" proves
nothing by itself: on ``runner resume`` the signed file it keeps is verified again (against the
trust files of the pinned commit and the keys revoked at the trust ref's tip), bound to this run,
step and failed attempt, and judged by the workflow's rules; an approval-server decision is the
server's own row, fetched again. Each test is the attacker: a key revoked after it signed a skip,
a skip with no evidence, evidence taken from another run or another attempt, a retry relabelled
as a skip, a skip on timeout the workflow does not allow. Real git and ssh-keygen throughout.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.approval_world import World, clean_env, git
from helpers.cli import cli_in

from runner.approvals.document import new_body
from runner.approvals.request import GUIDED

KEY = "5f1c" * 16

#: migrate fails every time; a gate after it, so that a run detaches once past the skip
WORKFLOW = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers, revoked-keys: trust/revoked_keys}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
guided-failure:
  teams: [trading-desk]
steps:
  - id: migrate
    name: Migrate
    run: |
      echo x >> ../attempts
      exit 5
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
  - id: after
    name: After
    run: echo "DEPLOYED by=#{Octopus.Action[Migrate].Output.Guided.DecidedBy}"
"""

Record = dict[str, Any]


def sign_decision(
    world: World, key: Any, run_id: str, choice: str, attempt: int = 1, step_id: str = "migrate"
) -> None:
    """``key``'s signed ``choice`` about ``attempt`` of the failed step, pushed."""
    request = {
        "run_id": run_id,
        "step_id": step_id,
        "environment": "production",
        "digest": hashlib.sha256(WORKFLOW.encode()).hexdigest(),
        "commit": world.head,
        "kind": GUIDED,
        "attempt": attempt,
    }
    body = new_body(
        request, choice, key.principal, f"{choice}: seen it", {}, datetime.now(UTC), timedelta(1)
    )
    name = f"{step_id}.attempt-{attempt}.{key.principal}.json"
    world.push_signed(body.encode(), key, run_id=run_id, name=name)


def approve_gate(world: World, run_id: str, key: Any) -> None:
    request = world.request(
        run_id=run_id,
        step_id="gate",
        digest=hashlib.sha256(WORKFLOW.encode()).hexdigest(),
        commit=world.head,
    )
    raw = world.body(request, key).encode()
    world.push_signed(raw, key, run_id=run_id, name=f"gate.{key.principal}.json")


def run(world: World, run_id: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert world.monkeypatch is not None
    argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S", "--run-id", run_id)
    return world.here(world.monkeypatch, *argv, "--detach-on-wait", env=env)


def resume(world: World, run_id: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert world.monkeypatch is not None
    argv = ("resume", run_id, "--state-dir", "S", "--detach-on-wait")
    return cli_in(world.monkeypatch, world.repo, clean_env(**env), *argv)


def record_path(world: World, run_id: str) -> Path:
    return world.repo / "S" / "runs" / run_id / "record.json"


def tamper(world: World, run_id: str, change: Any) -> None:
    path = record_path(world, run_id)
    record = json.loads(path.read_text(encoding="utf-8"))
    change(record)
    path.write_text(json.dumps(record), encoding="utf-8")


def step(record: Record, step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in record["steps"] if s["id"] == step_id)
    return found


def refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode == 5, output
    for word in words:
        assert word in output, output


def skipped_then_waiting(world: World, run_id: str, **env: str) -> Record:
    """A run whose failed step alice skipped with a signed file, detached at the gate after."""
    world.commit_workflow(WORKFLOW)
    sign_decision(world, world.keys.alice, run_id, "skip")
    done = run(world, run_id, **env)
    assert done.returncode == 75, done.stdout + done.stderr
    record = json.loads(record_path(world, run_id).read_text(encoding="utf-8"))
    migrate = step(record, "migrate")
    (decision,) = migrate["guided"]["decisions"]
    assert (decision["choice"], decision["username"], decision["source"]) == (
        "skip",
        "alice",
        "file",
    )
    assert step(record, "gate")["status"] == "waiting"
    return record


def revoke(world: World, key: Any) -> None:
    """The security team revokes ``key`` on the protected trust branch (a new commit at its
    tip; the run's pinned trust commit is the one before)."""
    clone = world.root / "trust-admin"
    git(world.root, "clone", "-q", "-b", "approvals-trust", str(world.origin), str(clone))
    revoked = clone / "trust" / "revoked_keys"
    revoked.write_text(revoked.read_text() + f"{key.public} {key.name}\n", encoding="utf-8")
    git(clone, "commit", "-qam", f"revoke {key.name}")
    git(clone, "push", "-q", "origin", "approvals-trust")
    git(world.repo, "fetch", "-q", "origin")


def test_an_honest_skip_is_verified_again_and_the_run_goes_on(world: World) -> None:
    skipped_then_waiting(world, "gk", RUNNER_RECORD_KEY=KEY)
    approve_gate(world, "gk", world.keys.bob)
    done = resume(world, "gk", RUNNER_RECORD_KEY=KEY, CI="true")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "step `migrate`: its skip re-verified from its evidence" in output
    assert "DEPLOYED by=alice" in output


def test_a_skip_signed_with_a_key_revoked_since_does_not_carry_a_sealed_resume(
    world: World,
) -> None:
    """Alice's key was stolen and a skip signed with it; the runner took it (the key was still
    trusted), went on and detached at the gate. The key is revoked before the next job: the
    sealed record's skip no longer lets the deployment past the failure, as a gate passed by a
    revoked key no longer passes it."""
    skipped_then_waiting(world, "gr", RUNNER_RECORD_KEY=KEY)
    revoke(world, world.keys.alice)
    approve_gate(world, "gr", world.keys.bob)
    refused(
        resume(world, "gr", RUNNER_RECORD_KEY=KEY, CI="true"),
        "step `migrate`: skip by alice via file does not verify again",
        "revoked",
    )


def test_a_gate_signed_with_a_key_revoked_while_the_run_waited_is_refused_on_resume(
    world: World,
) -> None:
    """Found by an attack pass: a key revoked while a run waited (the documented procedure:
    its line added to `revoked_keys` on the trust branch) still approved the waiting gate when
    the run was resumed: the file source read the revocations of the commit pinned at the
    run's start only, while `runner approval verify` said "NOT valid: ... revoked". The docs:
    runs resumed after the change refuse signatures by that key."""
    skipped_then_waiting(world, "gv", RUNNER_RECORD_KEY=KEY)
    revoke(world, world.keys.bob)
    approve_gate(world, "gv", world.keys.bob)
    done = resume(world, "gv", RUNNER_RECORD_KEY=KEY, CI="true")
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode == 75, output
    assert "revoked" in output, output
    record = json.loads(record_path(world, "gv").read_text(encoding="utf-8"))
    assert step(record, "gate")["status"] == "waiting"


def unlist(world: World, key: Any) -> None:
    """The security team removes ``key``'s line from ``allowed_signers`` on the trust branch
    without revoking it (a person who left)."""
    clone = world.root / "trust-admin"
    git(world.root, "clone", "-q", "-b", "approvals-trust", str(world.origin), str(clone))
    signers = clone / "trust" / "allowed_signers"
    kept = [line for line in signers.read_text().splitlines() if key.public not in line]
    signers.write_text("\n".join(kept) + "\n", encoding="utf-8")
    git(clone, "commit", "-qam", f"remove {key.name}")
    git(clone, "push", "-q", "origin", "approvals-trust")
    git(world.repo, "fetch", "-q", "origin")


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "unsealed"])
def test_a_gate_signed_with_a_key_removed_while_the_run_waited_is_refused_on_resume(
    world: World, sealed: bool
) -> None:
    """Found by an attack pass: a key taken out of `allowed_signers` without being revoked
    still approved a resumed run: its keys were read at the commit pinned when it started
    (and an unsealed record can name any older commit of the trust ref). A key the ref's tip
    no longer lists is refused as a revoked one is."""
    env = {"RUNNER_RECORD_KEY": KEY} if sealed else {}
    skipped_then_waiting(world, "gu", **env)
    unlist(world, world.keys.bob)
    approve_gate(world, "gu", world.keys.bob)
    done = resume(world, "gu", **env)
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode in (5, 75), output
    assert "revoked" in output, output


def test_a_skip_without_evidence_is_refused(world: World) -> None:
    skipped_then_waiting(world, "gn")

    def forge(record: Record) -> None:
        decision = step(record, "migrate")["guided"]["decisions"][0]
        decision["evidence"] = {}
        decision["submissions"] = []

    tamper(world, "gn", forge)
    approve_gate(world, "gn", world.keys.bob)
    refused(resume(world, "gn"), "step `migrate`: skip by alice via file does not verify again")


def test_a_skip_taken_from_another_run_is_refused(world: World) -> None:
    """A skip alice signed for run gx1 copied into run gx2's record, where nobody decided."""
    skipped_then_waiting(world, "gx1")
    donor = step(json.loads(record_path(world, "gx1").read_text()), "migrate")["guided"]
    done = run(world, "gx2")
    assert done.returncode == 75, done.stdout + done.stderr

    def forge(record: Record) -> None:
        migrate = step(record, "migrate")
        assert migrate["status"] == "waiting"
        migrate.update(status="failure", outcome="failure", conclusion="success", guided=donor)

    tamper(world, "gx2", forge)
    approve_gate(world, "gx2", world.keys.bob)
    refused(resume(world, "gx2"), "step `migrate`", "approval is for run 'gx1', not 'gx2'")


def test_a_retry_relabelled_as_a_skip_is_refused(world: World) -> None:
    """Alice signed a retry; the record says she skipped (same file, same signature)."""
    world.commit_workflow(WORKFLOW)
    sign_decision(world, world.keys.alice, "gt", "retry")
    done = run(world, "gt")
    # attempt 1 retried by alice's file; attempt 2 fails and waits: the run detaches
    assert done.returncode == 75, done.stdout + done.stderr

    def forge(record: Record) -> None:
        migrate = step(record, "migrate")
        retry = migrate["guided"]["decisions"][0]
        assert retry["choice"] == "retry"
        retry["choice"] = "skip"
        migrate.update(
            status="failure", outcome="failure", conclusion="success", guided={"decisions": [retry]}
        )

    tamper(world, "gt", forge)
    approve_gate(world, "gt", world.keys.bob)
    refused(resume(world, "gt"), "step `migrate`: skip by alice via file does not verify again")


def test_a_skip_of_an_earlier_attempt_does_not_skip_a_later_one(world: World) -> None:
    """Alice skipped attempt 1 of run ga; the record claims a retry of attempt 1 and her skip
    for attempt 2 (which nobody decided)."""
    record = skipped_then_waiting(world, "ga")
    skip = step(record, "migrate")["guided"]["decisions"][0]

    def forge(record: Record) -> None:
        retry = {**skip, "choice": "retry", "evidence": {}, "submissions": []}
        later = {**skip, "attempt": 2, "interruption": "ga--migrate@attempt-2"}
        step(record, "migrate")["guided"] = {"decisions": [retry, later]}

    tamper(world, "ga", forge)
    approve_gate(world, "ga", world.keys.bob)
    refused(resume(world, "ga"), "step `migrate`", "not attempt 2")


def test_a_skip_on_timeout_the_workflow_does_not_allow_is_refused(world: World) -> None:
    skipped_then_waiting(world, "go")

    def forge(record: Record) -> None:
        decision = step(record, "migrate")["guided"]["decisions"][0]
        decision.update(state="timed-out", evidence={}, submissions=[], username=None)

    tamper(world, "go", forge)
    approve_gate(world, "go", world.keys.bob)
    refused(
        resume(world, "go"),
        "its record says step `migrate` was skipped on timeout, but the workflow fails it",
    )


def test_a_skip_relabelled_as_typed_at_the_prompt_is_refused_without_a_terminal(
    world: World,
) -> None:
    """A prompt decision leaves nothing to verify; relabelling a skip (here, one with no
    evidence) as typed at a terminal does not spare it verification where nobody can be asked."""
    skipped_then_waiting(world, "gp")

    def forge(record: Record) -> None:
        decision = step(record, "migrate")["guided"]["decisions"][0]
        decision.update(source="prompt", evidence={}, submissions=[])

    tamper(world, "gp", forge)
    approve_gate(world, "gp", world.keys.bob)
    refused(
        resume(world, "gp"),
        "step `migrate` failed and was skipped at a terminal prompt (skip by alice via prompt), "
        "which leaves no evidence a resume can verify without a terminal",
    )


def test_a_decision_of_another_shape_is_refused_not_read_as_no_decision(world: World) -> None:
    """The skip check looks for the choice ``skip``: a record that spells it ``SKIP`` (and drops
    its evidence) must not pass as a failure nobody skipped, which the step's recorded
    conclusion would then carry past. A guided record of the wrong shape is refused whole."""
    skipped_then_waiting(world, "gs")

    def forge(record: Record) -> None:
        decision = step(record, "migrate")["guided"]["decisions"][0]
        decision.update(choice="SKIP", evidence={}, submissions=[])

    tamper(world, "gs", forge)
    approve_gate(world, "gs", world.keys.bob)
    refused(
        resume(world, "gs"),
        "the `guided` of its record's step `migrate` has a decision with an unknown choice 'SKIP'",
    )
    assert "Traceback" not in resume(world, "gs").stderr


# -- a question still open: what the record says was already submitted ------------------------


def waiting_question(world: World, run_id: str, **env: str) -> Record:
    """A run detached at migrate's open question (nobody has decided yet)."""
    world.commit_workflow(WORKFLOW)
    done = run(world, run_id, **env)
    assert done.returncode == 75, done.stdout + done.stderr
    record = json.loads(record_path(world, run_id).read_text(encoding="utf-8"))
    migrate = step(record, "migrate")
    assert migrate["status"] == "waiting" and migrate["guided"]["waiting"]
    return record


def forged_skip(world: World, run_id: str) -> dict[str, Any]:
    """A submission as the record keeps one: alice's signed skip, as the attacker writes it."""
    return {
        "source": "file",
        "result": "skip",
        "who": world.keys.alice.principal,
        "who_kind": "principal",
        "notes": "ok",
        "fields": {},
        "submitted_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "evidence": {"file": f"approvals/{run_id}/migrate.attempt-1.alice.json"},
        "key": f"file:{run_id}:forged",
        "problem": None,
    }


def test_a_submission_forged_into_an_open_question_does_not_skip_the_failure(
    world: World,
) -> None:
    """Nobody answered migrate's question; the record now says alice's signed skip was seen
    before the detach. A waiting gate keeps only the recorded signed files that verify again;
    so must a waiting question: this one has no signature, and decides nothing."""
    waiting_question(world, "gw")

    def forge(record: Record) -> None:
        step(record, "migrate")["guided"]["waiting"]["submissions"] = [forged_skip(world, "gw")]

    tamper(world, "gw", forge)
    approve_gate(world, "gw", world.keys.bob)
    done = resume(world, "gw")
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert done.returncode == 75, output  # still waiting for a decision about migrate
    after = step(json.loads(record_path(world, "gw").read_text()), "migrate")
    assert after["status"] == "waiting" and not after["guided"].get("decisions")


def test_a_signed_skip_from_another_run_in_an_open_question_decides_nothing(
    world: World,
) -> None:
    """The submission is a real one, alice's skip of run gd1, copied into gd2's open question."""
    skipped_then_waiting(world, "gd1")
    donor = step(json.loads(record_path(world, "gd1").read_text()), "migrate")["guided"]
    (seen,) = [s for s in donor["decisions"][0]["submissions"] if s["result"] == "skip"]
    done = run(world, "gd2")
    assert done.returncode == 75, done.stdout + done.stderr

    def forge(record: Record) -> None:
        step(record, "migrate")["guided"]["waiting"]["submissions"] = [seen]

    tamper(world, "gd2", forge)
    done = resume(world, "gd2")
    output = done.stdout + done.stderr
    assert "skip by" not in output, output
    assert done.returncode == 75, output
    after = step(json.loads(record_path(world, "gd2").read_text()), "migrate")
    assert after["status"] == "waiting" and not after["guided"].get("decisions")


def test_a_forged_deadline_does_not_skip_on_timeout_in_ci(world: World) -> None:
    """``on-timeout: skip``: the question's deadline is known only from the record. Unsealed in
    CI, it could be moved to the past (so the failure is skipped at once on resume), as a gate's
    ``on-timeout: proceed`` could: refused the same way."""
    world.commit_workflow(
        WORKFLOW.replace(
            "guided-failure:\n  teams: [trading-desk]\n",
            "guided-failure:\n  teams: [trading-desk]\n  timeout-minutes: 60\n  on-timeout: skip\n",
        )
    )
    done = run(world, "gt2")
    assert done.returncode == 75, done.stdout + done.stderr

    def forge(record: Record) -> None:
        question = step(record, "migrate")["guided"]["waiting"]["interruption"]
        question["deadline"] = "2000-01-01T00:00:00.000Z"

    tamper(world, "gt2", forge)
    refused(resume(world, "gt2", CI="true"), "step `migrate`", "only from the record")


def test_who_started_the_run_is_not_taken_from_an_unsealed_record_in_ci(world: World) -> None:
    """Guided failure with ``prevent-self-approval``: the starter is known only from the record,
    which an unsealed one could change to let alice skip her own run's failure; refused in CI
    as for a gate that prevents self-approval."""
    world.commit_workflow(
        WORKFLOW.replace(
            "guided-failure:\n  teams: [trading-desk]\n",
            "guided-failure:\n  teams: [trading-desk]\n  prevent-self-approval: true\n",
        )
    )
    done = run(world, "gs")
    assert done.returncode == 75, done.stdout + done.stderr
    refused(resume(world, "gs", CI="true"), "step `migrate`", "prevents self-approval")


def test_a_guided_field_of_the_wrong_shape_is_refused_not_a_crash(world: World) -> None:
    """The record is JSON anyone with the state folder writes: a step's ``guided`` that is not
    the runner's shape is refused naming the step (exit 5), as any other field of the wrong
    type, and ``runs show`` says the same without a traceback."""
    waiting_question(world, "gz")
    original = record_path(world, "gz").read_text(encoding="utf-8")
    shapes: list[Any] = [
        "x",
        ["decisions"],
        {"decisions": "x"},
        {"decisions": [1]},
        {"decisions": [{"attempt": 1, "failure": "x", "refused": "x"}]},
        {"decisions": [], "waiting": "x"},
        {"decisions": [], "waiting": {"interruption": "x"}},
        {"decisions": [], "waiting": {"interruption": {}, "submissions": "x"}},
        {"decisions": [], "waiting": {"interruption": {"failure": "x"}, "refused": [1]}},
    ]
    assert world.monkeypatch is not None
    for shape in shapes:
        record_path(world, "gz").write_text(original, encoding="utf-8")

        def forge(record: Record, shape: Any = shape) -> None:
            step(record, "migrate")["guided"] = shape

        tamper(world, "gz", forge)
        done = resume(world, "gz")
        output = done.stdout + done.stderr
        assert done.returncode == 5, (shape, output)
        assert "step `migrate`" in output and "guided" in output, (shape, output)
        assert "internal error" not in output and "Traceback" not in output, (shape, output)
        shown = world.here(world.monkeypatch, "runs", "show", "gz", "--state-dir", "S")
        output = shown.stdout + shown.stderr
        # as for an `approval` of the wrong shape: refused naming the step, not shown as if read
        assert shown.returncode == 5, (shape, output)
        assert "step `migrate`" in output and "guided" in output, (shape, output)
        assert "internal error" not in output and "Traceback" not in output, (shape, output)
