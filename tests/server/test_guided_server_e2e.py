"""Guided failure through the approval server, end to end (issue 21): `runner server` in a
subprocess on a SQLite file, `runner run` in a subprocess with a step that fails, an approver
deciding retry, skip or fail through the server's API.

Each choice while the run waits; and a CI job that detaches at the failed step (exit 75), a
decision made on the server meanwhile, and a later job's ``runner resume --server`` on an empty
state folder going on with it (a retry runs the step again there, a skip goes on past it).

The tests share one server (``module_world`` of ``helpers.server_e2e``), each with a workspace
and a run id of its own.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from typing import Any

import pytest
import requests
from helpers.cli import cli
from helpers.server_e2e import RUNNER, WAIT, World, finish, host_env, step

WORKFLOW = """\
name: Guided server end to end
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
  server:
    url: URL
    token-env: RUNNER_SERVER_TOKEN
guided-failure:
  teams: [trading-desk]
  timeout-minutes: 5
steps:
  - id: flaky
    name: Flaky
    run: |
      n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count
      echo "attempt $n"
      if [ "$n" -ge 2 ]; then echo passed; exit 0; fi
      exit 3
  - id: after
    name: After
    env:
      CODE: "#{Octopus.Step[Flaky].Status.Code}"
      DEC: "#{Octopus.Action[Flaky].Output.Guided.Decision}"
      BY: "#{Octopus.Action[Flaky].Output.Guided.DecidedBy}"
      GN: ${{ steps.flaky.outputs.guided-notes }}
    run: echo "after=$CODE|$DEC|$BY|$GN"
"""


@pytest.fixture
def world(shared_world: World) -> World:
    """A workspace with the workflow, and a run id of its own, on the module's server."""
    (shared_world.root / "deploy.yml").write_text(WORKFLOW.replace("URL", shared_world.server.url))
    return shared_world


def first(world: World) -> str:
    """The id of the question about the flaky step's first attempt."""
    return f"{world.run_id}--flaky@attempt-1"


def wait_for(world: World, interruption_id: str, run: subprocess.Popen[str] | None) -> Any:
    """The interruption's view once the server holds it, waiting."""
    deadline = time.monotonic() + WAIT
    while True:
        with contextlib.suppress(requests.RequestException):
            answer = world.api("GET", "/interruptions", params={"pending": "true"})
            if answer.status_code == 200:
                found = [v for v in answer.json() if v["id"] == interruption_id]
                if found:
                    return found[0]
        if run is not None and run.poll() is not None:
            out, err = run.communicate()
            raise AssertionError(f"the run ended ({run.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{interruption_id} did not appear on the server")
        time.sleep(0.05)


def decide(world: World, interruption_id: str, choice: str, notes: str, who: str = "alice") -> None:
    """What an approver's browser or script does: take the question, then answer it."""
    taken = world.api("PUT", f"/interruptions/{interruption_id}/responsible", who, json={})
    assert taken.status_code == 200, taken.text
    answer = world.api(
        "POST",
        f"/interruptions/{interruption_id}/submit",
        who,
        json={"result": choice, "notes": notes, "fields": {}},
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("choice", "code", "after"),
    [
        ("retry", 0, "after=Succeeded|Retry|alice|flaky network"),
        ("skip", 0, "after=Failed|Skip|alice|known flaky"),
        ("fail", 1, None),
    ],
)
def test_each_choice_made_on_the_server_while_the_run_waits(
    world: World, choice: str, code: int, after: str | None
) -> None:
    notes = {"retry": "flaky network", "skip": "known flaky", "fail": "roll back"}[choice]
    with world.running() as run:
        view = wait_for(world, first(world), run)
        request = view["request"]
        assert (request["kind"], request["attempt"]) == ("guided-failure", 1)
        assert request["choices"] == ["retry", "skip", "fail"]
        assert request["failure"]["exit_code"] == 3
        assert request["failure"]["log_tail"][-1] == "attempt 1"
        decide(world, first(world), choice, notes)
        returned, out, err = finish(run)
    assert returned == code, out + err
    record = world.record()
    flaky = step(record, "flaky")
    (decision,) = flaky["guided"]["decisions"]
    assert (decision["choice"], decision["source"], decision["username"], decision["notes"]) == (
        choice,
        "server",
        "alice",
        notes,
    )
    assert decision["evidence"]["server"] == world.server.url
    assert (world.root / "count").read_text().strip() == ("2" if choice == "retry" else "1")
    if after is not None:
        assert after in out
        assert step(record, "after")["status"] == "success"
    else:
        assert record["status"] == "failure"
        assert flaky["error"] == "exit code 3; the deployment was failed by Alice Martin: roll back"
        assert step(record, "after")["status"] == "skipped"
    assert world.api("GET", f"/interruptions/{first(world)}").json()["state"] in (
        "approved",
        "aborted",
    )
    # the decision is in the server's audit chain, which still verifies
    code_export, exported = cli("server", "--database", world.server.database, "audit", "export")
    assert code_export == 0
    entries = [json.loads(line) for line in exported.splitlines()]
    submitted = [
        e for e in entries if e["kind"] == "submitted" and e["interruption_id"] == first(world)
    ]
    assert [(e["actor"], e["data"]["result"], e["data"]["notes"]) for e in submitted] == [
        ("alice", choice, notes)
    ]
    assert cli("server", "--database", world.server.database, "audit", "verify")[0] == 0
    world.assert_token_hidden(out, err)


