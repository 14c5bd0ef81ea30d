"""A run record is not evidence (#17): a state folder rewritten between jobs does not deploy.

The documented CI recipe passes ``.runner`` between jobs as an artifact, so whoever can upload
one can rewrite ``record.json`` before ``runner resume``. Each test starts a real run that
detaches at a gate (real git, real ``ssh-keygen`` signatures), rewrites its record as an
attacker would, resumes, and checks that nothing past the gate ran. The last tests check that an
honest record still resumes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.approval_world import RUNNER, World, clean_env, git
from helpers.cli import cli_in

ONE_GATE = """\
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
  - id: after
    name: After
    run: echo "DEPLOYED"
"""

TWO_GATES = ONE_GATE.replace(
    "  - id: after\n",
    "  - id: gate2\n    name: Second look\n    manual:\n      teams: [trading-desk]\n"
    "  - id: after\n",
)

Record = dict[str, Any]

MALLORY_PEOPLE = """\
  - id: u-mallory
    username: mallory
    display-name: Mallory
    ssh-principals: [mallory@example.com]
"""


def permissive_trust(world: World) -> dict[str, str]:
    """Trust files that let mallory approve (as an attacker would write them)."""
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


# runs and resumes in this process (no interpreter to start for each of the many): nothing
# here needs a process of its own, and the CLI's error boundary is the same
def run(world: World, run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert world.monkeypatch is not None
    argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S")
    done = world.here(world.monkeypatch, *argv, "--run-id", run_id, "--detach-on-wait", *args)
    assert done.returncode == 75, done.stdout + done.stderr
    return done


def resume(
    world: World, run_id: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert world.monkeypatch is not None
    argv = ("resume", run_id, "--state-dir", "S", "--detach-on-wait", *args)
    return cli_in(world.monkeypatch, world.repo, clean_env(**(env or {})), *argv)


def tamper(world: World, run_id: str, change: Callable[[Record], None]) -> None:
    path = world.repo / "S" / "runs" / run_id / "record.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    change(record)
    path.write_text(json.dumps(record), encoding="utf-8")


def step(record: Record, step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in record["steps"] if s["id"] == step_id)
    return found


def approve(world: World, run_id: str, step_id: str, key: Any, digest: str, **body: Any) -> None:
    request = world.request(run_id=run_id, step_id=step_id, digest=digest, commit=world.head)
    raw = world.body(request, key, **body).encode()
    world.push_signed(raw, key, run_id=run_id, name=f"{step_id}.{key.principal}.json")


def digest_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode == 5, output
    for word in words:
        assert word in output, output


def passed_first_gate(
    world: World, run_id: str, extra: dict[str, str] | None = None
) -> tuple[str, str]:
    """A run of TWO_GATES whose first gate alice approved, detached at the second."""
    path = world.commit_workflow(TWO_GATES, extra)
    digest = digest_of(path)
    done = run(world, run_id)
    approve(world, run_id, "gate", world.keys.alice, digest)
    done = resume(world, run_id)
    assert done.returncode == 75, done.stdout + done.stderr
    assert step(world.record(run_id), "gate")["status"] == "success"
    return digest, done.stdout


# -- a gate the record says passed --------------------------------------------------------------


def test_a_gate_marked_success_in_the_record_is_not_a_pass(world: World) -> None:
    world.commit_workflow(ONE_GATE)
    run(world, "t1")

    def passed(record: Record) -> None:
        gate = step(record, "gate")
        gate.update(status="success", outcome="success", conclusion="success")
        gate["approval"]["state"] = "approved"
        gate["approval"]["decisions"] = []

    tamper(world, "t1", passed)
    refused(resume(world, "t1"), "run t1 cannot be resumed", "gate `gate` passed")


def test_a_forged_signed_decision_under_a_trust_commit_of_ones_own_is_refused(
    world: World,
) -> None:
    # the attacker's own trust: a commit (child of the deployed one) listing mallory's key
    path = world.commit_workflow(ONE_GATE, permissive_trust(world))
    digest = digest_of(path)
    own = git(world.repo, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "my trust")
    run(world, "t2")
    mallory = world.keys.mallory
    request = world.request(run_id="t2", digest=digest, commit=world.head)
    raw = world.body(request, mallory).encode()
    signature = world.sign(raw, mallory).decode()

    def forged(record: Record) -> None:
        record["trust_commit"] = own
        gate = step(record, "gate")
        gate.update(status="success", outcome="success", conclusion="success")
        gate["approval"]["state"] = "approved"
        gate["approval"]["decisions"] = [
            {
                "result": "proceed",
                "source": "file",
                "username": "mallory",
                "submitted_at": request.created,
                "evidence": {"body": raw.decode(), "signature": signature},
            }
        ]

    tamper(world, "t2", forged)
    refused(
        resume(world, "t2"), "not reachable from the trust ref refs/remotes/origin/approvals-trust"
    )


def test_a_trust_commit_of_ones_own_does_not_let_a_live_approval_count(world: World) -> None:
    path = world.commit_workflow(ONE_GATE, permissive_trust(world))
    digest = digest_of(path)
    own = git(world.repo, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "my trust")
    run(world, "t3")
    approve(world, "t3", "gate", world.keys.mallory, digest)
    tamper(world, "t3", lambda record: record.update(trust_commit=own))
    refused(resume(world, "t3"), f"trust commit its record pins ({own[:12]})")


def test_a_decision_of_an_edited_workflow_does_not_verify(world: World) -> None:
    """The workflow changed after alice approved it, and the record's digests were edited to
    match: her signature binds the old digest, so her gate does not pass for the new one."""
    digest, _ = passed_first_gate(world, "t4")
    path = world.repo / "deploy.yml"
    path.write_text(TWO_GATES.replace('echo "DEPLOYED"', 'echo "DEPLOYED evil"'))
    new = digest_of(path)
    assert new != digest

    def matched(record: Record) -> None:
        record["digest"] = new
        record["files"]["deploy.yml"] = new
        step(record, "gate2")["approval"]["interruption"]["digest"] = new

    tamper(world, "t4", matched)
    approve(world, "t4", "gate2", world.keys.bob, new)  # bob approves what he is shown
    refused(resume(world, "t4"), "gate `gate`", "does not verify again", "workflow digest")


def test_a_record_digest_that_is_not_the_files_is_refused(world: World) -> None:
    digest, _ = passed_first_gate(world, "t5")
    approve(world, "t5", "gate2", world.keys.bob, digest)
    tamper(world, "t5", lambda record: record.update(digest="0" * 64))
    refused(resume(world, "t5"), "workflow digest 000000000000")


def test_a_removed_gate_step_is_refused(world: World) -> None:
    world.commit_workflow(ONE_GATE)
    run(world, "t6")
    tamper(world, "t6", lambda r: r.update(steps=[s for s in r["steps"] if s["id"] != "gate"]))
    refused(resume(world, "t6"), "its record has steps after")


def test_a_gate_marked_skipped_is_decided_again(world: World) -> None:
    world.commit_workflow(ONE_GATE)
    run(world, "t7")

    def skipped(record: Record) -> None:
        gate = step(record, "gate")
        gate.update(status="skipped", outcome="skipped", conclusion="skipped", approval=None)

    tamper(world, "t7", skipped)
    done = resume(world, "t7")
    assert "DEPLOYED" not in done.stdout + done.stderr
    assert done.returncode == 75, done.stdout + done.stderr
    assert step(world.record("t7"), "gate")["status"] == "waiting"


def test_an_aborted_gate_never_becomes_a_success(world: World) -> None:
    path = world.commit_workflow(ONE_GATE)
    run(world, "t8")
    approve(world, "t8", "gate", world.keys.alice, digest_of(path), decision="abort")
    done = resume(world, "t8")
    assert done.returncode == 3, done.stdout + done.stderr

    def forgiven(record: Record) -> None:
        record.update(status="waiting", job_status="success", error=None, exit_code=None)
        step(record, "gate")["conclusion"] = "success"
        after = step(record, "after")
        after.update(status="pending", outcome="", conclusion="", reason="")

    tamper(world, "t8", forgiven)
    done = resume(world, "t8")
    assert "DEPLOYED" not in done.stdout + done.stderr
    assert done.returncode != 0, done.stdout + done.stderr
    assert step(world.record("t8"), "after")["status"] == "skipped"


# -- a gate still waiting -----------------------------------------------------------------------


def test_a_forged_known_submission_of_a_waiting_gate_does_not_count(world: World) -> None:
    world.commit_workflow(ONE_GATE)
    run(world, "t9")

    def known(record: Record) -> None:
        step(record, "gate")["approval"]["submissions"] = [
            {
                "source": "prompt",
                "result": "proceed",
                "who": "alice",
                "who_kind": "username",
                "notes": "",
                "fields": {},
                "submitted_at": record["started_at"],
                "evidence": {"terminal": True, "user": "alice"},
                "key": "prompt:alice",
                "problem": None,
            }
        ]

    tamper(world, "t9", known)
    done = resume(world, "t9")
    assert "DEPLOYED" not in done.stdout + done.stderr
    assert done.returncode == 75, done.stdout + done.stderr


def test_a_waiting_gate_is_judged_by_the_workflows_rules_not_the_records(world: World) -> None:
    path = world.commit_workflow(ONE_GATE)
    run(world, "t10")
    # carol is in the people file but in no team: the gate is for trading-desk
    approve(world, "t10", "gate", world.keys.carol, digest_of(path))
    tamper(world, "t10", lambda r: step(r, "gate")["approval"]["interruption"].update(teams=[]))
    done = resume(world, "t10")
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output
    assert done.returncode == 75, output
    assert "carol is not in team trading-desk" in output


# -- the terminal prompt ------------------------------------------------------------------------


def prompt_passed(record: Record) -> None:
    gate = step(record, "gate")
    gate.update(status="success", outcome="success", conclusion="success")
    gate["approval"]["state"] = "approved"
    gate["approval"]["decisions"] = [
        {
            "result": "proceed",
            "source": "prompt",
            "username": "alice",
            "submitted_at": record["started_at"],
            "evidence": {"terminal": True, "user": "alice"},
        }
    ]


def test_a_prompt_passed_gate_is_refused_in_ci(world: World) -> None:
    world.commit_workflow(ONE_GATE)
    run(world, "t11")
    tamper(world, "t11", prompt_passed)
    done = resume(world, "t11", env={"CI": "true"})
    # unsealed in CI, no passed gate is taken from the record (test_unsealed_resume.py); the
    # prompt's own refusal in CI is in tests/engine/test_evidence.py
    refused(done, "gate `gate` is recorded as passed", "unsealed record")


def test_a_prompt_passed_gate_is_refused_without_a_terminal(world: World) -> None:
    world.commit_workflow(ONE_GATE)
    run(world, "t12")
    tamper(world, "t12", prompt_passed)
    refused(resume(world, "t12"), "cannot be asked again without a terminal")


# -- honest records still resume ----------------------------------------------------------------


def test_an_honest_record_resumes_past_its_reverified_gate(world: World) -> None:
    digest, second = passed_first_gate(world, "h1")
    assert "gate `gate`" not in second  # the first resume had nothing passed to re-verify
    approve(world, "h1", "gate2", world.keys.bob, digest)
    done = resume(world, "h1")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "gate `gate`: decisions re-verified from their evidence" in output
    assert "DEPLOYED" in output


# -- steps the record says ran -----------------------------------------------------------------

CHECKED = """\
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
  - id: check
    name: Check the change
    run: echo "risky=true" >> "$RUNNER_OUTPUT"
  - id: risky-gate
    name: Risky change
    if: steps.check.outputs.risky == 'true'
    manual:
      teams: [trading-desk]
  - id: after
    name: After
    run: echo "DEPLOYED"
