"""The log formats: GitHub Actions (groups, fenced step output, annotations, job summary), GitLab CI
(collapsible sections), JSON lines, and the terminal's colours (off with ``NO_COLOR``)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from typing import Any

import pytest
from helpers.run_helpers import RUNNER, Workspace

from runner.steps.workflow_commands import Command, CommandProcessor, parse_command

WORKFLOW = """
name: logs demo
steps:
  - id: build
    name: Build
    run: |
      echo "building"
      echo "::group::inner group"
      echo "inside"
      echo "::endgroup::"
      echo "::warning file=src/app.py,line=12,col=3,title=Careful::look %0A here"
      echo "::stop-commands::pausetoken42"
      echo "::error::forged while paused"
      echo "::pausetoken42::"
      echo "::notice::after the pause"
  - id: scoped
    name: Scoped out
    environments: [production]
    run: echo never
  - id: broken
    name: Broken step
    run: |
      echo "about to fail"
      exit 3
  - id: report
    name: Report
    if: always()
    run: |
      echo "## Report" >> "$GITHUB_STEP_SUMMARY"
      echo "all | done" >> "$GITHUB_STEP_SUMMARY"
"""


def github_run(workspace: Workspace, text: str = WORKFLOW) -> tuple[Any, str, str]:
    summary = workspace.root / "summary.md"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text("earlier summary\n")
    result = workspace.run(
        text, env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    )
    token = next(
        line.removeprefix("::stop-commands::")
        for line in result.lines()
        if line.startswith("::stop-commands::")
    )
    return result, token, summary.read_text()


def outer_commands(lines: list[str]) -> list[tuple[str, str]]:
    """What GitHub's runner acts on in our output: commands outside stop-commands pauses, as
    ``(name, line)``."""
    processor = CommandProcessor()
    acted = []
    for line in lines:
        item = processor.process(line)
        if isinstance(item, Command):
            acted.append((item.name, line))
    return acted


def test_github_groups_and_fences_each_step(workspace: Workspace) -> None:
    result, token, _ = github_run(workspace)
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    lines = result.lines()
    start = lines.index("▶ Build")
    end = next(i for i, line in enumerate(lines) if line.startswith("✓ Build  "))
    assert lines[start:end] == [
        "▶ Build",
        "::group::Build",
        f"::stop-commands::{token}",
        "  building",
        "  inner group",
        "  inside",
        f"::{token}::",
        "::warning file=src/app.py,line=12,col=3,title=Careful::look %0A here",
        f"::stop-commands::{token}",
        "  ::stop-commands::pausetoken42",
        "  ::error::forged while paused",
        "  ::pausetoken42::",
        f"::{token}::",
        "::notice ::after the pause",
        f"::stop-commands::{token}",
        f"::{token}::",
        "::endgroup::",
    ]
    assert "- Scoped out: skipped (only in production)" in lines


def test_github_outer_job_acts_only_on_runner_commands(workspace: Workspace) -> None:
    result, _, _ = github_run(workspace)
    path = str(workspace.root / "deploy.yml")
    acted = outer_commands(result.lines())
    fence = ["stop-commands", "resume-commands"]
    assert [name for name, _ in acted] == [
        *("group", *fence, "warning", *fence, "notice", *fence, "endgroup"),  # Build
        *("group", *fence, "endgroup", "error"),  # Broken step
        *("group", *fence, "endgroup"),  # Report
    ]
    assert [line for name, line in acted if name == "error"] == [
        f"::error title=Broken step,file={path},line=19,col=5::"
        "Step 'Broken step' failed: exit code 3"
    ]


def test_github_annotation_properties(workspace: Workspace) -> None:
    result, _, _ = github_run(workspace)
    warning = parse_command(next(line for line in result.lines() if line.startswith("::warning ")))
    assert warning is not None
    annotation = warning.annotation()
    assert annotation is not None
    assert (annotation.file, annotation.line, annotation.column, annotation.title) == (
        "src/app.py",
        12,
        3,
        "Careful",
    )
    assert annotation.message == "look \n here"


def test_github_job_summary(workspace: Workspace) -> None:
    result, _, summary = github_run(workspace)
    assert result.code == 1
    assert summary.startswith("earlier summary\n### logs demo → staging: failure\n")
    digest = result.record.digest[:12]
    rows = [
        [cell.strip() for cell in line.split(" | ")]
        for line in summary.splitlines()
        if line.startswith("| ") and not line.startswith("| | step")
    ]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("| ✅", "Build", "success", "|"),
        ("| ⏭️", "Scoped out", "skipped", "only in production |"),
        ("| ❌", "Broken step", "failure", "exit code 3 |"),
        ("| ✅", "Report", "success", "|"),
    ]
    assert f"Run `run-1`, digest `{digest}`" in summary
    assert "**Step 'Broken step' failed**" in summary
    assert summary.endswith("## Report\nall | done\n\n")


def test_github_step_error_is_fenced(workspace: Workspace) -> None:
    workspace.action(
        "needs",
        """
        name: Needs
        inputs:
          thing:
            required: true
        runs:
          using: composite
          steps:
            - run: echo hi
              shell: bash
        """,
    )
    result, token, _ = github_run(
        workspace,
        """
        name: step error
        steps:
          - id: needs
            name: Needs
            uses: ./actions/needs
        """,
    )
    lines = result.lines()
    path = str(workspace.root / "deploy.yml")
    error = f"::error title=Needs,file={path},line=3,col=5::Input required and not supplied: thing"
    at = lines.index(error)
    assert lines[at - 1] == f"::{token}::"
    assert lines[at + 1] == f"::stop-commands::{token}"


def test_github_parallel_steps_stay_fenced(workspace: Workspace) -> None:
    """Output of steps running together never escapes the fence, whatever order they end in."""
    wait = "for i in $(seq 1 200); do [ -f {0} ] && break; sleep 0.05; done"
    result, _, _ = github_run(
        workspace,
        f"""
        name: parallel
        steps:
          - id: quick
            name: Quick
            run: |
              touch quick.started
              {wait.format("slow.started")}
              echo "::warning::from quick"
          - id: slow
            name: Slow
            start: with-previous
            run: |
              touch slow.started
              {wait.format("quick.started")}
              sleep 0.3
              echo "::stop-commands::slowpause99"
              echo "::error::forged by slow"
              echo "::slowpause99::"
              echo "::notice::from slow"
        """,
    )
    assert result.code == 0, result.out
    acted = outer_commands(result.lines())
    names = [name for name, _ in acted]
    assert names.count("group") == names.count("endgroup") == 1
    assert names.count("stop-commands") == names.count("resume-commands")
    assert not any("forged" in line for _, line in acted)
    assert ("warning", "::warning ::from quick") in acted
    assert ("notice", "::notice ::from slow") in acted


def test_gitlab_sections(workspace: Workspace) -> None:
    result = workspace.run(WORKFLOW, env={"GITLAB_CI": "true"})
    lines = result.out.split("\n")  # not splitlines(): a section line holds a CR
    starts = [
        re.fullmatch(r"\x1b\[0Ksection_start:(\d+):(\S+)\[collapsed=false\]\r\x1b\[0K(.*)", line)
        for line in lines
    ]
    ends = [re.fullmatch(r"\x1b\[0Ksection_end:(\d+):(\S+)\r\x1b\[0K", line) for line in lines]
    assert [(m.group(2), m.group(3)) for m in starts if m] == [
        ("step_build", "Build"),
        ("step_broken", "Broken step"),
        ("step_report", "Report"),
    ]
    assert [m.group(2) for m in ends if m] == ["step_build", "step_broken", "step_report"]
    start = next(i for i, m in enumerate(starts) if m and m.group(2) == "step_broken")
    end = next(i for i, m in enumerate(ends) if m and m.group(2) == "step_broken")
    assert lines[start + 1 : end] == ["  about to fail"]
    assert lines[end + 1].startswith("✗ Broken step  ")
    assert not any(line.startswith("::") for line in lines)


def test_json_lines(workspace: Workspace) -> None:
    result = workspace.run(WORKFLOW, "--format", "json")
    assert result.code == 1
    events = result.events()  # every line parses
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]) for e in events)
    compact = [
        (e["event"], e.get("step"), e.get("text") or e.get("message") or e.get("title"))
        for e in events
    ]
    assert compact == [
        ("run-started", None, None),
        ("step-started", "build", None),
        ("output", "build", "building"),
        ("group", "build", "inner group"),
        ("output", "build", "inside"),
        ("group", "build", None),
        ("annotation", "build", "look \n here"),
        ("output", "build", "::stop-commands::pausetoken42"),
        ("output", "build", "::error::forged while paused"),
        ("output", "build", "::pausetoken42::"),
        ("annotation", "build", "after the pause"),
        ("step-finished", "build", None),
        ("step-skipped", "scoped", None),
        ("step-started", "broken", None),
        ("output", "broken", "about to fail"),
        ("step-finished", "broken", None),
        ("step-started", "report", None),
        ("step-finished", "report", None),
        ("run-finished", None, None),
    ]
    assert events[6]["properties"] == {
        "file": "src/app.py",
        "line": "12",
        "col": "3",
        "title": "Careful",
    }
    assert events[6]["level"] == "warning"
    broken = events[15]
    assert {k: broken[k] for k in ("outcome", "conclusion", "exit_code", "attempts", "error")} == {
        "outcome": "failure",
        "conclusion": "failure",
        "exit_code": 3,
        "attempts": 1,
        "error": "exit code 3",
    }
    assert events[12]["reason"] == "only in production"
    finished = events[-1]
    assert (finished["status"], finished["exit_code"]) == ("failure", 1)
    assert finished["error"] == {"message": "Step 'Broken step' failed", "detail": "exit code 3"}
    assert [s["id"] for s in finished["steps"]] == ["build", "scoped", "broken", "report"]
    assert events[0]["run_id"] == "run-1"
    assert events[0]["environment"] == "staging"


def test_json_lines_with_parallel_steps_parse(workspace: Workspace) -> None:
    steps = "\n".join(
        f"""
          - id: p{i}
            name: P{i}
            {"start: with-previous" if i else ""}
            run: seq 1 300"""
        for i in range(4)
    )
    result = workspace.run(f"name: many\nsteps:{steps}\n", "--format", "json")
    assert result.code == 0, result.out
    events = result.events()
    for i in range(4):
        texts = [e["text"] for e in events if e["event"] == "output" and e["step"] == f"p{i}"]
        assert texts == [str(n) for n in range(1, 301)]


def pty_run(workspace: Workspace, env: dict[str, str]) -> str:
    """The runner's output when its stdout is a terminal."""
    path = workspace.write(
        """
        name: colours
        steps:
          - id: good
            name: Good
            run: echo fine
          - id: bad
            name: Bad
            continue-on-error: true
            run: exit 1
          - id: never
            name: Never
            if: false
            run: echo never
        """
    )
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(RUNNER), *workspace.argv(path, (), "staging", "run-1")],
            cwd=workspace.root,
            env=workspace.environ(env),
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=30)
    finally:
        os.close(master)
    return b"".join(chunks).decode()