@pytest.mark.parametrize(
    ("choice", "count", "after"),
    [
        ("retry", "2", "after=Succeeded|Retry|bob|try again"),
        ("skip", "1", "after=Failed|Skip|bob|known flaky"),
    ],
)
def test_a_ci_job_detaches_at_the_failure_and_a_later_one_resumes_with_the_servers_decision(
    world: World, choice: str, count: str, after: str
) -> None:
    notes = {"retry": "try again", "skip": "known flaky"}[choice]
    code, out, err = finish(world.start_run("--detach-on-wait"))
    assert code == 75, out + err
    assert world.record()["status"] == "waiting"
    wait_for(world, first(world), None)
    # nobody decided yet: the next job detaches again, without running the step
    again = resume(world, "EMPTY")
    assert again.returncode == 75, again.stdout + again.stderr
    assert (world.root / "count").read_text().strip() == "1"
    decide(world, first(world), choice, notes, who="bob")
    resumed = resume(world, "LATER")
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert after in output
    assert (world.root / "count").read_text().strip() == count
    record = world.record("LATER")
    assert record["status"] == "success"
    flaky = step(record, "flaky")
    (decision,) = flaky["guided"]["decisions"]
    assert (decision["attempt"], decision["choice"], decision["username"]) == (1, choice, "bob")
    assert flaky["status"] == ("success" if choice == "retry" else "failure")
    shown = subprocess.run(
        [RUNNER, "runs", "show", world.run_id, "--state-dir", "LATER"],
        cwd=world.root,
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert (
        f"guided failure: attempt 1 failed (exit code 3): {choice} by Bob Chen (bob) via server"
        in shown.stdout
    ), shown.stdout + shown.stderr
    world.assert_token_hidden(out, err, again.stdout, again.stderr, output)


def resume(world: World, state: str) -> subprocess.CompletedProcess[str]:
    """A CI job's ``runner resume``: the record from the server, detaching if still waiting."""
    return subprocess.run(
        [
            RUNNER,
            "resume",
            world.run_id,
            "--state-dir",
            state,
            "--server",
            world.server.url,
            "--detach-on-wait",
        ],
        cwd=world.root,
        env=host_env(RUNNER_SERVER_TOKEN=world.runner_token),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


def test_a_skip_decided_on_the_server_is_fetched_again_when_a_later_job_resumes(
    world: World,
) -> None:
    """A skip made on the server, then a gate the run detaches at: the job that resumes past the
    gate verifies the skip again from the server's own row (as it does the gate's approval)."""
    gate = (
        "  - id: gate\n    name: Gate Check\n    manual:\n      teams: [trading-desk]\n"
        "  - id: after\n"
    )
    (world.root / "deploy.yml").write_text(
        WORKFLOW.replace("URL", world.server.url).replace("  - id: after\n", gate, 1)
    )
    code, out, err = finish(world.start_run("--detach-on-wait"))
    assert code == 75, out + err
    wait_for(world, first(world), None)
    decide(world, first(world), "skip", "known flaky")
    at_gate = resume(world, "S")
    assert at_gate.returncode == 75, at_gate.stdout + at_gate.stderr
    assert step(world.record(), "flaky")["guided"]["decisions"][0]["choice"] == "skip"
    decide(world, world.interruption, "proceed", "desk told", who="bob")
    done = resume(world, "EMPTY")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "step `flaky`: its skip re-verified from its evidence" in output
    assert "after=Failed|Skip|alice|known flaky" in output
    assert (world.root / "count").read_text().strip() == "1"
