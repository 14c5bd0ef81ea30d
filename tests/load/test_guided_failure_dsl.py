"""``guided-failure:`` as the model holds it: the workflow's applies to every step but manual
ones, a step's own replaces it, ``false`` opts out, and a retry limit comes from either form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli.validate import validate_files
from runner.load import check_file, load_workflow
from runner.model import GuidedFailure, Workflow


def _load(tmp_path: Path, text: str) -> Workflow:
    path = tmp_path / "w.yml"
    path.write_text(text, encoding="utf-8")
    workflow = load_workflow(path).workflow
    assert workflow is not None
    return workflow


WORKFLOW = """\
name: G
guided-failure:
  choices: [{retry: {limit: 3}}, fail]
  timeout-minutes: 10
steps:
  - id: a
    name: A
    run: "false"
  - id: b
    name: B
    run: "false"
    guided-failure:
      choices: [skip]
      on-timeout: skip
  - id: c
    name: C
    run: "false"
    guided-failure: false
  - id: d
    name: D
    manual:
      title: Go?
  - id: e
    name: E
    run: "false"
    guided-failure: true
  - id: f
    name: F
    run: "false"
    guided-failure:
      max-retries: 0
"""


def test_the_workflow_level_applies_and_a_step_overrides_or_opts_out(tmp_path: Path) -> None:
    workflow = _load(tmp_path, WORKFLOW)
    steps = {s.id: s for s in workflow.steps}
    assert workflow.guided is not None
    assert steps["a"].guided is workflow.guided
    assert steps["a"].guided.choices == ("retry", "fail")
    assert steps["a"].guided.max_retries == 3
    assert steps["a"].guided.timeout_minutes == 10
    assert steps["b"].guided is not None
    assert steps["b"].guided.choices == ("skip",)
    assert steps["b"].guided.on_timeout == "skip"
    assert steps["b"].guided.timeout_minutes is None  # replaced, not merged
    assert steps["c"].guided is None
    assert steps["d"].guided is None  # a manual step's abort is a decision already
    assert steps["e"].guided == GuidedFailure(location=steps["e"].guided.location)
    assert steps["f"].guided is not None and steps["f"].guided.max_retries == 0
    assert steps["f"].guided.location is not None and steps["f"].guided.location.line == 30


def test_without_the_key_no_step_asks(tmp_path: Path) -> None:
    workflow = _load(tmp_path, "name: G\nsteps:\n  - id: a\n    name: A\n    run: 'true'\n")
    assert workflow.guided is None
    assert workflow.steps[0].guided is None


def test_a_retry_limit_without_retry_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "w.yml"
    path.write_text(
        "name: G\nsteps:\n  - id: a\n    name: A\n    run: 'true'\n"
        "    guided-failure:\n      choices: [fail]\n      max-retries: 2\n",
        encoding="utf-8",
    )
    code, report = validate_files([str(path)], "text")
    assert code == 1
    assert (
        f"{path}:6:5: step `a`'s `guided-failure` limits retries but does not offer `retry`: "
        "add `retry` to `choices` or remove the limit [guided-failure]"
    ) in report


def test_on_timeout_cannot_retry(tmp_path: Path) -> None:
    # a retry nobody chose would run a failing step again and again, each time waiting out the
    # timeout: on timeout the run fails (the default) or, where the workflow says so, skips
    path = tmp_path / "w.yml"
    path.write_text(
        "name: G\nsteps:\n  - id: a\n    name: A\n    run: 'true'\n"
        "    guided-failure:\n      on-timeout: retry\n",
        encoding="utf-8",
    )
    code, report = validate_files([str(path)], "text")
    assert code == 1
    assert (
        f"{path}:7:19: `on-timeout` must be one of `fail`, `skip`, got 'retry' [schema]"
    ) in report


def test_plan_shows_where_guided_failure_asks_and_what_each_choice_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.cli.main import main

    monkeypatch.setenv("NO_COLOR", "1")
    path = tmp_path / "w.yml"
    path.write_text(
        "name: G\nguided-failure:\n  choices: [{retry: {limit: 1}}, skip, fail]\n"
        "  timeout-minutes: 30\nsteps:\n  - id: a\n    name: A\n    run: 'true'\n"
        "  - id: b\n    name: B\n    run: 'true'\n    guided-failure: false\n",
        encoding="utf-8",
    )
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "w.yml", "--env", "production"]) == 0
    out = capsys.readouterr().out
    assert (
        "            if it fails, asks: anyone in the people file (1 person) via prompt\n"
        "              retry (at most 1 time): runs the step again, as a new attempt\n"
        "              skip: goes on as if it succeeded (the step stays Failed)\n"
        "              fail: fails the deployment\n"
        "              times out after 30 min, then fails the deployment\n"
        "   2    run   b: B\n"
    ) in out
    assert main(["plan", "w.yml", "--env", "production", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    first, second = plan["steps"]
    assert first["guided-failure"]["choices"]["skip"] == (
        "goes on as if it succeeded (the step stays Failed)"
    )
    assert first["guided-failure"]["max-retries"] == 1
    assert "guided-failure" not in second


@pytest.mark.parametrize(
    "setting",
    ["guided-failure: 5", "guided-failure: [fail]", "guided-failure: {choices: [{retry: 3}]}"],
)
@pytest.mark.parametrize("where", ["workflow", "step"])
def test_a_wrong_shape_is_a_diagnostic_not_a_crash(
    tmp_path: Path, setting: str, where: str
) -> None:
    # Found by fuzzing: a file the schema refuses is still built (best effort) for the rest of
    # its problems, and a non-mapping guided-failure raised an AssertionError there.
    top = setting + "\n" if where == "workflow" else ""
    own = "    " + setting + "\n" if where == "step" else ""
    path = tmp_path / "w.yml"
    path.write_text(f"name: G\n{top}steps:\n  - id: a\n    run: x\n{own}", encoding="utf-8")
    loaded = check_file(path)
    assert loaded.workflow is None
    messages = [d.message for d in loaded.diagnostics]
    assert any("guided-failure" in m or "retry" in m for m in messages), messages
