"""The ``file`` source over git, with real ``ssh-keygen`` keys and signatures: what counts, what
is refused and with which reason, through ``FileSource.poll`` + ``quorum.judge`` or a whole run."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from runner.approvals.document import instant, new_body
from runner.approvals.quorum import Verdict
from runner.approvals.request import inputs_digest
from runner.errors import RefusedError

if TYPE_CHECKING:
    from helpers.approval_world import World

DIGEST = "d" * 64  # World.DIGEST
TRUST_REF = "refs/remotes/origin/approvals-trust"  # World.TRUST_REF


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


ALICE_FILE = "gate.alice@example.com.json"


def reasons(verdict: Verdict) -> list[str]:
    return [refusal.reason for refusal in verdict.refused]


def assert_refused(verdict: Verdict, reason: str) -> None:
    assert verdict.state == "waiting"
    assert verdict.accepted == ()
    assert reasons(verdict) == [reason]


# -- what counts -------------------------------------------------------------------------------


def test_valid_signed_file_approves_with_evidence(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    raw = world.body(request, alice).encode()
    world.push_signed(raw, alice)
    submissions, verdict = world.judge(request)
    assert verdict.state == "approved"
    assert verdict.refused == ()
    assert verdict.deciding is not None
    assert verdict.deciding.person.display_name == "Alice Martin"
    (submission,) = submissions
    assert submission.who == "alice@example.com"
    assert submission.who_kind == "principal"
    assert submission.notes == "ok from alice"
    signature = (world.approver / "approvals/r1" / (ALICE_FILE + ".sig")).read_text()
    signed = hashlib.sha256(signature.encode()).hexdigest()
    assert submission.key == f"file:{hashlib.sha256(raw).hexdigest()}:{signed}"
    assert submission.evidence == {
        "file": f"approvals/r1/{ALICE_FILE}",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "remote": "origin",
        "body": raw.decode(),
        "signature": signature,
        "principal": "alice@example.com",
        "fingerprint": alice.fingerprint,
        "key_type": "ssh-ed25519",
    }


def test_nothing_pushed_yet_is_waiting(world: World) -> None:
    submissions, verdict = world.judge(world.request())
    assert submissions == []
    assert verdict.state == "waiting"


def test_files_of_other_runs_and_steps_are_not_read(world: World) -> None:
    alice = world.keys.alice
    other_run = world.request(run_id="r0", id="r0--gate")
    world.push_signed(world.body(other_run, alice).encode(), alice, run_id="r0")
    other_step = world.request(step_id="deploy-db")
    world.push_signed(
        world.body(other_step, alice).encode(), alice, name="deploy-db.alice@example.com.json"
    )
    submissions, verdict = world.judge(world.request())
    assert submissions == []
    assert verdict.state == "waiting"


def test_a_file_is_verified_once_and_reported_once(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    world.push_signed(world.body(request, alice).encode(), alice)
    source = world.source()
    source.register(request)
    first = source.poll(request)
    assert source.poll(request) == first
    assert len(first) == 1


# -- refusals: the signature and the key -------------------------------------------------------


def test_tampered_body_is_refused(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    raw = world.body(request, alice).encode()
    signature = world.sign(raw, alice)
    tampered = raw.replace(b"ok from alice", b"ok from alicE")
    assert len(tampered) == len(raw) and tampered != raw
    world.push(
        {f"approvals/r1/{ALICE_FILE}": tampered, f"approvals/r1/{ALICE_FILE}.sig": signature}
    )
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: signature does not match")


def test_wrong_namespace_is_refused(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    world.push_signed(world.body(request, alice).encode(), alice, namespace="other")
    _, verdict = world.judge(request)
    assert_refused(
        verdict, f"file: {ALICE_FILE}: wrong namespace 'other', expected 'runner-approval'"
    )


def test_untrusted_key_claiming_a_trusted_principal_is_refused(world: World) -> None:
    mallory = world.keys.mallory
    request = world.request()
    raw = world.body(request, world.keys.alice).encode()  # says alice@example.com
    world.push_signed(raw, mallory, name=ALICE_FILE)
    _, verdict = world.judge(request)
    assert_refused(
        verdict,
        f"file: {ALICE_FILE}: key {mallory.fingerprint} is not allowed for principal "
        "'alice@example.com'",
    )


def test_untrusted_key_of_an_unknown_principal_is_refused(world: World) -> None:
    mallory = world.keys.mallory
    request = world.request()
    name = world.push_signed(world.body(request, mallory).encode(), mallory)
    _, verdict = world.judge(request)
    assert_refused(
        verdict, f"file: {name}: principal 'mallory@example.com' is not in the allowed signers"
    )


def test_key_of_another_principal_is_refused(world: World) -> None:
    bob = world.keys.bob
    request = world.request()
    raw = world.body(request, world.keys.alice).encode()  # bob signs a body naming alice
    world.push_signed(raw, bob, name=ALICE_FILE)
    _, verdict = world.judge(request)
    assert_refused(
        verdict,
        f"file: {ALICE_FILE}: key {bob.fingerprint} is not allowed for principal "
        "'alice@example.com'",
    )


def test_principal_outside_the_team_is_refused(world: World) -> None:
    carol = world.keys.carol
    request = world.request()
    world.push_signed(world.body(request, carol).encode(), carol)
    _, verdict = world.judge(request)
    assert_refused(
        verdict, "proceed by carol@example.com via file: carol is not in team trading-desk"
    )


def test_revoked_key_is_refused(world: World) -> None:
    dave = world.keys.dave
    request = world.request()
    name = world.push_signed(world.body(request, dave).encode(), dave)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {name}: key {dave.fingerprint} is revoked")


def test_revoked_key_counts_without_the_revoked_keys_file(world: World) -> None:
    """The control for the test above: dave's signature itself is fine."""
    dave = world.keys.dave
    request = world.request()
    world.push_signed(world.body(request, dave).encode(), dave)
    source = world.source(world.approvals_config(revoked=False))
    source.register(request)
    _, verdict = world.judge(request, source=source)
    assert verdict.state == "approved"


