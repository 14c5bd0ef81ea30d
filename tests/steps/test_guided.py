"""Guided failure through the engine (issue 21): a failed step asks retry, skip or fail.

In process with a fake source (submissions bound to the attempt they answer) and a fake clock;
through the ``runner`` CLI with a pty as stdin for the terminal prompt.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.clock import START, FakeClock
from test_manual import (
    PEOPLE,
    USER,
    host_env,
    run_cli,
)

from runner.approvals.request import Interruption, Submission
from runner.engine.start import RunRequest, start_run
from runner.logs.text import TextLog
from runner.options import RunOptions
from runner.prepare import prepare

HEADER = """\
name: Guided test
environments: [production]
approvals:
  trust:
    people: approvals/people.yml
  prompt: {}
variables:
  Token:
    value: s3cr3t-t0ken-value
    secret: true
"""

#: fails (exit 3, after printing the secret) until the file ``ok`` exists; the attempt count
#: is kept in ``count``
FLAKY = """\
  - id: flaky
    name: Flaky
    run: |
      n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count
      echo "token is #{Token}"
      echo "attempt $n"
      if [ -e ok ] || [ "$n" -ge "${PASS_AT:-99}" ]; then echo passed; exit 0; fi
      exit 3
"""

LATER = """\
  - id: after
    name: After
    env:
      CODE: "#{Octopus.Step[Flaky].Status.Code}"
      DEC: "#{Octopus.Action[Flaky].Output.Guided.Decision}"
      BY: "#{Octopus.Action[Flaky].Output.Guided.DecidedBy}"
      ATT: "#{Octopus.Action[Flaky].Output.Guided.Attempt}"
      OUT: ${{ steps.flaky.outcome }}
      CON: ${{ steps.flaky.conclusion }}
      GD: ${{ steps.flaky.outputs.guided-decision }}
      GN: ${{ steps.flaky.outputs.guided-notes }}
    run: echo "after=$CODE|$DEC|$BY|$ATT|$OUT|$CON|$GD|$GN"
  - id: finally
    name: Finally
    if: always()
    env:
      ERR: "#{if Octopus.Deployment.Error}#{Octopus.Deployment.Error}#{else}none#{/if}"
      DETAIL: "#{if Octopus.Deployment.ErrorDetail}#{Octopus.Deployment.ErrorDetail}#{/if}"
    run: echo "finally=[$ERR] [$DETAIL]"
"""


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    master, slave = pty.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def guided(**settings: Any) -> str:
    lines = ["guided-failure:"]
    for key, value in settings.items():
        lines.append(f"  {key.replace('_', '-')}: {json.dumps(value)}")
    return "\n".join(lines) + "\n" if settings else "guided-failure: true\n"


def workspace(tmp_path: Path, top: str, steps: str) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "approvals").mkdir()
    (tmp_path / "approvals" / "people.yml").write_text(PEOPLE)
    (tmp_path / "deploy.yml").write_text(HEADER + top + "steps:\n" + steps)
    return tmp_path


def decide(
    who: str, result: str, attempt: int, at: float = 0, notes: str = "", step: str = ""
) -> Submission:
    """``who``'s ``result`` about ``attempt`` (of step ``step`` only, when given)."""
    return Submission(
        source="server",
        result=result,  # type: ignore[arg-type]
        who=who,
        who_kind="login",
        notes=notes or f"{result} by {who}",
        submitted_at=(START + timedelta(seconds=at)).isoformat(),
        evidence={"fake": True, "attempt": attempt, "step": step},
        key=f"fake:{who}:{result}:{attempt}:{step}",
    )


@dataclass
class AttemptSource:
    """A fake server: each submission answers one attempt's question, seen from a moment on."""

    clock: FakeClock
    script: list[tuple[float, Submission]]
    name: str = "server"
    interval: float = 10.0
    asked: list[Interruption] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def register(self, request: Interruption) -> None:
        self.asked.append(request)

    def poll(self, request: Interruption) -> list[Submission]:
        return [
            s
            for at, s in self.script
            if at <= (self.clock.now() - START).total_seconds()
            and s.evidence["attempt"] == request.attempt
            and s.evidence["step"] in ("", request.step_id)
        ]

    def cancel(self, request: Interruption, reason: str) -> None:
        self.cancelled.append(reason)

    def instructions(self, request: Interruption) -> list[str]:
        return ["wait for the test"]