@pytest.mark.parametrize(
    ("env", "coloured"), [({}, True), ({"NO_COLOR": "1"}, False), ({"NO_COLOR": ""}, False)]
)
def test_colour_on_a_terminal_unless_no_color(
    workspace: Workspace, env: dict[str, str], coloured: bool
) -> None:
    out = pty_run(workspace, env)
    assert ("\x1b[" in out) is coloured
    if coloured:
        assert "\x1b[32m✓\x1b[0m Good" in out
        assert "\x1b[31m✗\x1b[0m Bad" in out
        assert "\x1b[90m- Never: skipped (`if: false`)\x1b[0m" in out
    else:
        assert "✓ Good" in out
        assert "- Never: skipped (`if: false`)" in out


def test_no_colour_when_not_a_terminal(workspace: Workspace) -> None:
    result = workspace.run(WORKFLOW)
    assert "\x1b" not in result.out
    assert result.lines()[0] == "logs demo -> staging  (run run-1)"
    assert result.lines()[-1].startswith("Run run-1 failed in ")
    assert result.lines()[-1].endswith(": Step 'Broken step' failed")
    assert "  warning: look " in result.lines()  # the message's newline ends the line


def test_summary_json_and_record_agree(workspace: Workspace) -> None:
    result = workspace.run(WORKFLOW, "--format", "json")
    finished = result.events()[-1]
    assert finished["steps"] == json.loads(result.record_text)["steps"]


def test_github_legacy_commands_a_script_chose_are_fenced(workspace: Workspace) -> None:
    """GitHub acts on `##[command]` anywhere in a line: a script that failed with
    `Invalid format '##[stop-commands]evil'` got that line, outside the fence, to stop the
    outer job's commands with its own token, and its next lines were live; and an annotation
    key the script chose could carry a line break."""
    result, token, _ = github_run(
        workspace,
        """
        name: legacy
        steps:
          - id: a
            name: a
            run: echo '##[stop-commands]evil' >> "$RUNNER_OUTPUT"
          - id: b
            name: b
            if: always()
            run: printf '::notice x\\r##[stop-commands]evil=1::hi\\n'
        """,
    )
    lines = result.lines()
    at = next(
        i for i, line in enumerate(lines) if "(Invalid format '##[stop-commands]evil')" in line
    )
    assert lines[at - 1] == f"::stop-commands::{token}"
    assert lines[at + 1] == f"::{token}::"
    assert "::notice x%0D##[stop-commands]evil=1::hi" in lines