# -- refusals: the validity window -------------------------------------------------------------


def test_expired_approval_is_refused(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    now = utc_now()
    expires = instant(now - timedelta(minutes=1))
    body = world.body(
        request, alice, issued_at=instant(now - timedelta(minutes=2)), expires_at=expires
    )
    world.push_signed(body.encode(), alice)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: approval expired at {expires}")


def test_approval_dated_beyond_the_clock_skew_is_refused(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    now = utc_now()
    issued = instant(now + timedelta(minutes=10))
    body = world.body(
        request, alice, issued_at=issued, expires_at=instant(now + timedelta(hours=1))
    )
    world.push_signed(body.encode(), alice)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: approval is issued in the future ({issued})")


def test_approval_dated_within_the_clock_skew_counts(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    now = utc_now()
    body = world.body(
        request,
        alice,
        issued_at=instant(now + timedelta(minutes=4)),
        expires_at=instant(now + timedelta(hours=1)),
    )
    world.push_signed(body.encode(), alice)
    _, verdict = world.judge(request)
    assert verdict.state == "approved"


def test_approval_issued_before_the_run_started_is_refused(world: World) -> None:
    alice = world.keys.alice
    now = utc_now()
    request = world.request(run_started=instant(now - timedelta(minutes=1)))
    issued = instant(now - timedelta(minutes=20))
    body = world.body(
        request, alice, issued_at=issued, expires_at=instant(now + timedelta(hours=1))
    )
    world.push_signed(body.encode(), alice)
    _, verdict = world.judge(request)
    assert_refused(
        verdict, f"file: {ALICE_FILE}: approval was issued at {issued}, before the run started"
    )


def test_validity_longer_than_seven_days_is_refused(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    now = utc_now()
    body = world.body(request, alice, expires_at=instant(now + timedelta(days=8)))
    world.push_signed(body.encode(), alice)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: approval claims a validity longer than 7 days")


# -- refusals: replays -------------------------------------------------------------------------

OLD_COMMIT = "0" * 40


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"run_id": "r0"}, "approval is for run 'r0', not 'r1'"),
        ({"step_id": "deploy-db"}, "approval is for step 'deploy-db', not 'gate'"),
        ({"environment": "staging"}, "approval is for environment 'staging', not 'production'"),
        (
            {"workflow_digest": "e" * 64},
            f"approval is for workflow digest '{'e' * 64}', not '{DIGEST}'",
        ),
        ({"commit": OLD_COMMIT}, "approval is for commit '" + OLD_COMMIT + "', not '{head}'"),
    ],
    ids=["other-run", "other-step", "other-environment", "other-digest", "other-commit"],
)
def test_replayed_approval_is_refused(world: World, change: dict[str, Any], reason: str) -> None:
    """A genuine approval for something else, copied into this run's folder under this step."""
    alice = world.keys.alice
    request = world.request()
    world.push_signed(world.body(request, alice, **change).encode(), alice)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: " + reason.replace("{head}", world.head))