@dataclass
class Ran:
    code: int
    record: dict[str, Any]
    log: str
    source: AttemptSource
    root: Path
    detached: dict[str, Any] | None = None

    def step(self, step_id: str) -> dict[str, Any]:
        return next(s for s in self.record["steps"] if s["id"] == step_id)


def run_guided(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    top: str,
    steps: str,
    script: list[tuple[float, Submission]],
    *,
    detach_first: bool = False,
    env: dict[str, str] | None = None,
) -> Ran:
    root = workspace(tmp_path, top, steps)
    clock = FakeClock(START)
    source = AttemptSource(clock, script)
    monkeypatch.setattr("runner.steps.manual.source_class", lambda name: lambda **_: source)
    monkeypatch.chdir(root)
    environ = host_env(RUNNER_ACTOR="someone-else", **(env or {}))
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
    return Ran(code, record, out.getvalue(), source, root, detached)


def test_a_retry_runs_the_step_again_and_it_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(teams=["ops"]),
        FLAKY + LATER,
        [(30, decide("alice", "retry", 1, at=30, notes="network blip"))],
        env={"PASS_AT": "2"},
    )
    assert ran.code == 0, ran.log
    assert ran.record["status"] == "success"
    flaky = ran.step("flaky")
    assert flaky["status"] == "success"
    (decision,) = flaky["guided"]["decisions"]
    assert decision["attempt"] == 1
    assert decision["choice"] == "retry"
    assert decision["state"] == "decided"
    assert (decision["username"], decision["display_name"]) == ("alice", "Alice Martin")
    assert decision["notes"] == "network blip"
    assert decision["failure"]["exit_code"] == 3
    assert decision["interruption"] == "r1--flaky@attempt-1"
    assert "waiting" not in flaky["guided"]
    assert flaky["outputs"]["guided-decision"] == "retry"
    assert flaky["outputs"]["guided-attempt"] == "2"
    assert flaky["octopus"]["Guided.Decision"] == "Retry"
    assert (ran.root / "count").read_text().strip() == "2"
    assert "after=Succeeded|Retry|alice|2|success|success|retry|network blip" in ran.log
    (asked,) = ran.source.asked
    assert asked.kind == "guided-failure"
    assert asked.attempt == 1
    assert asked.choices == ("retry", "skip", "fail")
    assert asked.teams == ("ops",)
    assert asked.title == "Step 'Flaky' failed with exit code 3 (attempt 1)"


def test_the_question_shows_the_masked_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(
        tmp_path, monkeypatch, guided(), FLAKY, [(0, decide("alice", "fail", 1, notes="stop"))]
    )
    (asked,) = ran.source.asked
    assert asked.failure["log_tail"][-2:] == ["token is ***", "attempt 1"]
    assert asked.failure["exit_code"] == 3
    record_text = (ran.root / "state" / "runs" / "r1" / "record.json").read_text()
    request_text = (ran.root / "state" / "runs" / "r1" / "steps" / "flaky").glob("request-*")
    assert "s3cr3t-t0ken-value" not in record_text
    for path in request_text:
        assert "s3cr3t-t0ken-value" not in path.read_text()
    assert "s3cr3t-t0ken-value" not in ran.log


def test_a_skip_goes_on_and_later_steps_see_the_step_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(),
        FLAKY + LATER,
        [(5, decide("bob", "skip", 1, at=5, notes="known flaky"))],
    )
    assert ran.code == 0, ran.log
    assert ran.record["status"] == "success"
    assert ran.record["error"] is None
    flaky = ran.step("flaky")
    assert (flaky["status"], flaky["outcome"], flaky["conclusion"]) == (
        "failure",
        "failure",
        "success",
    )
    assert flaky["guided"]["decisions"][0]["choice"] == "skip"
    assert "after=Failed|Skip|bob|1|failure|success|skip|known flaky" in ran.log
    assert "finally=[none] []" in ran.log
    assert ran.step("after")["status"] == "success"


