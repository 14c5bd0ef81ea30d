"""An unsealed record in CI picks which evidence it shows (found by a review of issue #17's fixes).

Resume verifies again every decision a passed gate's record lists, but the record chooses the
list: it could leave out Bob's signed abort, or empty ``started_by`` so that the starter's own
approval counted. Without ``RUNNER_RECORD_KEY``, in CI, a gate recorded as passed is refused;
the quorum refuses self-approval when the starter is unknown, however the record says so; and a
carried environment value naming a file of the state folder is refused whatever its name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers.approval_world import World
from helpers.approval_world import sign as sign_raw
from test_record_tampering import ONE_GATE, digest_of, resume, run, step, tamper

from runner.engine import carried_env

SELF_GUARDED = ONE_GATE.replace(
    "      teams: [trading-desk]\n",
    "      teams: [trading-desk]\n      prevent-self-approval: true\n",
    1,
)


def signed(world: World, run_id: str, key: Any, digest: str, **body: Any) -> tuple[bytes, bytes]:
    request = world.request(run_id=run_id, step_id="gate", digest=digest, commit=world.head)
    raw = world.body(request, key, **body).encode()
    return raw, sign_raw(raw, key)


def forge_passed(
    world: World, run_id: str, raw: bytes, sig: bytes, who: str, started_by: Any = None
) -> None:
    """The gate marked passed, listing only ``who``'s (genuine) signed proceed."""

    def change(record: dict[str, Any]) -> None:
        gate = step(record, "gate")
        gate["status"] = "success"
        gate["outcome"] = gate["conclusion"] = "success"
        gate["approval"] = {
            "state": "approved",
            "decided_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "decisions": [
                {
                    "source": "file",
                    "result": "proceed",
                    "username": who,
                    "evidence": {"body": raw.decode(), "signature": sig.decode()},
                }
            ],
        }
        if started_by is not None:
            record["started_by"] = started_by

    tamper(world, run_id, change)


def test_an_abort_left_out_of_an_unsealed_record_does_not_deploy(world: World) -> None:
    digest = digest_of(world.commit_workflow(ONE_GATE))
    run(world, "ab1")
    raw, sig = signed(world, "ab1", world.keys.alice, digest)
    world.push({"approvals/ab1/gate.alice.json": raw, "approvals/ab1/gate.alice.json.sig": sig})
    abort, abort_sig = signed(world, "ab1", world.keys.bob, digest, decision="abort")
    world.push({"approvals/ab1/gate.bob.json": abort, "approvals/ab1/gate.bob.json.sig": abort_sig})
    forge_passed(world, "ab1", raw, sig, "alice")
    done = resume(world, "ab1", env={"CI": "true"})
    out = done.stdout + done.stderr
    assert done.returncode == 5, out
    assert "DEPLOYED" not in out
    assert "gate `gate` is recorded as passed, and an unsealed record can leave out" in out


@pytest.mark.parametrize("started_by", [{}, {"username": ""}])
def test_an_emptied_starter_does_not_let_the_starter_approve(
    world: World, started_by: dict[str, str]
) -> None:
    digest = digest_of(world.commit_workflow(SELF_GUARDED))
    started = world.run("--run-id", "sa1", "--detach-on-wait", env={"RUNNER_ACTOR": "alice"})
    assert started.returncode == 75, started.stdout + started.stderr
    raw, sig = signed(world, "sa1", world.keys.alice, digest)
    forge_passed(world, "sa1", raw, sig, "alice", started_by=started_by)
    for env in ({"CI": "true"}, {}):  # refused in CI as unsealed; elsewhere by the quorum
        done = resume(world, "sa1", env=env)
        out = done.stdout + done.stderr
        assert done.returncode != 0, out
        assert "DEPLOYED" not in out


def test_a_carried_value_naming_a_state_folder_file_is_refused_whatever_its_name(
    tmp_path: Path,
) -> None:
    state = tmp_path / "S"
    state.mkdir()
    env = {
        "AWS_CONFIG_FILE": str(state / "cfg"),  # credential_process runs a command
        "KUBECONFIG": str(state / "k"),  # users[].exec runs a command
        "SSL_CERT_FILE": str(state / "ca.pem"),  # trust a key of one's own
        "DOCKER_CONFIG": str(state),
        "HARMLESS": "/usr/share/doc",
    }
    for sealed in (False, True):
        found = carried_env.problems(env, [], state, sealed=sealed)
        named = sorted(message.split("'")[1] for message in found)
        assert named == ["AWS_CONFIG_FILE", "DOCKER_CONFIG", "KUBECONFIG", "SSL_CERT_FILE"]