INPUTS = {"version": "1.4.2"}


@pytest.mark.parametrize(
    ("inputs", "signed", "reason"),
    [
        # another run under this id (another state folder) with other inputs
        (INPUTS, {"version": "9.9.9-evil"}, "approval is for a run with other inputs"),
        (
            INPUTS,
            None,
            "approval does not bind this run's inputs (sign it from the request file the "
            "waiting run wrote, or with --inputs-digest)",
        ),
        ({}, INPUTS, "approval binds inputs this run does not have"),
    ],
    ids=["other-inputs", "unbound-inputs", "inputs-of-none"],
)
def test_an_approval_binds_the_runs_inputs(
    world: World, inputs: dict[str, str], signed: dict[str, str] | None, reason: str
) -> None:
    """The body bound the run, step, environment, digest and commit, not the inputs: two runs
    under one run id in two state folders, with other inputs, were both approved by one
    signature, for a version the approver never saw."""
    alice = world.keys.alice
    request = world.request(inputs=inputs)
    bound = inputs_digest(signed) if signed else None
    world.push_signed(world.body(request, alice, inputs_digest=bound).encode(), alice)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: {reason}")


def test_an_approval_of_the_runs_own_inputs_counts(world: World) -> None:
    alice = world.keys.alice
    request = world.request(inputs=INPUTS)
    world.push_signed(world.body(request, alice).encode(), alice)
    _, verdict = world.judge(request)
    assert verdict.state == "approved", reasons(verdict)


# -- refusals: who ------------------------------------------------------------------------------


def test_self_approval_is_refused(world: World) -> None:
    alice = world.keys.alice
    request = world.request(prevent_self_approval=True, started_by="alice-gh")
    world.push_signed(world.body(request, alice).encode(), alice)
    started_by = world.directory().by_login("alice-gh")
    assert started_by is not None and started_by.username == "alice"
    _, verdict = world.judge(request, started_by=started_by)
    assert_refused(
        verdict,
        "proceed by alice@example.com via file: alice started this run and may not approve it",
    )


def test_self_approval_cannot_be_ruled_out_for_an_unknown_starter(world: World) -> None:
    alice = world.keys.alice
    request = world.request(prevent_self_approval=True, started_by="root")
    world.push_signed(world.body(request, alice).encode(), alice)
    _, verdict = world.judge(request, started_by=None)
    assert_refused(
        verdict,
        "proceed by alice@example.com via file: the run was started by 'root', who is not in "
        "the people file, so self-approval cannot be ruled out",
    )


def test_quorum_needs_distinct_people(world: World) -> None:
    alice, bob = world.keys.alice, world.keys.bob
    request = world.request(quorum=(("trading-desk", 2),))
    world.push_signed(world.body(request, alice).encode(), alice)
    world.push_signed(
        world.body(request, alice, notes="really ok").encode(), alice, name="gate.alice-2.json"
    )
    source = world.source()
    source.register(request)
    _, verdict = world.judge(request, source=source)
    assert verdict.state == "waiting"
    assert [a.person.username for a in verdict.accepted] == ["alice"]
    assert reasons(verdict) == [
        "proceed by alice@example.com via file: alice already counted toward this step"
    ]
    assert verdict.progress == (("trading-desk", 1, 2),)

    world.push_signed(world.body(request, bob).encode(), bob)
    _, verdict = world.judge(request, source=source)
    assert verdict.state == "approved"
    assert sorted(a.person.username for a in verdict.accepted) == ["alice", "bob"]
    assert verdict.progress == (("trading-desk", 2, 2),)