def test_a_fail_fails_the_deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(),
        FLAKY + LATER,
        [(5, decide("bob", "fail", 1, at=5, notes="roll back instead"))],
    )
    assert ran.code == 1
    assert ran.record["status"] == "failure"
    flaky = ran.step("flaky")
    assert (flaky["status"], flaky["conclusion"]) == ("failure", "failure")
    assert flaky["error"] == "exit code 3; the deployment was failed by Bob Chen: roll back instead"
    assert ran.record["error"] == {
        "message": "Step 'Flaky' failed",
        "detail": "exit code 3; the deployment was failed by Bob Chen: roll back instead",
    }
    assert ran.step("after")["status"] == "skipped"
    assert ran.step("finally")["status"] == "success"


def test_nobody_deciding_times_out_and_fails_with_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(tmp_path, monkeypatch, guided(timeout_minutes=2), FLAKY + LATER, [])
    assert ran.code == 4
    assert ran.record["status"] == "timed-out"
    (decision,) = ran.step("flaky")["guided"]["decisions"]
    assert (decision["state"], decision["choice"]) == ("timed-out", "fail")
    assert ran.step("flaky")["error"] == (
        "Step 'Flaky' failed and nobody decided what to do before the timeout"
    )
    assert ran.source.cancelled == ["timed-out"]


def test_skip_on_timeout_when_the_workflow_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(
        tmp_path, monkeypatch, guided(timeout_minutes=1, on_timeout="skip"), FLAKY + LATER, []
    )
    assert ran.code == 0
    assert "after=Failed|Skip||1|failure|success|skip|skipped on timeout, nobody decided" in ran.log
    assert "warning: Flaky: skipped on timeout, nobody decided" in ran.log


def test_the_retry_limit_takes_retry_away_and_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(choices=[{"retry": {"limit": 1}}, "fail"]),
        FLAKY,
        [
            (0, decide("alice", "retry", 1)),
            (0, decide("alice", "retry", 2)),
            (20, decide("bob", "fail", 2, at=20)),
        ],
    )
    assert ran.code == 1
    first, second = ran.source.asked
    assert first.choices == ("retry", "fail")
    assert second.choices == ("fail",)
    decisions = ran.step("flaky")["guided"]["decisions"]
    assert [(d["attempt"], d["choice"]) for d in decisions] == [(1, "retry"), (2, "fail")]
    assert [r["reason"] for r in decisions[1]["refused"]] == [
        "retry by alice via server: retry is not one of the choices here (fail)"
    ]


def test_detach_on_a_failed_step_then_go_on_with_the_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(),
        FLAKY + LATER,
        [(30, decide("alice", "skip", 1, at=30))],
        detach_first=True,
    )
    assert ran.detached is not None
    assert ran.detached["status"] == "waiting"
    waiting = next(s for s in ran.detached["steps"] if s["id"] == "flaky")
    assert waiting["status"] == "waiting"
    assert waiting["guided"]["waiting"]["interruption"]["attempt"] == 1
    assert ran.code == 0
    # the step is not run again to be asked about: the recorded failure is
    assert (ran.root / "count").read_text().strip() == "1"
    assert "after=Failed|Skip|alice|1|failure|success|skip|skip by alice" in ran.log


def test_a_step_that_succeeds_never_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = run_guided(tmp_path, monkeypatch, guided(), FLAKY, [], env={"PASS_AT": "1"})
    assert ran.code == 0
    assert ran.source.asked == []
    assert "guided" not in ran.step("flaky")


