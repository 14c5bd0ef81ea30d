"""The manual step through the engine.

In process, with a fake approval source and a fake clock, for what takes time (timeouts, quorums
gathered over minutes); and through the ``runner`` CLI in a subprocess whose stdin is a pty, for
the terminal prompt as a person uses it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import pwd
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.clock import START, FakeClock
from helpers.environ import host_env
from msgspec import structs

from runner.approvals.request import Interruption, Submission
from runner.engine.start import RunRequest, start_run
from runner.errors import ApprovalError
from runner.logs.text import TextLog
from runner.options import RunOptions
from runner.prepare import prepare

RUNNER = Path(sys.executable).with_name("runner")
USER = pwd.getpwuid(os.geteuid()).pw_name
PEOPLE = f"""\
people:
  - id: u-me
    username: {USER}
    display-name: Pat Operator
    email: pat@example.com
  - id: u-alice
    username: alice
    display-name: Alice Martin
    email: alice@example.com
    ssh-principals: [alice@example.com]
  - id: u-bob
    username: bob
    display-name: Bob Chen
teams:
  ops: [{USER}, alice, bob]
  dba: [bob]
"""

HEADER = """\
name: Manual test
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
  prompt: {}
steps:
"""

# the manual step, then a default step and an always() step that show what they see of it (its
# `ticket` field's output, when it has one: `runner validate` refuses outputs it does not give)
LATER_STEPS_WITH_TICKET = """\
  - id: after
    name: After
    env:
      A: ${{ steps.gate.outputs.approved }}
      N: ${{ steps.gate.outputs.notes }}
      T: ${{ steps.gate.outputs.ticket }}
      RI: ${{ steps.gate.outputs.responsible-user-id }}
      RU: ${{ steps.gate.outputs.responsible-user-username }}
      RD: ${{ steps.gate.outputs.responsible-user-display-name }}
      RE: ${{ steps.gate.outputs.responsible-user-email }}
      OA: "#{Octopus.Action[Gate Check].Output.Manual.Approved}"
      ON: "#{Octopus.Action[Gate Check].Output.Manual.Notes}"
      OT: "#{Octopus.Action[Gate Check].Output.Manual.ticket}"
      OU: "#{Octopus.Action[Gate Check].Output.Manual.ResponsibleUser.Username}"
      OD: "#{Octopus.Action[Gate Check].Output.Manual.ResponsibleUser.DisplayName}"
    run: |
      echo "github=$A|$N|$T|$RI|$RU|$RD|$RE"
      echo "octopus=$OA|$ON|$OT|$OU|$OD"
  - id: finally
    name: Finally
    if: always()
    env:
      ERR: "#{if Octopus.Deployment.Error}#{Octopus.Deployment.Error}#{else}none#{/if}"
      DETAIL: "#{if Octopus.Deployment.ErrorDetail}#{Octopus.Deployment.ErrorDetail}#{/if}"
      OA: "#{Octopus.Action[Gate Check].Output.Manual.Approved}"
    run: |
      echo "finally=[$ERR] [$DETAIL] [$OA]"
