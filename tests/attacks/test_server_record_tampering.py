"""The approval server's copy of a run record is not evidence either (#17).

Any runner token may ``PUT /api/v1/runs/ID``. A record whose gate says "approved by alice through
the server", resumed with ``runner resume ID --server URL`` on an empty machine, must be checked
against the server's own decision rows for that interruption: without them, nothing deploys.
Real ``runner server`` and ``runner resume`` subprocesses on loopback.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import server_e2e
from helpers.server_e2e import ID, World

TWO_GATES = server_e2e.WORKFLOW.replace(
    "  - id: after\n",
    "  - id: gate2\n    name: Second look\n    manual:\n      teams: [trading-desk]\n"
    "  - id: after\n",
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[World]:
    with server_e2e.started(tmp_path) as world:
        yield world


def resume(world: World, state: str) -> subprocess.CompletedProcess[str]:
    return world.resume(state, "--detach-on-wait")


def put_record(world: Any, record: dict[str, Any]) -> bool:
    """Store ``record`` as the server's copy with the runner token; whether the server took it
    (a server may refuse to rewrite a finished step: the runner must not rely on it)."""
    answer = requests.put(
        f"{world.server.url}/api/v1/runs/r1",
        json=record,
        headers={"Authorization": f"Bearer {world.runner_token}"},
        timeout=10,
    )
    assert answer.status_code < 500, answer.text
    return bool(answer.status_code < 300)


def detached(world: Any) -> dict[str, Any]:
    code, out, err = server_e2e.finish(world.start_run("--detach-on-wait"))
    assert code == 75, out + err
    copy: dict[str, Any] = world.api("GET", "/runs/r1").json()
    return copy


def test_a_server_record_saying_approved_without_server_rows_does_not_deploy(
    served: Any,
) -> None:
    served.workflow(served.server.url, timeout=5)
    record = detached(served)
    gate = server_e2e.step(record, "gate")
    gate.update(status="success", outcome="success", conclusion="success")
    gate["approval"]["state"] = "approved"
    gate["approval"]["decisions"] = [
        {
            "result": "proceed",
            "source": "server",
            "username": "alice",
            "display_name": "Alice Martin",
            "notes": "forged",
            "submitted_at": record["started_at"],
            "evidence": {"server": served.server.url, "interruption": ID, "submission": 1},
        }
    ]
    gate["octopus"] = {"Manual.ResponsibleUser.DisplayName": "Alice Martin"}
    assert put_record(served, record)
    done = resume(served, "EMPTY")
    output = done.stdout + done.stderr
    assert "decided-by=" not in output, output
    assert done.returncode == 5, output
    assert "the approval server has no decision proceed by alice for interruption r1--gate" in (
        output
    )
    served.assert_token_hidden(done.stdout, done.stderr)


def test_a_gate_the_server_approved_is_reverified_from_its_rows(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (served.root / "deploy.yml").write_text(TWO_GATES.format(url=served.server.url, timeout=5))
    detached(served)
    served.approve(monkeypatch, "alice", "first look")
    first = resume(served, "ONE")
    assert first.returncode == 75, first.stdout + first.stderr
    # another machine, from the server's copy: the first gate is checked against the server
    second = resume(served, "TWO")
    output = second.stdout + second.stderr
    assert second.returncode == 75, output
    assert "gate `gate`: decisions re-verified from their evidence" in output
    # the same copy, with the first gate's decision rewritten to someone else: refused
    record = served.api("GET", "/runs/r1").json()
    decision = server_e2e.step(record, "gate")["approval"]["decisions"][0]
    decision["username"] = "bob"
    if put_record(served, record):
        third = resume(served, "THREE")
        assert third.returncode == 5, third.stdout + third.stderr
        assert "no decision proceed by bob" in third.stdout + third.stderr


def test_a_stale_server_copy_is_not_resumed_into_finished_steps_again(
    served: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose record grew past the server's 4 MiB (steps' outputs) could not copy it when
    it detached: the server kept the copy made at its start, and `runner resume --server` on an
    empty machine ran the six finished steps again, then asked its gate again (the approval
    given meanwhile was for the first request: the run failed). A copy still `running` is
    refused."""
    world = served
    world.workflow(world.server.url, timeout=1)
    path = world.root / "deploy.yml"
    steps = "".join(
        f"  - id: big{i}\n    name: Big{i}\n    run: |\n"
        "      { printf 'o='; head -c 900000 /dev/zero | tr '\\0' y; echo; }"
        f' >> "$RUNNER_OUTPUT"\n      echo ran >> {world.root / "ran.txt"}\n'
        for i in range(6)
    )
    path.write_text(path.read_text().replace("steps:\n", "steps:\n" + steps, 1))
    with world.running("--detach-on-wait") as run:
        out, err = run.communicate(timeout=60)
    assert run.returncode == 75, out + err
    assert "could not copy the record to the approval server" in out + err
    world.approve(monkeypatch)
    done = world.resume("EMPTY")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "was made while it was running" in done.stderr
    assert (world.root / "ran.txt").read_text().count("ran") == 6  # none ran again
    again = world.resume("S")  # where its state folder is, it goes on
    assert again.returncode == 0, again.stdout + again.stderr
    assert (world.root / "ran.txt").read_text().count("ran") == 6