def test_the_prompt_retries_then_the_step_succeeds(
    tmp_path: Path, terminal: tuple[int, int]
) -> None:
    master, slave = terminal
    flaky = FLAKY.replace("    run: |", '    env:\n      PASS_AT: "2"\n    run: |', 1)
    root = workspace(tmp_path, guided(), flaky + LATER)
    # "x" is not a choice and is asked again; "r" retries (notes may be empty for a retry)
    done = run_cli(root, slave, master=master, typed="x\nr\n\n")
    assert done.code == 0, done.stdout + done.stderr
    assert "Please answer r (retry) or s (skip) or f (fail)." in done.stderr
    assert (root / "count").read_text().strip() == "2"
    (decision,) = done.step("flaky")["guided"]["decisions"]
    assert (decision["choice"], decision["source"], decision["attempt"]) == ("retry", "prompt", 1)
    assert f"after=Succeeded|Retry|{USER}|2|success|success|retry|" in done.stdout


def test_the_prompt_skips_with_notes(tmp_path: Path, terminal: tuple[int, int]) -> None:
    master, slave = terminal
    root = workspace(tmp_path, guided(timeout_minutes=1), FLAKY + LATER)
    done = run_cli(root, slave, master=master, typed="s\n\nknown flaky\n")
    assert done.code == 0, done.stdout + done.stderr
    assert "Retry, Skip, Fail? [r/s/f] " in done.stderr
    assert "Notes are required to skip. Notes: " in done.stderr
    assert "  | token is ***" in done.stderr
    assert "s3cr3t-t0ken-value" not in done.stdout + done.stderr
    flaky = done.step("flaky")
    (decision,) = flaky["guided"]["decisions"]
    assert (decision["choice"], decision["source"], decision["username"]) == (
        "skip",
        "prompt",
        USER,
    )
    assert f"after=Failed|Skip|{USER}|1|failure|success|skip|known flaky" in done.stdout


def test_with_nobody_to_ask_the_step_fails_as_without_guided_failure(tmp_path: Path) -> None:
    root = workspace(tmp_path, guided(), FLAKY + LATER)
    devnull = os.open(os.devnull, os.O_RDONLY)  # not a terminal: the prompt cannot ask
    try:
        done = run_cli(root, devnull)
    finally:
        os.close(devnull)
    assert done.code == 1, done.stdout + done.stderr
    flaky = done.step("flaky")
    assert flaky["error"] == (
        "exit code 3; nobody could be asked: no approval source can ask what to do about "
        "failed step 'Flaky' (configure `approvals.file` or `approvals.server`, or run on a "
        "terminal)"
    )
    (decision,) = flaky["guided"]["decisions"]
    assert (decision["state"], decision["choice"]) == ("unasked", "fail")
    assert done.step("after")["status"] == "skipped"
    assert "internal error" not in done.stdout + done.stderr


def test_the_prompt_fails_the_deployment_with_notes(
    tmp_path: Path, terminal: tuple[int, int]
) -> None:
    master, slave = terminal
    root = workspace(tmp_path, guided(choices=["skip", "fail"]), FLAKY + LATER)
    # "r" is not offered here (no retry in `choices`) and is asked again
    done = run_cli(root, slave, master=master, typed="r\nf\n\nschema is wrong\n")
    assert done.code == 1, done.stdout + done.stderr
    assert "Skip, Fail? [s/f] " in done.stderr
    assert "Please answer s (skip) or f (fail)." in done.stderr
    assert "Notes are required to fail. Notes: " in done.stderr
    record = done.record()
    assert record["status"] == "failure"
    assert record["error"]["detail"] == (
        "exit code 3; the deployment was failed by Pat Operator: schema is wrong"
    )
    assert done.step("after")["status"] == "skipped"
    assert "finally=[Step 'Flaky' failed] [exit code 3; the deployment was failed" in done.stdout


#: times out (after about a second) on its first attempt, passes on the next
SLOW = """\
  - id: flaky
    name: Flaky
    timeout-minutes: 0.02
    run: |
      n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count
      echo "attempt $n"
      if [ "$n" -ge 2 ]; then echo passed; exit 0; fi
      sleep 60
"""