# -- refusals: the body and the files ----------------------------------------------------------


def test_duplicate_key_body_is_refused_even_when_signed(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    canonical = world.body(request, alice).encode()
    raw = b'{"notes":"nothing to see",' + canonical[1:]
    world.push_signed(raw, alice)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: approval body has the key 'notes' twice")


def test_trailing_garbage_body_is_refused_even_when_signed(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    raw = world.body(request, alice).encode() + b'{"decision":"abort"}\n'
    world.push_signed(raw, alice)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: approval body has data after the JSON document")


def test_missing_signature_is_refused(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    world.push({f"approvals/r1/{ALICE_FILE}": world.body(request, alice).encode()})
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: has no .sig file beside it")


def test_signature_pushed_after_its_body_is_verified(world: World) -> None:
    alice = world.keys.alice
    request = world.request()
    raw = world.body(request, alice).encode()
    world.push({f"approvals/r1/{ALICE_FILE}": raw}, message="body first")
    source = world.source()
    source.register(request)
    _, verdict = world.judge(request, source=source)
    assert verdict.state == "waiting"
    world.push({f"approvals/r1/{ALICE_FILE}.sig": world.sign(raw, alice)}, message="then its sig")
    _, verdict = world.judge(request, source=source)
    assert verdict.state == "approved"


def test_a_bad_copy_of_a_body_does_not_hide_the_valid_file(world: World) -> None:
    alice, mallory = world.keys.alice, world.keys.mallory
    request = world.request()
    raw = world.body(request, alice).encode()
    world.push(
        {
            "approvals/r1/gate.a.json": raw,  # sorts before gate.alice@example.com.json
            "approvals/r1/gate.a.json.sig": world.sign(raw, mallory),
            f"approvals/r1/{ALICE_FILE}": raw,
            f"approvals/r1/{ALICE_FILE}.sig": world.sign(raw, alice),
        }
    )
    _, verdict = world.judge(request)
    assert verdict.state == "approved"


@pytest.mark.parametrize("signer", ["alice", "mallory"])
def test_signed_body_without_commit_is_refused_not_a_crash(world: World, signer: str) -> None:
    """A body must bind the commit (null when the run has none): leaving it out is refused by
    the strict parser, whoever signed (the body is parsed before the key is looked up)."""
    key = getattr(world.keys, signer)
    request = world.request()
    canonical = world.body(request, world.keys.alice).encode()
    raw = canonical.replace(f'"commit":"{request.commit}",'.encode(), b"")
    assert b'"commit"' not in raw
    world.push_signed(raw, key, name=ALICE_FILE)
    _, verdict = world.judge(request)
    assert_refused(verdict, f"file: {ALICE_FILE}: approval body lacks 'commit'")


# -- where trust comes from --------------------------------------------------------------------

TRUST_IN_DEPLOYED_COMMIT = "trust must come from a protected ref that the deployment cannot change"


@pytest.mark.parametrize("ref", ["refs/heads/main", "refs/remotes/origin/main"])
def test_trust_from_the_deployed_commit_is_refused(world: World, ref: str) -> None:
    keys = world.keys
    world.commit_workflow(
        "name: Seed\nsteps:\n  - id: s\n    run: echo\n",
        {
            "trust/people.yml": world.PEOPLE_YML,
            "trust/allowed_signers": keys.allowed_signers()
            + f"mallory@example.com {keys.mallory.public}\n",
        },
    )
    source = world.source(world.approvals_config(ref=ref, revoked=False))
    with pytest.raises(RefusedError) as caught:
        source.register(world.request())
    assert (
        caught.value.message
        == f"trust ref {ref} is the commit being deployed; {TRUST_IN_DEPLOYED_COMMIT}"
    )
    assert source.signers == []


@pytest.mark.parametrize(
    ("ref", "fix"),
    [
        ("HEAD", "refs/heads/HEAD"),
        ("main", "refs/heads/main"),
        ("origin/approvals-trust", "refs/remotes/origin/approvals-trust"),
        ("refs/heads/a..b", "refs/heads/a..b"),
    ],
)
def test_a_trust_ref_not_named_in_full_is_refused(world: World, ref: str, fix: str) -> None:
    """git resolves a short name by trying refs/tags/ before refs/remotes/: refused (#17)."""
    with pytest.raises(RefusedError) as caught:
        world.source(world.approvals_config(ref=ref))
    assert caught.value.message == (
        f"trust ref {ref!r} must be a full ref name: a short name can resolve to a tag or "
        "branch that someone else pushed"
    )
    assert caught.value.hint is not None and caught.value.hint.startswith(f"write `ref: {fix}`")


WORKING_TREE_REFUSAL = (
    "the file source refuses trust files from the working tree: set `approvals.trust.ref` to a "
    "protected branch or tag"
)


def _trust_in_working_tree(world: World) -> None:
    folder = world.repo / "local-trust"
    folder.mkdir()
    (folder / "people.yml").write_text(world.PEOPLE_YML)
    (folder / "allowed_signers").write_text(world.keys.allowed_signers())
    (folder / "revoked_keys").write_text(world.keys.revoked_keys())


def test_trust_from_the_working_tree_is_refused(world: World) -> None:
    _trust_in_working_tree(world)
    source = world.source(world.approvals_config(ref=None, trust_prefix="local-trust"))
    with pytest.raises(RefusedError) as caught:
        source.register(world.request())
    assert caught.value.message == WORKING_TREE_REFUSAL
    assert caught.value.hint == "for a local try only, pass --insecure-local-trust"


def test_trust_from_the_working_tree_with_insecure_local_trust(world: World) -> None:
    _trust_in_working_tree(world)
    alice = world.keys.alice
    approvals = world.approvals_config(ref=None, trust_prefix="local-trust")
    request = world.request()
    world.push_signed(world.body(request, alice).encode(), alice)
    source = world.source(approvals, insecure=True)
    source.register(request)
    assert len(source.signers) == 4
    _, verdict = world.judge(request, source=source)
    assert verdict.state == "approved"


# -- whole runs: refusals are logged and recorded, the step times out ------------------------

GATED = """\
name: Seed
environments: [production]
approvals:
  trust: {{ref: {ref}, people: trust/people.yml, allowed-signers: trust/allowed_signers, \
revoked-keys: trust/revoked_keys}}
  file: {{remote: origin, branch: approvals, path: approvals, poll-seconds: 1}}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
      prevent-self-approval: true
      timeout-minutes: 0.05
  - id: after
    name: After
    run: echo "approved by $WHO"
    env:
      WHO: "#{{Octopus.Action[Approve release].Output.Manual.ResponsibleUser.DisplayName}}"
"""


def _deploy(world: World, ref: str = TRUST_REF) -> tuple[str, str]:
    """Commit the gated workflow; return its digest and the deployed commit."""
    path = world.commit_workflow(GATED.format(ref=ref))
    return hashlib.sha256(path.read_bytes()).hexdigest(), world.head


def test_run_times_out_and_records_each_refusal(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = world.keys.alice, world.keys.bob
    digest, commit = _deploy(world)
    request = world.request(run_id="t1", digest=digest, commit=commit)
    raw = world.body(request, alice).encode()
    world.push(
        {
            f"approvals/t1/{ALICE_FILE}": raw.replace(b"ok from alice", b"OK from alice"),
            f"approvals/t1/{ALICE_FILE}.sig": world.sign(raw, alice),
        }
    )
    other_env = world.body(request, bob, environment="staging").encode()
    world.push_signed(other_env, bob, run_id="t1")
    done = world.run_here(monkeypatch, "--run-id", "t1")
    assert done.returncode == 4, done.stdout + done.stderr
    expected = [
        f"file: {ALICE_FILE}: signature does not match",
        "file: gate.bob@example.com.json: approval is for environment 'staging', not 'production'",
    ]
    for reason in expected:
        assert f"warning: refused {reason}" in done.stdout
    assert "approved by" not in done.stdout
    gate = world.record("t1")["steps"][0]
    assert gate["status"] == "failure"
    assert gate["approval"]["state"] == "timed-out"
    refused = gate["approval"]["refused"]
    assert sorted(r["reason"] for r in refused) == expected
    assert {r["source"] for r in refused} == {"file"}
    assert {r["evidence"]["sha256"] for r in refused} == {
        hashlib.sha256(raw.replace(b"ok from alice", b"OK from alice")).hexdigest(),
        hashlib.sha256(other_env).hexdigest(),
    }
    assert gate["approval"]["decisions"] == []


def test_run_refuses_self_approval_by_the_ci_actor(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = world.keys.alice
    digest, commit = _deploy(world)
    request = world.request(run_id="t2", digest=digest, commit=commit)
    world.push_signed(world.body(request, alice).encode(), alice, run_id="t2")
    done = world.run_here(monkeypatch, "--run-id", "t2", env={"RUNNER_ACTOR": "alice-gh"})
    assert done.returncode == 4, done.stdout + done.stderr
    reason = "proceed by alice@example.com via file: alice started this run and may not approve it"
    assert f"warning: refused {reason}" in done.stdout
    approval = world.record("t2")["steps"][0]["approval"]
    assert [r["reason"] for r in approval["refused"]] == [reason]
    assert approval["state"] == "timed-out"


def test_run_with_trust_from_the_deployed_commit_cannot_ask(world: World) -> None:
    keys = world.keys
    world.commit_workflow(
        GATED.format(ref="refs/heads/main"),
        {
            "trust/people.yml": world.PEOPLE_YML,
            "trust/allowed_signers": keys.allowed_signers(),
            "trust/revoked_keys": "",
        },
    )
    done = world.run("--run-id", "t3")
    assert done.returncode == 1, done.stdout + done.stderr
    # refused before the first step, nothing recorded
    assert (
        "step 'Approve release': no approval source can ask here (file: trust ref "
        f"refs/heads/main is the commit being deployed; {TRUST_IN_DEPLOYED_COMMIT})" in done.stderr
    )
    assert not (world.repo / "S" / "runs" / "t3").exists()


def test_run_with_working_tree_trust_needs_insecure_local_trust(world: World) -> None:
    keys, bob = world.keys, world.keys.bob
    path = world.commit_workflow(
        GATED.replace("{ref: {ref}, ", "{").format(),
        {
            "trust/people.yml": world.PEOPLE_YML,
            "trust/allowed_signers": keys.allowed_signers(),
            "trust/revoked_keys": keys.revoked_keys(),
        },
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    done = world.run("--run-id", "t4")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "no approval source can ask here (file: `approvals.trust.ref` is not set (trust files "
        "must come from a protected ref))" in done.stderr
    )

    request = world.request(run_id="t5", digest=digest, commit=world.head)
    world.push_signed(world.body(request, bob).encode(), bob, run_id="t5")
    done = world.run("--run-id", "t5", "--insecure-local-trust", env={"RUNNER_ACTOR": "carol"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "approved by Bob Stone" in done.stdout
    assert world.record("t5")["steps"][0]["approval"]["decisions"][0]["username"] == "bob"


def test_run_survives_an_untrusted_body_without_commit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    mallory = world.keys.mallory
    digest, commit = _deploy(world)
    request = world.request(run_id="t6", digest=digest, commit=commit)
    raw = world.body(request, world.keys.alice).encode()
    raw = raw.replace(f'"commit":"{commit}",'.encode(), b"")
    world.push_signed(raw, mallory, run_id="t6", name=ALICE_FILE)
    done = world.run_here(
        monkeypatch, "--run-id", "t6", env={"RUNNER_STATE_DIR": str(world.root / "crash")}
    )
    assert done.returncode == 4, done.stdout + done.stderr
    reason = f"file: {ALICE_FILE}: approval body lacks 'commit'"
    assert f"warning: refused {reason}" in done.stdout
    refused = world.record("t6")["steps"][0]["approval"]["refused"]
    assert [r["reason"] for r in refused] == [reason]


def test_helpers_sign_what_runner_approval_new_writes(world: World) -> None:
    """The bodies these tests sign are the canonical ones `runner approval new` writes, and
    this module's constants are the world's."""
    request = world.request()
    body = world.body(request, world.keys.alice)
    made = new_body(
        request.to_dict(),
        "proceed",
        "alice@example.com",
        "ok from alice",
        {},
        body.issued,
        body.expires - body.issued,
    )
    assert made.encode() == body.encode()
    assert (world.DIGEST, world.TRUST_REF) == (DIGEST, TRUST_REF)


def test_a_trust_ref_not_fetched_stops_the_run_before_its_first_step(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trust branch not fetched (a CI job without its `git fetch`): the steps before the
    gate ran (the database upgraded), then every decision was refused for want of the people
    file. The run is now refused before its first step, saying what to fetch."""
    gated = GATED.format(ref="refs/remotes/origin/not-fetched").replace(
        "steps:\n", "steps:\n  - id: upgrade\n    name: Upgrade\n    run: touch upgraded\n", 1
    )
    world.commit_workflow(gated)
    done = world.run_here(monkeypatch, "--run-id", "nf1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert not (world.repo / "upgraded").exists()
    assert "refs/remotes/origin/not-fetched" in done.stderr
    assert (
        "fix: fetch the trust branch before the run: git fetch --no-tags origin "
        "+refs/heads/not-fetched:refs/remotes/origin/not-fetched"
    ) in done.stderr


def test_a_ci_run_that_would_detach_unsealed_at_a_self_approval_gate_says_so_first(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the record key, a resume in CI refuses a run waiting at a gate that prevents
    self-approval (who started it is known only from the record): the deploy job said nothing,
    and the walkthrough's resume job failed after the approver had signed."""
    _deploy(world)
    done = world.run_here(monkeypatch, "--run-id", "u1", "--detach-on-wait", env={"CI": "true"})
    assert done.returncode == 75, done.stdout + done.stderr
    warning = (
        "warning: without $RUNNER_RECORD_KEY the record is not sealed, and gate `gate` prevents "
        "self-approval: `runner resume` in CI will refuse this run once it detaches there"
    )
    assert warning in done.stdout + done.stderr
    sealed = world.run_here(
        monkeypatch,
        "--run-id",
        "u2",
        "--detach-on-wait",
        env={"CI": "true", "RUNNER_RECORD_KEY": "k" * 64},
    )
    assert sealed.returncode == 75, sealed.stdout + sealed.stderr
    assert "not sealed" not in sealed.stdout + sealed.stderr


GUIDED_ONLY = """\
name: Seed
environments: [production]
approvals:
  trust: {{ref: {ref}, people: trust/people.yml, allowed-signers: trust/allowed_signers}}
  file: {{remote: origin, branch: approvals, path: approvals, poll-seconds: 1}}
guided-failure:
  teams: [trading-desk]
  prevent-self-approval: true
steps:
  - id: upgrade
    name: Upgrade
    run: touch upgraded
"""


def test_guided_failure_questions_are_checked_before_the_first_step_too(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no manual step, the trust ref not fetched went unnoticed until a step failed and
    nobody could be asked; and a CI run that would detach unsealed at such a question was not
    warned, then its resume refused."""
    world.commit_workflow(GUIDED_ONLY.format(ref="refs/remotes/origin/not-fetched"))
    done = world.run_here(monkeypatch, "--run-id", "g1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert not (world.repo / "upgraded").exists()
    assert "step 'Upgrade': cannot read trust file" in done.stderr
    world.commit_workflow(GUIDED_ONLY.format(ref=TRUST_REF))
    done = world.run_here(monkeypatch, "--run-id", "g2", "--detach-on-wait", env={"CI": "true"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "warning: without $RUNNER_RECORD_KEY the record is not sealed, and step `upgrade`'s "
        "guided failure prevents self-approval"
    ) in done.stdout + done.stderr


def test_an_expired_abort_still_aborts(world: World) -> None:
    # an abort that stopped counting when it expired let a run aborted in one CI job go ahead
    # in a later one, resumed from the state folder an earlier job left (attack pass)
    alice, bob = world.keys.alice, world.keys.bob
    request = world.request()
    now = utc_now()
    world.push_signed(world.body(request, alice).encode(), alice)
    expired = world.body(
        request,
        bob,
        decision="abort",
        issued_at=instant(now - timedelta(minutes=2)),
        expires_at=instant(now - timedelta(minutes=1)),
    )
    world.push_signed(expired.encode(), bob, name="gate.bob.json")
    _, verdict = world.judge(request)
    assert verdict.state == "aborted"