"""
LATER_STEPS = LATER_STEPS_WITH_TICKET.replace("${{ steps.gate.outputs.ticket }}", '""').replace(
    '"#{Octopus.Action[Gate Check].Output.Manual.ticket}"', '""'
)


def gate(**manual: Any) -> str:
    lines = ["  - id: gate", "    name: Gate Check", "    manual:"]
    for key, value in manual.items():
        lines.append(f"      {key.replace('_', '-')}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


TICKET_FIELD = [{"name": "ticket", "type": "string", "pattern": "^CHG-[0-9]+$", "required": True}]


def workspace(tmp_path: Path, steps: str) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "approvals").mkdir()
    (tmp_path / "approvals" / "people.yml").write_text(PEOPLE)
    (tmp_path / "deploy.yml").write_text(HEADER + steps)
    return tmp_path


# -- in process, with a fake source and a fake clock ---------------------------------------------


@dataclass
class FakeSource:
    """Submissions appear at given seconds after START; ``down`` seconds it fails to answer."""

    clock: FakeClock
    script: list[tuple[float, Submission]]
    down: tuple[float, float] = (0.0, 0.0)
    # not "prompt": the step hides its status lines while a prompt is asking
    name: str = "server"
    interval: float = 10.0
    cancelled: list[str] = field(default_factory=list)
    registered: list[Interruption] = field(default_factory=list)

    def register(self, request: Interruption) -> None:
        self.registered.append(request)

    def poll(self, request: Interruption) -> list[Submission]:
        if self.down[0] <= self.clock.elapsed < self.down[1]:
            raise ApprovalError("connection refused")
        return [s for at, s in self.script if at <= self.clock.elapsed]

    def cancel(self, request: Interruption, reason: str) -> None:
        self.cancelled.append(reason)

    def instructions(self, request: Interruption) -> list[str]:
        return ["wait for the test"]


def submission(who: str, result: str = "proceed", at: float = 0, **fields: str) -> Submission:
    return Submission(
        source="server",
        result=result,  # type: ignore[arg-type]
        who=who,
        who_kind="login",
        notes=f"{result} by {who}",
        fields=dict(fields),
        submitted_at=(START + timedelta(seconds=at)).isoformat(),
        evidence={"fake": True},
        key=f"fake:{who}:{result}:{at}",
    )


@dataclass
class InProcess:
    code: int
    record: dict[str, Any]
    log: str
    clock: FakeClock
    source: FakeSource
    detached: dict[str, Any] | None = None

    def step(self, step_id: str) -> dict[str, Any]:
        return next(s for s in self.record["steps"] if s["id"] == step_id)


def run_in_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    steps: str,
    script: list[tuple[float, Submission]] = (),  # type: ignore[assignment]
    *,
    down: tuple[float, float] = (0.0, 0.0),
    actor: str = "someone-else",
    start: datetime = START,
    detach_first: bool = False,
) -> InProcess:
    """Run the workflow; with ``detach_first``, detach at the manual step, then go on with the
    recorded run (what ``runner resume`` does: the engine picks up the waiting step)."""
    root = workspace(tmp_path, steps)
    clock = FakeClock(start)
    source = FakeSource(clock, list(script), down)
    monkeypatch.setattr("runner.steps.manual.source_class", lambda name: lambda **_: source)
    monkeypatch.chdir(root)
    environ = host_env(RUNNER_ACTOR=actor)
    prepared = prepare("deploy.yml", "production", (), (), environ)
    out = io.StringIO()
    run = start_run(
        RunRequest(
            prepared=prepared,
            run_id="r1",
            state_dir=root / "state",
            log=TextLog(out),
            environ=environ,
            options=RunOptions(detach_on_wait=detach_first),
        )
    )
    run.clock = clock.now
    run.sleep = clock.sleep
    record_path = root / "state" / "runs" / "r1" / "record.json"
    detached = None
    if detach_first:
        assert run.execute() == 75
        detached = json.loads(record_path.read_text())
        run.options = RunOptions(detach_on_wait=False)
    code = run.execute()
    record = json.loads(record_path.read_text())
    return InProcess(code, record, out.getvalue(), clock, source, detached)


def test_timeout_aborts_with_exit_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_in_process(
        tmp_path, monkeypatch, gate(teams=["ops"], timeout_minutes=2) + LATER_STEPS
    )
    assert result.code == 4
    assert result.record["status"] == "timed-out"
    assert result.record["exit_code"] == 4
    assert result.clock.elapsed == 120.0
    gate_step = result.step("gate")
    assert gate_step["status"] == "failure"
    assert (
        gate_step["error"] == "Manual intervention 'Gate Check' timed out after 2m00s without "
        "a decision"
    )
    assert gate_step["outputs"]["approved"] == "false"
    assert gate_step["outputs"]["notes"] == "timed out"
    assert gate_step["outputs"]["responsible-user-username"] == ""
    assert gate_step["approval"]["state"] == "timed-out"
    assert gate_step["approval"]["decisions"] == []
    assert result.source.cancelled == ["timed-out"]
    assert result.step("after")["status"] == "skipped"
    assert result.step("finally")["status"] == "success"
    assert (
        "finally=[Manual intervention 'Gate Check' timed out after 2m00s without a decision]"
        in result.log
    )
    assert "Run r1 timed out waiting for approval" in result.log


def test_timeout_proceeds_when_the_step_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_in_process(
        tmp_path,
        monkeypatch,
        gate(teams=["ops"], timeout_minutes=2, on_timeout="proceed") + LATER_STEPS,
    )
    assert result.code == 0
    assert result.record["status"] == "success"
    assert result.record["error"] is None
    gate_step = result.step("gate")
    assert gate_step["status"] == "success"
    assert gate_step["outputs"]["approved"] == "false"
    assert gate_step["outputs"]["notes"] == "proceeded on timeout, no approval"
    assert gate_step["octopus"]["Manual.Approved"] == "False"
    assert gate_step["approval"]["state"] == "proceeded-on-timeout"
    assert "warning: Gate Check: proceeded on timeout, no approval" in result.log
    assert result.step("after")["status"] == "success"
    assert "github=false|proceeded on timeout, no approval|||||\n" in result.log
    assert "octopus=False|proceeded on timeout, no approval|||\n" in result.log
    assert "finally=[none] [] [False]" in result.log


def test_timeout_waits_the_whole_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    late = START + timedelta(milliseconds=900)
    result = run_in_process(tmp_path, monkeypatch, gate(timeout_minutes=0.02), start=late)
    assert result.code == 4
    waited = (result.clock.now() - late).total_seconds()
    assert waited == pytest.approx(1.2)  # 1.1 s: the deadline 12:00:02.1 was cut to 12:00:02


def test_quorum_gathered_over_time_names_the_last_approver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = (
        gate(
            teams=["ops", "dba"],
            require=[{"team": "ops", "count": 1}, {"team": "dba", "count": 1}],
            fields=TICKET_FIELD,
        )
        + LATER_STEPS_WITH_TICKET
    )
    script = [
        (30, submission("bob", at=30, ticket="CHG-1")),  # fills ops or dba, not both
        (60, submission("alice", at=60, ticket="CHG-2")),
    ]
    result = run_in_process(tmp_path, monkeypatch, steps, script)
    assert result.code == 0
    assert result.clock.elapsed == 60.0
    gate_step = result.step("gate")
    assert [d["username"] for d in gate_step["approval"]["decisions"]] == ["bob", "alice"]
    assert gate_step["outputs"]["responsible-user-username"] == "alice"
    assert gate_step["outputs"]["ticket"] == "CHG-2"
    assert "Waiting for ops (0/1), dba (0/1)" in result.log
    assert "Waiting for ops (1/1), dba (0/1)" in result.log
    assert (
        "github=true|proceed by alice|CHG-2|u-alice|alice|Alice Martin|alice@example.com"
        in result.log
    )


def test_refusals_logged_once_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = (
        gate(teams=["dba"], prevent_self_approval=True, fields=TICKET_FIELD, timeout_minutes=1)
        + LATER_STEPS_WITH_TICKET
    )
    script = [
        (0, submission("alice", at=0, ticket="CHG-1")),  # not in dba
        (10, submission("bob", at=10, ticket="nope")),  # bad field
        (20, submission("mallory", "abort", at=20)),  # not a person
    ]
    result = run_in_process(tmp_path, monkeypatch, steps, script, actor="bob")
    assert result.code == 4
    refused = result.step("gate")["approval"]["refused"]
    assert [r["reason"] for r in refused] == [
        "proceed by alice via server: alice is not in team dba",
        "proceed by bob via server: bob started this run and may not approve it",
        "abort by mallory via server: login 'mallory' is not in the people file",
    ]
    assert [r["who"] for r in refused] == ["alice", "bob", "mallory"]
    assert result.log.count("warning: refused ") == 3


def test_detached_run_goes_on_with_recorded_submissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = gate(teams=["ops"], require=[{"team": "ops", "count": 2}]) + LATER_STEPS
    script = [(0, submission("alice", at=0)), (50, submission("bob", at=50))]
    result = run_in_process(tmp_path, monkeypatch, steps, script, detach_first=True)
    assert result.detached is not None
    assert result.detached["status"] == "waiting"
    waiting = next(s for s in result.detached["steps"] if s["id"] == "gate")
    assert waiting["status"] == "waiting"
    assert [s["who"] for s in waiting["approval"]["submissions"]] == ["alice"]
    assert result.code == 0
    assert [d["username"] for d in result.step("gate")["approval"]["decisions"]] == [
        "alice",
        "bob",
    ]


def test_refusal_recorded_once_across_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = gate(teams=["dba"]) + LATER_STEPS
    script = [(0, submission("alice", at=0)), (100, submission("bob", at=100))]
    result = run_in_process(tmp_path, monkeypatch, steps, script, detach_first=True)
    assert result.code == 0
    reason = "proceed by alice via server: alice is not in team dba"
    assert result.detached is not None
    detached_gate = next(s for s in result.detached["steps"] if s["id"] == "gate")
    assert [r["reason"] for r in detached_gate["approval"]["refused"]] == [reason]
    assert [r["reason"] for r in result.step("gate")["approval"]["refused"]] == [reason]


def test_source_failure_is_never_a_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = gate(teams=["ops"], timeout_minutes=5) + LATER_STEPS
    script = [(0, submission("alice", at=0))]
    result = run_in_process(tmp_path, monkeypatch, steps, script, down=(0, 25))
    assert result.code == 0
    assert result.clock.elapsed == 30.0
    # polls at 0, 10 and 20 s fail; the same failure is logged once
    assert (
        result.log.count(
            "approval source server did not answer: connection refused (still waiting; a failure "
            "is never a decision)"
        )
        == 1
    )


def test_text_that_cannot_be_rendered_fails_the_step_not_the_run_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the build's output is not JSON: the manual step fails where it runs, with the expression's
    # error and its place, after the build ran; nobody is asked to approve a text that is not there
    build = "  - id: build\n    name: Build\n    run: echo 'meta=oops' >> \"$RUNNER_OUTPUT\"\n"
    steps = build + gate(instructions="Deploy ${{ fromJSON(steps.build.outputs.meta).version }}")
    result = run_in_process(tmp_path, monkeypatch, steps, [(0, submission("alice"))])
    assert result.code != 0
    assert result.step("build")["status"] == "success"
    assert result.step("gate")["status"] == "failure"
    assert "fromJson" in result.step("gate")["error"]
    assert result.source.registered == []


def test_a_field_label_that_cannot_be_rendered_is_named_at_its_own_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = "  - id: build\n    name: Build\n    run: echo 'meta=oops' >> \"$RUNNER_OUTPUT\"\n"
    steps = build + gate(
        title="Ship ${{ steps.build.outcome }}",
        fields=[
            {
                "name": "ticket",
                "type": "string",
                "label": "T ${{ fromJSON(steps.build.outputs.meta).x }}",
            }
        ],
    )
    result = run_in_process(tmp_path, monkeypatch, steps, [(0, submission("alice"))])
    assert result.code != 0
    # the label's `${{` (the title's is on the line above the fields)
    lines = (tmp_path / "deploy.yml").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if '"label": "T ${{' in text)
    column = lines[line - 1].index("${{") + 1
    assert f"deploy.yml:{line}:{column}: Error parsing JSON" in result.step("gate")["error"]


def test_abort_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = [(0, submission("alice", at=0)), (5, submission("bob", "abort", at=5))]
    steps = gate(teams=["ops"], require=[{"team": "ops", "count": 2}]) + LATER_STEPS
    result = run_in_process(tmp_path, monkeypatch, steps, script)
    assert result.code == 3
    assert result.record["status"] == "aborted"
    assert result.record["error"] == {
        "message": "Manual intervention 'Gate Check' was aborted by Bob Chen",
        "detail": "abort by bob",
    }
    assert result.step("gate")["outputs"]["responsible-user-username"] == "bob"


# -- the CLI, with a pty as stdin ----------------------------------------------------------------


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str
    root: Path

    def record(self, run_id: str = "t1") -> dict[str, Any]:
        path = self.root / "state" / "runs" / run_id / "record.json"
        return json.loads(path.read_text())  # type: ignore[no-any-return]

    def step(self, step_id: str) -> dict[str, Any]:
        return next(s for s in self.record()["steps"] if s["id"] == step_id)


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    master, slave = pty.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def run_cli(
    root: Path, stdin: int, *extra: str, typed: str = "", master: int | None = None
) -> Finished:
    if typed:
        assert master is not None
        os.write(master, typed.encode())  # typed ahead: the pty keeps it until the prompt reads
    completed = subprocess.run(
        [
            str(RUNNER),
            "run",
            "deploy.yml",
            "--env",
            "production",
            "--state-dir",
            "state",
            "--run-id",
            "t1",
            *extra,
        ],
        cwd=root,
        stdin=stdin,
        capture_output=True,
        text=True,
        env=host_env(),
        timeout=60,
        check=False,
    )
    return Finished(completed.returncode, completed.stdout, completed.stderr, root)


def test_text_that_reads_an_earlier_steps_output_is_rendered_when_the_step_runs(
    tmp_path: Path, terminal: tuple[int, int]
) -> None:
    # what the person is asked names what the build made; the dry run a run makes of its manual
    # steps before the first step cannot know it (outputs are empty there, and fromJSON('') is
    # an error): that refused the whole run before its first step
    master, slave = terminal
    build = (
        "  - id: build\n"
        "    name: Build\n"
        '    run: echo \'meta={"version":"1.2.3"}\' >> "$RUNNER_OUTPUT"\n'
    )
    version = "${{ fromJSON(steps.build.outputs.meta).version }}"
    steps = build + gate(instructions=f"Deploy {version} to production?", title=f"Ship {version}")
    done = run_cli(workspace(tmp_path, steps), slave, master=master, typed="p\nshipped\n")
    assert done.code == 0, done.stdout + done.stderr
    assert "Ship 1.2.3: you are" in done.stderr  # the prompt
    assert "Deploy 1.2.3 to production?" in done.stdout  # the log
    assert done.step("gate")["approval"]["state"] == "approved"


def test_cli_proceed(tmp_path: Path, terminal: tuple[int, int]) -> None:
    master, slave = terminal
    root = workspace(
        tmp_path,
        gate(teams=["ops"], timeout_minutes=10, fields=TICKET_FIELD) + LATER_STEPS_WITH_TICKET,
    )
    done = run_cli(root, slave, master=master, typed="p\ntraders told\nCHG-x\nCHG-7\n")
    assert done.code == 0, done.stdout + done.stderr
    assert "  must match ^CHG-[0-9]+$" in done.stderr  # the invalid ticket was asked again
    record = done.record()
    assert record["status"] == "success"
    assert record["exit_code"] == 0
    gate_step = done.step("gate")
    approval = gate_step["approval"]
    assert approval["state"] == "approved"
    (decision,) = approval["decisions"]
    submitted = decision.pop("submitted_at")
    assert decision == {
        "result": "proceed",
        "source": "prompt",
        "person_id": "u-me",
        "username": USER,
        "display_name": "Pat Operator",
        "email": "pat@example.com",
        "notes": "traders told",
        "fields": {"ticket": "CHG-7"},
        "evidence": {"terminal": True, "user": USER},
    }
    assert record["started_at"] <= submitted <= gate_step["finished_at"]
    assert approval["decided_at"]
    assert approval["refused"] == []
    assert gate_step["outputs"] == {
        "approved": "true",
        "notes": "traders told",
        "responsible-user-id": "u-me",
        "responsible-user-username": USER,
        "responsible-user-display-name": "Pat Operator",
        "responsible-user-email": "pat@example.com",
        "ticket": "CHG-7",
    }
    assert gate_step["octopus"] == {
        "Manual.Notes": "traders told",
        "Manual.Approved": "True",
        "Manual.ResponsibleUser.Id": "u-me",
        "Manual.ResponsibleUser.Username": USER,
        "Manual.ResponsibleUser.DisplayName": "Pat Operator",
        "Manual.ResponsibleUser.EmailAddress": "pat@example.com",
        "Manual.ticket": "CHG-7",
    }
    assert f"github=true|traders told|CHG-7|u-me|{USER}|Pat Operator|pat@example.com" in done.stdout
    assert f"octopus=True|traders told|CHG-7|{USER}|Pat Operator" in done.stdout
    assert "finally=[none] [] [True]" in done.stdout
    assert "  proceed by Pat Operator via prompt: traders told" in done.stdout


def test_cli_abort(tmp_path: Path, terminal: tuple[int, int]) -> None:
    master, slave = terminal
    root = workspace(tmp_path, gate(teams=["ops"], fields=TICKET_FIELD) + LATER_STEPS_WITH_TICKET)
    done = run_cli(root, slave, master=master, typed="a\n\nwindow open\n")
    assert done.code == 3, done.stdout + done.stderr
    assert "Notes are required to abort. Notes: " in done.stderr
    record = done.record()
    assert record["status"] == "aborted"
    assert record["error"] == {
        "message": "Manual intervention 'Gate Check' was aborted by Pat Operator",
        "detail": "window open",
    }
    assert [(s["id"], s["status"]) for s in record["steps"]] == [
        ("gate", "failure"),
        ("after", "skipped"),
        ("finally", "success"),
    ]
    assert done.step("after")["reason"] == "the deployment has failed"
    assert done.step("gate")["approval"]["decisions"][0]["result"] == "abort"
    assert done.step("gate")["outputs"]["approved"] == "false"
    assert done.step("gate")["outputs"]["notes"] == "window open"
    assert "ticket" not in done.step("gate")["outputs"]  # an abort gives no field values
    assert "github=" not in done.stdout
    assert (
        "finally=[Manual intervention 'Gate Check' was aborted by Pat Operator] [window open] "
        "[False]" in done.stdout
    )


def test_cli_self_approval_at_the_prompt_is_refused_before_anything_runs(
    tmp_path: Path, terminal: tuple[int, int]
) -> None:
    """The person who started the run is the only one at the terminal: the prompt would take a
    decision, notes and fields, refuse them and wait to the timeout. The run is refused before
    its first step instead, saying who may answer; nothing is asked, nothing recorded."""
    master, slave = terminal
    root = workspace(
        tmp_path,
        gate(teams=["ops"], prevent_self_approval=True, timeout_minutes=0.02) + LATER_STEPS,
    )
    done = run_cli(root, slave, master=master, typed="p\nmy own change\n")
    assert done.code == 1, done.stdout + done.stderr
    assert done.stdout == ""
    assert (
        f"  step 'Gate Check': no approval source can ask here (prompt: you ({USER}) started "
        "this run, and it prevents self-approval; may answer: ops ("
    ) in done.stderr
    assert "Proceed or abort?" not in done.stderr
    assert not (root / "state" / "runs" / "t1").exists()


def test_cli_step_with_teams_cannot_be_skipped(tmp_path: Path) -> None:
    root = workspace(tmp_path, gate(teams=["ops"]) + LATER_STEPS)
    done = run_cli(root, subprocess.DEVNULL, "--skip", "gate")
    assert done.code == 2
    assert (
        done.stderr == "error: --skip gate: step `gate` cannot be skipped: its manual step "
        "names teams\n"
    )
    assert not (root / "state" / "runs" / "t1").exists()


def test_cli_step_with_a_quorum_cannot_be_skipped(tmp_path: Path) -> None:
    root = workspace(tmp_path, gate(require=[{"team": "ops", "count": 2}]) + LATER_STEPS)
    done = run_cli(root, subprocess.DEVNULL, "--skip", "gate")
    assert done.code == 2, done.stdout
    assert "cannot be skipped" in done.stderr


def test_cli_step_without_teams_can_be_skipped(tmp_path: Path) -> None:
    root = workspace(tmp_path, gate(title="Anyone") + LATER_STEPS)
    done = run_cli(root, subprocess.DEVNULL, "--skip", "gate")
    assert done.code == 0, done.stdout + done.stderr
    assert done.step("gate")["status"] == "skipped"
    assert done.step("gate")["reason"] == "skipped with --skip"


def test_cli_prompt_without_a_terminal_fails_before_the_first_step(tmp_path: Path) -> None:
    """A prompt-only step without a terminal used to fail only when its turn came, after the
    steps before it had run; now nothing runs and the error names the step and the fix."""
    root = workspace(tmp_path, gate(teams=["ops"]) + LATER_STEPS)
    done = run_cli(root, subprocess.DEVNULL)
    assert done.code == 1
    assert done.stdout == ""
    assert done.stderr == (
        "error: manual steps that may run cannot be decided here, so nothing was run:\n"
        "  step 'Gate Check': no approval source can ask here (prompt: stdin is not a "
        "terminal)\n"
        "    fix: configure `approvals.file` (signed approval files) or `approvals.server` for "
        "CI, or run on a terminal as one of the approvers\n"
    )
    assert not (root / "state" / "runs" / "t1").exists()


def test_an_approvers_notes_quoting_a_secret_are_masked_in_every_record_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a newcomer pass: the decisions' notes were masked, but the submissions a gate
    keeps (while it waits, and once decided) held an approver's notes and fields in clear in
    `record.json` and `events.jsonl`, which CI uploads as an artifact."""
    secret = "S3cret-quoted-9f1c"
    masker_step = f'  - id: mask\n    name: Mask\n    run: echo "::add-mask::{secret}"\n'
    why = [{"name": "why", "type": "string"}]
    steps = masker_step + gate(teams=["ops"], require=[{"team": "ops", "count": 2}], fields=why)

    def quoting(who: str, at: float) -> Submission:
        return structs.replace(
            submission(who, at=at), notes=f"ok, the key is {secret}", fields={"why": secret}
        )

    script = [(0, quoting("alice", 0)), (50, quoting("bob", 50))]
    result = run_in_process(tmp_path, monkeypatch, steps, script, detach_first=True)
    assert result.code == 0, result.log
    waiting = next(s for s in result.detached["steps"] if s["id"] == "gate")  # type: ignore[index]
    assert [s["notes"] for s in waiting["approval"]["submissions"]] == ["ok, the key is ***"]
    folder = tmp_path / "state" / "runs" / "r1"
    for path in folder.iterdir():
        if path.is_file():
            assert secret not in path.read_text(), path.name
    assert secret not in result.log