def test_a_step_that_times_out_asks_and_a_retry_runs_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(),
        SLOW + LATER,
        [(0, decide("alice", "retry", 1, notes="the host was slow"))],
    )
    assert ran.code == 0, ran.log
    (asked,) = ran.source.asked
    assert asked.title == "Step 'Flaky' timed out (attempt 1)"
    assert asked.failure["timed_out"] is True
    assert asked.failure["error"] == "timed out after 0.02 minutes"
    assert asked.failure["log_tail"][-1].endswith("attempt 1")
    (decision,) = ran.step("flaky")["guided"]["decisions"]
    assert (decision["choice"], decision["failure"]["timed_out"]) == ("retry", True)
    assert (ran.root / "count").read_text().strip() == "2"
    assert "after=Succeeded|Retry|alice|2|success|success|retry|the host was slow" in ran.log


def test_a_step_that_times_out_and_is_failed_fails_with_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from runner.cli.main import main

    ran = run_guided(
        tmp_path, monkeypatch, guided(), SLOW + LATER, [(0, decide("bob", "fail", 1, notes="no"))]
    )
    assert ran.code == 1, ran.log
    assert ran.step("flaky")["error"] == (
        "timed out after 0.02 minutes; the deployment was failed by Bob Chen: no"
    )
    assert ran.step("after")["status"] == "skipped"
    capsys.readouterr()
    assert main(["runs", "show", "r1", "--state-dir", str(ran.root / "state")]) == 0
    shown = capsys.readouterr().out
    assert "guided failure: attempt 1 timed out: fail by Bob Chen (bob) via server at" in shown


def test_when_retry_is_the_only_choice_and_its_limit_is_reached_nobody_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by these tests: the second question offered nothing ("Choose .") and waited for its
    # timeout, or for ever without one.
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(choices=[{"retry": {"limit": 1}}]),
        FLAKY + LATER,
        [(0, decide("alice", "retry", 1)), (0, decide("alice", "retry", 2))],
    )
    assert ran.code == 1, ran.log
    (asked,) = ran.source.asked
    assert asked.choices == ("retry",)
    first, second = ran.step("flaky")["guided"]["decisions"]
    assert (first["attempt"], first["choice"]) == (1, "retry")
    assert (second["attempt"], second["state"], second["choice"]) == (2, "exhausted", "fail")
    assert ran.step("flaky")["error"] == (
        "exit code 3; retried 1 time, the limit, and `retry` is its only choice"
    )
    assert "not asking: retried 1 time, the limit" in ran.log
    assert (ran.root / "count").read_text().strip() == "2"
    assert ran.step("after")["status"] == "skipped"


def test_the_prompt_stops_offering_retry_at_the_limit(
    tmp_path: Path, terminal: tuple[int, int]
) -> None:
    master, slave = terminal
    root = workspace(tmp_path, guided(choices=[{"retry": {"limit": 1}}, "skip", "fail"]), FLAKY)
    # attempt 1: retry; attempt 2: "r" is not offered any more and is asked again; skip
    done = run_cli(root, slave, master=master, typed="r\n\nr\ns\nenough\n")
    assert done.code == 0, done.stdout + done.stderr
    assert "Retry, Skip, Fail? [r/s/f] " in done.stderr
    assert "Skip, Fail? [s/f] " in done.stderr
    assert "Please answer s (skip) or f (fail)." in done.stderr
    assert (root / "count").read_text().strip() == "2"
    decisions = done.step("flaky")["guided"]["decisions"]
    assert [(d["attempt"], d["choice"], d["source"]) for d in decisions] == [
        (1, "retry", "prompt"),
        (2, "skip", "prompt"),
    ]