"""


def test_a_step_after_an_open_gate_cannot_have_run(world: World) -> None:
    """The record says ``check`` ran (it cannot have: the run waits at the gate before it) and
    found the change not risky, and the risky-change gate was skipped. On resume, ``check``
    runs for real, and the second gate is asked."""
    path = world.commit_workflow(CHECKED)
    run(world, "t13")

    def done_already(record: Record) -> None:
        check = step(record, "check")
        check.update(status="success", outcome="success", conclusion="success")
        check["outputs"] = {"risky": "false"}
        risky = step(record, "risky-gate")
        risky.update(status="skipped", outcome="skipped", conclusion="skipped")

    tamper(world, "t13", done_already)
    approve(world, "t13", "gate", world.keys.alice, digest_of(path))  # the first gate, honestly
    done = resume(world, "t13")
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode == 75, output
    assert "step `check` comes after a gate not passed, so it cannot have run" in output
    record = world.record("t13")
    assert step(record, "check")["outputs"] == {"risky": "true"}
    assert step(record, "risky-gate")["status"] == "waiting"


def runs_show(world: World, run_id: str) -> str:
    assert world.monkeypatch is not None
    done = cli_in(
        world.monkeypatch, world.repo, clean_env(), "runs", "show", run_id, "--state-dir", "S"
    )
    return done.stdout + done.stderr


def test_runs_show_believes_a_decision_only_as_far_as_its_signed_body_says(world: World) -> None:
    """The audit view printed who decided, the notes and the fields from the record, and
    "signature re-verified" for the evidence beside them: rewritten to say bob approved with
    a ticket of his choosing (alice's signature kept), or given a signed approval of another
    run, the record still showed as verified."""
    digest, _ = passed_first_gate(world, "t18")
    shown = runs_show(world, "t18")
    assert "signature re-verified as of the decision" in shown, shown

    def as_bob(record: Record) -> None:
        decision = step(record, "gate")["approval"]["decisions"][0]
        decision.update(username="bob", display_name="Bob Stone", notes="Reviewed CHG-77")
        decision["fields"] = {"ticket": "CHG-77"}

    tamper(world, "t18", as_bob)
    shown = runs_show(world, "t18")
    assert "signature re-verified" not in shown, shown
    assert "NOT valid: the record says person 'bob', the signed approval 'alice'" in shown
    assert "the record's notes are not the signed approval's" in shown
    assert "the record's fields are not the signed approval's" in shown

    other = world.request(run_id="t0", digest=digest, commit=world.head)
    raw = world.body(other, world.keys.alice).encode()

    def replayed(record: Record) -> None:
        decision = step(record, "gate")["approval"]["decisions"][0]
        decision.update(username="alice", display_name="Alice", notes=other_notes(raw))
        decision["fields"] = {}
        evidence = decision["evidence"]
        evidence.update(body=raw.decode(), signature=world.sign(raw, world.keys.alice).decode())

    tamper(world, "t18", replayed)
    shown = runs_show(world, "t18")
    assert "signature re-verified" not in shown, shown
    assert "NOT valid: the record says run 't18', the signed approval 't0'" in shown


def test_a_forged_decision_naming_an_honest_ones_file_does_not_get_its_verdict(
    world: World,
) -> None:
    """Verdicts were kept by the evidence's file name, which the record gives: a forged first
    decision (bob, with a copy of alice's evidence) showed the honest one's "re-verified"."""
    passed_first_gate(world, "t20")

    def forged(record: Record) -> None:
        decisions = step(record, "gate")["approval"]["decisions"]
        fake = json.loads(json.dumps(decisions[0]))
        fake.update(username="bob", display_name="Bob Stone", notes="Reviewed CHG-99")
        decisions.insert(0, fake)

    tamper(world, "t20", forged)
    verdicts = [line for line in runs_show(world, "t20").splitlines() if "evidence:" in line]
    assert len(verdicts) == 2, verdicts
    assert "NOT valid: the record says person 'bob'" in verdicts[0]
    assert verdicts[1].endswith("signature re-verified as of the decision")


def test_notes_shown_with_a_mask_say_so(world: World) -> None:
    """A mask stands for what a secret hid, and can stand for any words: the verdict says the
    notes shown have masked parts, which only the signed approval holds."""
    passed_first_gate(world, "t21")

    def masked(record: Record) -> None:
        decision = step(record, "gate")["approval"]["decisions"][0]
        decision["notes"] = "ok *** alice"  # signed: "ok from alice"

    tamper(world, "t21", masked)
    assert (
        "signature re-verified as of the decision; the notes and fields shown have 1 masked "
        "part, which only the signed approval holds"
    ) in runs_show(world, "t21")


def other_notes(raw: bytes) -> str:
    notes: str = json.loads(raw)["notes"]
    return notes


def test_runs_show_verify_does_not_take_a_trust_commit_of_ones_own(world: World) -> None:
    """An auditor's ``runner runs show --verify`` reads the same record: a trust commit the trust
    ref never named verifies nothing."""
    digest, _ = passed_first_gate(world, "t14", permissive_trust(world))
    own = git(world.repo, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "my trust")
    mallory = world.keys.mallory
    request = world.request(run_id="t14", digest=digest, commit=world.head)
    raw = world.body(request, mallory).encode()

    def forged(record: Record) -> None:
        record["trust_commit"] = own
        evidence = step(record, "gate")["approval"]["decisions"][0]["evidence"]
        evidence.update(body=raw.decode(), signature=world.sign(raw, mallory).decode())

    tamper(world, "t14", forged)
    done = subprocess.run(
        [RUNNER, "runs", "show", "t14", "--state-dir", "S"],
        cwd=world.repo,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "signature re-verified" not in output, output
    assert f"the trust commit {own[:12]} the record pins is not reachable from" in output


def test_a_record_pointing_at_another_commit_does_not_carry_its_approvals(world: World) -> None:
    """The CI resume job checks out the commit the record names: an attacker points it at a
    commit of theirs (the workflow file unchanged, a script changed). Alice approved the first
    commit; her signature does not pass the gate for the second."""
    digest, _ = passed_first_gate(world, "t16")
    world.commit_workflow(TWO_GATES, {"deploy.sh": "echo evil\n"})
    assert digest_of(world.repo / "deploy.yml") == digest
    tamper(world, "t16", lambda record: record.update(commit=world.head))
    approve(world, "t16", "gate2", world.keys.bob, digest)  # bound to the new commit
    refused(resume(world, "t16"), "gate `gate`", "approval is for commit")


def test_the_commit_approved_is_the_one_checked_out_not_the_ci_variable(world: World) -> None:
    """A job checked out a commit of its own (the workflow file unchanged, a script changed)
    and set ``$GITHUB_SHA`` to the reviewed one: the request asked the approvers to sign for
    the reviewed commit, and the job's own script ran on their approval."""
    world.commit_workflow(ONE_GATE)
    reviewed = world.head
    path = world.commit_workflow(ONE_GATE, {"deploy.sh": "echo evil\n"})
    digest = digest_of(path)
    assert world.head != reviewed
    argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S", "--run-id", "c1")
    assert world.monkeypatch is not None
    done = world.here(world.monkeypatch, *argv, "--detach-on-wait", env={"GITHUB_SHA": reviewed})
    assert done.returncode == 75, done.stdout + done.stderr
    request = json.loads(
        (world.repo / "S" / "runs" / "c1" / "steps" / "gate" / "request.json").read_text()
    )
    assert world.record("c1")["commit"] == request["commit"] == world.head
    # an approval of the reviewed commit (what the request used to ask for) is not one for this
    signed = world.request(run_id="c1", step_id="gate", digest=digest, commit=reviewed)
    raw = world.body(signed, world.keys.alice).encode()
    world.push_signed(raw, world.keys.alice, run_id="c1", name="gate.alice.json")
    done = resume(world, "c1", env={"GITHUB_SHA": reviewed})
    assert done.returncode == 75, done.stdout + done.stderr  # still waiting
    assert "DEPLOYED" not in done.stdout
    assert f"approval is for commit '{reviewed}'" in done.stdout


def test_a_resume_job_whose_event_names_another_commit_resumes(world: World) -> None:
    """A resume job (``workflow_dispatch``) has a ``$GITHUB_SHA`` of its own; what it runs is the
    commit it checked out, the run's."""
    digest, _ = passed_first_gate(world, "h3")
    approve(world, "h3", "gate2", world.keys.bob, digest)
    done = resume(world, "h3", env={"GITHUB_SHA": "f" * 40})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DEPLOYED" in done.stdout


def test_a_verified_gates_outputs_come_from_its_decision_not_the_record(world: World) -> None:
    """Later steps read who approved, the notes and the approver's fields from the gate's
    outputs: rewritten in the record, they are taken again from the verified decision."""
    digest, _ = passed_first_gate(world, "t17")

    def forged(record: Record) -> None:
        gate = step(record, "gate")
        gate["outputs"].update({"responsible-user-username": "mallory", "notes": "all regions"})
        gate["octopus"]["Manual.ResponsibleUser.DisplayName"] = "Mallory"

    tamper(world, "t17", forged)
    approve(world, "t17", "gate2", world.keys.bob, digest)
    done = resume(world, "t17")
    assert done.returncode == 0, done.stdout + done.stderr
    gate = step(world.record("t17"), "gate")
    assert gate["outputs"]["responsible-user-username"] == "alice"
    assert gate["outputs"]["notes"] == "ok from alice"
    assert gate["octopus"]["Manual.ResponsibleUser.DisplayName"] == "Alice Martin"


HOSTILE_SHAPES: list[tuple[str, Callable[[Record], None]]] = [
    ("started_by", lambda r: r.update(started_by=["alice"])),
    # crashed `runner runs show` (the resume refused it)
    ("started_by-text", lambda r: r.update(started_by="alice")),
    ("env-values", lambda r: r.update(env={"A": 1})),
    # crashed every resume: the wait read it as a time
    ("deadline", lambda r: step(r, "gate")["approval"]["interruption"].update(deadline="soon")),
    ("inputs", lambda r: r.update(inputs="x")),
    ("trust_commit", lambda r: r.update(trust_commit="--output=/tmp/owned")),
    ("approval", lambda r: step(r, "gate").update(approval=["x"])),
    ("status", lambda r: step(r, "gate").update(status="approved")),
    (
        "decisions",
        lambda r: (
            step(r, "gate").update(status="success"),
            step(r, "gate")["approval"].update(state="approved", decisions=5),
        ),
    ),
    (
        "evidence",
        lambda r: (
            step(r, "gate").update(status="success"),
            step(r, "gate")["approval"].update(
                state="approved",
                decisions=[{"source": "file", "result": "proceed", "evidence": [1]}],
            ),
        ),
    ),
]


def test_a_record_of_the_wrong_shape_is_refused_with_a_message(world: World) -> None:
    import shutil

    world.commit_workflow(ONE_GATE)
    run(world, "t15")
    pristine = world.repo / "pristine"
    shutil.copytree(world.repo / "S", pristine)
    for what, change in HOSTILE_SHAPES:
        shutil.rmtree(world.repo / "S")
        shutil.copytree(pristine, world.repo / "S")
        tamper(world, "t15", change)
        done = resume(world, "t15")
        output = done.stdout + done.stderr
        assert "internal error" not in output, (what, output)
        assert (done.returncode, "DEPLOYED" in output) == (5, False), (what, output)
        assert "run t15 cannot be resumed" in output, (what, output)
        assert world.monkeypatch is not None
        shown = cli_in(
            world.monkeypatch, world.repo, clean_env(), "runs", "show", "t15", "--state-dir", "S"
        )
        assert "internal error" not in shown.stdout + shown.stderr, (what, shown.stderr)


def test_a_record_naming_another_run_writes_nothing_outside(world: World) -> None:
    """The id inside ``record.json`` was never checked: the resumed run saved itself under it,
    ``../../escaped`` included."""
    world.commit_workflow(ONE_GATE)
    run(world, "t18")
    tamper(world, "t18", lambda record: record.update(run_id="../../escaped"))
    done = resume(world, "t18")
    output = done.stdout + done.stderr
    assert not (world.repo / "escaped").exists()
    assert done.returncode == 5, output
    assert "the record of run t18 names another run ('../../escaped')" in output


EVIL = """\
name: Seed
environments: [production]
steps:
  - id: gate
    name: Approve release
    run: echo "no gate here"
  - id: after
    name: After
    run: echo "DEPLOYED"
"""


def test_a_record_naming_a_workflow_of_the_state_folder_is_refused(world: World) -> None:
    """The record names the workflow file: pointed at one the attacker put in the state folder
    (with its digest in the record), the resume would run it, gates and all removed."""
    world.commit_workflow(ONE_GATE)
    run(world, "t19")
    evil = world.repo / "S" / "evil.yml"
    evil.write_text(EVIL)

    def elsewhere(record: Record) -> None:
        record.update(workflow_path="S/evil.yml", digest=digest_of(evil))
        record["files"] = {"S/evil.yml": digest_of(evil)}
        gate = step(record, "gate")
        gate.update(status="pending", approval=None)

    tamper(world, "t19", elsewhere)
    done = resume(world, "t19")
    output = done.stdout + done.stderr
    assert "DEPLOYED" not in output, output
    assert done.returncode == 5, output
    assert "its record names the workflow S/evil.yml, in the state folder" in output


SKIPPABLE = ONE_GATE.replace(
    "  - id: after\n",
    "  - id: backup\n    name: Back up the database\n    run: echo BACKED-UP\n  - id: after\n",
)


def test_an_approval_binds_the_steps_the_run_skips(world: World) -> None:
    """Found by an attack pass: alice approved run sk (every step); the deployer started
    another run under the same id, in another state folder, with `--skip backup`, and alice's
    approval let it deploy without the backup. A request binds the steps skipped with --skip
    with its inputs, shows them, and an approval of the run skipping nothing does not count."""
    assert world.monkeypatch is not None
    path = world.commit_workflow(SKIPPABLE)
    run(world, "sk")
    approve(world, "sk", "gate", world.keys.alice, digest_of(path))
    argv = ("run", "deploy.yml", "--env", "production", "--state-dir", "S2", "--run-id", "sk")
    done = world.here(world.monkeypatch, *argv, "--skip", "backup", "--detach-on-wait")
    output = done.stdout + done.stderr
    assert done.returncode == 75, output
    assert "DEPLOYED" not in output
    assert "Skipped with --skip: backup" in output
    assert "refused file: gate.alice@example.com.json: approval does not bind" in output
    request = json.loads((world.repo / "S2/runs/sk/steps/gate/request.json").read_text())
    assert request["skipped"] == ["backup"]
    assert request["following_steps"] == ["After"]
    # an approval signed from that run's own request counts for it
    from datetime import UTC, datetime, timedelta

    from runner.approvals.document import new_body

    bob = world.keys.bob
    body = new_body(
        request, "proceed", bob.principal, "ok", {}, datetime.now(UTC), timedelta(hours=1)
    )
    world.push_signed(body.encode(), bob, run_id="sk", name="gate.bob.json")
    argv = ("resume", "sk", "--state-dir", "S2", "--detach-on-wait")
    done = world.here(world.monkeypatch, *argv)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "DEPLOYED" in output and "BACKED-UP" not in output