def test_a_resume_without_a_terminal_leaves_a_prompt_gate_waiting(
    tmp_path: Path, terminal: tuple[int, int]
) -> None:
    """Found by a newcomer pass: a run detached at a gate only the terminal can decide, then
    resumed from a script (no terminal), failed the gate for want of a source, ran the
    failure's steps, and could never be resumed again. Now refused before anything changes,
    as `runner run` refuses, and resumable on a terminal afterwards. (The detach itself asked
    the question at the terminal and exited under it.)"""
    master, slave = terminal
    root = workspace(tmp_path, gate(teams=["ops"]) + LATER_STEPS)
    detached = run_cli(root, slave, "--detach-on-wait")
    assert detached.code == 75, detached.stdout + detached.stderr
    # nobody could answer: the run ends at once (it asked, and exited under its question)
    assert "Proceed or abort?" not in detached.stdout + detached.stderr
    assert f"answer the prompt when the run is resumed on a terminal (as {USER})" in (
        detached.stdout
    )
    resume = [str(RUNNER), "resume", "t1", "--state-dir", "state"]
    refused = subprocess.run(
        resume,
        cwd=root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=host_env(),
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "prompt: stdin is not a terminal" in said
    assert "run t1 is still waiting" in said
    assert detached.record()["status"] == "waiting"
    assert detached.step("gate")["status"] == "waiting"
    assert detached.step("after")["status"] == "pending"
    os.write(master, b"p\nafter all\n")
    done = subprocess.run(
        resume,
        cwd=root,
        stdin=slave,
        capture_output=True,
        text=True,
        env=host_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert detached.record()["status"] == "success"


def test_a_newcomer_not_in_the_people_file_is_told_which_file_and_what_to_add(
    tmp_path: Path, terminal: tuple[int, int]
) -> None:
    """Found by a newcomer pass: "you (root) are not in the people file" named no file, and
    the README's way to try the gate is to add yourself to it."""
    master, slave = terminal
    root = workspace(tmp_path, gate(teams=["ops"]) + LATER_STEPS)
    people = root / "approvals" / "people.yml"
    people.write_text(PEOPLE.replace(USER, "someone-else"))
    done = run_cli(root, slave, master=master)
    assert done.code == 1
    assert (
        f"you ({USER}) are not in the people file (approvals/people.yml; to answer here, add "
        f"a person with `username: {USER}` to a team that may)"
    ) in done.stderr


def test_a_missing_people_file_is_named_with_a_fix_that_exists(tmp_path: Path) -> None:
    """Read from the working tree there is no ref: "fix the trust files on that ref" was no
    help for a mistyped path."""
    root = workspace(tmp_path, gate(teams=["ops"]) + LATER_STEPS)
    (root / "deploy.yml").write_text(
        (root / "deploy.yml").read_text().replace("approvals/people.yml", "approvals/peeple.yml")
    )
    done = subprocess.run(
        [str(RUNNER), "plan", "deploy.yml", "--env", "production"],
        cwd=root,
        capture_output=True,
        text=True,
        env=host_env(),
        timeout=60,
        check=False,
    )
    assert "cannot read trust file approvals/peeple.yml" in done.stdout
    assert "fix: create the file, or correct its path under the workflow's" in done.stdout