#: three steps started together: one fails, one succeeds after a while, one fails
PARALLEL = """\
  - id: first
    name: First
    run: |
      echo first-ran >> ran
      exit 3
  - id: slow
    name: Slow
    start: with-previous
    run: |
      sleep 1
      echo slow-ran >> ran
  - id: third
    name: Third
    start: with-previous
    run: |
      echo third-ran >> ran
      exit 4
  - id: after
    name: After
    if: always()
    env:
      ONE: ${{ steps.first.conclusion }}
      TWO: ${{ steps.slow.conclusion }}
      THREE: ${{ steps.third.conclusion }}
    run: echo "after=$ONE|$TWO|$THREE"
"""


def test_steps_started_together_ask_one_at_a_time_and_the_others_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(),
        PARALLEL,
        [
            (0, decide("alice", "skip", 1, notes="first is known", step="first")),
            (0, decide("bob", "fail", 1, notes="third is real", step="third")),
        ],
    )
    assert ran.code == 1, ran.log
    assert sorted(a.step_id for a in ran.source.asked) == ["first", "third"]
    assert sorted((ran.root / "ran").read_text().split()) == ["first-ran", "slow-ran", "third-ran"]
    assert (ran.step("first")["status"], ran.step("first")["conclusion"]) == ("failure", "success")
    assert ran.step("slow")["status"] == "success"
    assert (ran.step("third")["status"], ran.step("third")["conclusion"]) == ("failure", "failure")
    assert ran.step("third")["error"] == (
        "exit code 4; the deployment was failed by Bob Chen: third is real"
    )
    assert "after=success|success|failure" in ran.log


def test_steps_started_together_detach_and_resume_asks_only_the_failed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = PARALLEL.replace(
        "      echo third-ran >> ran\n      exit 4\n", "      echo third-ran >> ran\n"
    )
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(),
        steps,
        [(30, decide("alice", "skip", 1, at=30, notes="first is known", step="first"))],
        detach_first=True,
    )
    assert ran.detached is not None
    statuses = {s["id"]: s["status"] for s in ran.detached["steps"]}
    # the run detached at first's question once the steps started with it had finished
    assert statuses == {
        "first": "waiting",
        "slow": "success",
        "third": "success",
        "after": "pending",
    }
    assert ran.code == 0, ran.log
    # nothing ran twice: the resumed run asked about the recorded failure
    assert sorted((ran.root / "ran").read_text().split()) == ["first-ran", "slow-ran", "third-ran"]
    assert "after=success|success|success" in ran.log


def test_the_prompt_asks_about_steps_started_together_one_after_the_other(
    tmp_path: Path, terminal: tuple[int, int]
) -> None:
    master, slave = terminal
    root = workspace(tmp_path, guided(), PARALLEL)
    done = run_cli(root, slave, master=master, typed="s\nseen one\ns\nseen two\n")
    assert done.code == 0, done.stdout + done.stderr
    assert done.stderr.count("Retry, Skip, Fail? [r/s/f] ") == 2
    notes = sorted(done.step(s)["guided"]["decisions"][0]["notes"] for s in ("first", "third"))
    assert notes == ["seen one", "seen two"]
    assert "after=success|success|success" in done.stdout


def test_a_question_waiting_for_another_to_be_decided_starts_its_timeout_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by these tests: the second question's deadline ran from the failure, while the
    # first was open, so it could time out minutes after anyone saw it
    ran = run_guided(
        tmp_path,
        monkeypatch,
        guided(timeout_minutes=30),
        PARALLEL.replace("sleep 1", "true"),
        [
            (25 * 60, decide("alice", "skip", 1, at=25 * 60, notes="one", step="first")),
            (25 * 60, decide("alice", "skip", 1, at=25 * 60, notes="one", step="third")),
        ],
    )
    assert ran.code == 0, ran.log
    one, two = ran.source.asked
    assert (one.created, one.deadline) == ("2030-01-01T12:00:00.000Z", "2030-01-01T12:30:00.000Z")
    assert (two.created, two.deadline) == ("2030-01-01T12:25:00.000Z", "2030-01-01T12:55:00.000Z")
    decided = ran.step(two.step_id)["guided"]["decisions"][0]
    assert (decided["state"], decided["choice"]) == ("decided", "skip")
