"""What a step writes for the next ones ($RUNNER_OUTPUT, $RUNNER_PATH) and what an expression
makes of data (``fromJSON``) is whatever a script or an API answer held. A NUL character in a
value that becomes the next step's environment ended the runner with an internal error (exit 70,
``ValueError: embedded null byte`` from ``Popen``): the run stayed ``running`` in its record and
its ``always()`` steps never ran. Now the step that would be given it fails, naming the
variable, and the run ends as any failed run does. Real bash, the CLI in this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import cli_in

TIDY = "  - id: tidy\n    name: Tidy\n    if: always()\n    run: echo tidy > tidy-ran\n"

CASES = {
    "an output": (
        "  - id: a\n    name: A\n    run: printf 'o=x\\0y\\n' >> \"$RUNNER_OUTPUT\"\n"
        '  - id: b\n    name: B\n    env:\n      O: ${{ steps.a.outputs.o }}\n    run: echo "$O"\n',
        "O",
    ),
    "fromJSON": (
        "  - id: a\n    name: A\n    run: 'true'\n"
        "  - id: b\n    name: B\n    env:\n      J: ${{ fromJSON('\"a\\u0000b\"') }}\n"
        '    run: echo "$J"\n',
        "J",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_nul_in_the_next_steps_environment_fails_that_step(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps, name = CASES[case]
    (tmp_path / "w.yml").write_text("name: nul\nsteps:\n" + steps + TIDY, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev", "--run-id", "n")
    assert result.returncode == 1, result
    assert "internal error" not in result.stderr
    expected = f"environment variable `{name}` holds a NUL character"
    assert expected in result.stdout
    assert (tmp_path / "tidy-ran").read_text() == "tidy\n"  # always() still ran
    record = json.loads((tmp_path / ".runner" / "runs" / "n" / "record.json").read_text())
    assert record["status"] == "failure"
    assert [(s["id"], s["status"]) for s in record["steps"]] == [
        ("a", "success"),
        ("b", "failure"),
        ("tidy", "success"),
    ]
    assert expected in record["steps"][1]["error"]


def test_a_path_entry_with_a_nul_is_refused_and_later_steps_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it was prepended to every later step's PATH: each failed, always() ones included
    steps = (
        "  - id: a\n    name: A\n    run: printf '/tmp\\0/x\\n' >> \"$RUNNER_PATH\"\n"
        "  - id: b\n    name: B\n    run: echo hi\n"
    )
    (tmp_path / "w.yml").write_text("name: nul\nsteps:\n" + steps + TIDY, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    result = cli_in(monkeypatch, tmp_path, environ, "run", "w.yml", "--env", "dev", "--run-id", "n")
    assert result.returncode == 0, result
    assert (
        "  error: Can't add a PATH entry using '$RUNNER_PATH': it contains a NUL character.\n"
        in result.stdout
    )
    assert (tmp_path / "tidy-ran").read_text() == "tidy\n"
    record = json.loads((tmp_path / ".runner" / "runs" / "n" / "record.json").read_text())
    assert record["status"] == "success"
    assert record["path"] == []  # not recorded either: a resume would have been given it


# A step owns its file-command files and may replace them. The runner read them back following
# links and blocking: a FIFO in place of `$RUNNER_ENV` blocked it for ever after the step
# (SIGTERM too: the open was retried), its `always()` steps never ran and the record stayed
# `running`; a link to /dev/zero filled its memory. Now such a file fails the step.
REPLACED = {
    "a FIFO": ('rm "$RUNNER_ENV"; mkfifo "$RUNNER_ENV"', "$RUNNER_ENV ($GITHUB_ENV) was replaced"),
    "a link to /dev/zero": (
        'ln -sf /dev/zero "$RUNNER_OUTPUT"',
        "$RUNNER_OUTPUT ($GITHUB_OUTPUT) was replaced",
    ),
    "a link to a file": (
        'echo "o=1" > o.txt; ln -sf "$PWD/o.txt" "$RUNNER_STEP_SUMMARY"',
        "$RUNNER_STEP_SUMMARY ($GITHUB_STEP_SUMMARY) was replaced",
    ),
    # a file the runner cannot open (a socket; `chmod 000` for a runner that is not root): an
    # internal error (exit 70) that left the run `running`
    "a socket": (
        'rm "$RUNNER_ENV"; python3 -c "import os, socket; '
        "socket.socket(socket.AF_UNIX).bind(os.environ['RUNNER_ENV'])\"",
        "$RUNNER_ENV ($GITHUB_ENV) cannot be read",
    ),
    "too much": (
        "head -c 1100000 /dev/zero | tr '\\0' a | sed 's/^/o=/' >> \"$RUNNER_OUTPUT\"",
        "the step wrote more than 1 MiB to $RUNNER_OUTPUT ($GITHUB_OUTPUT)",
    ),
}


@pytest.mark.parametrize("case", REPLACED, ids=list(REPLACED))
def test_a_file_command_file_replaced_by_the_step_fails_the_step(case: str, tmp_path: Path) -> None:
    script, expected = REPLACED[case]
    steps = f"  - id: a\n    name: A\n    run: {json.dumps(script)}\n"
    (tmp_path / "w.yml").write_text("name: swap\nsteps:\n" + steps + TIDY, encoding="utf-8")
    environ = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    runner = Path(sys.executable).with_name("runner")
    argv = [str(runner), "run", "w.yml", "--env", "dev", "--run-id", "n"]
    try:
        done = subprocess.run(
            argv, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the runner was still reading the step's file after 30 s")
    assert done.returncode == 1, done
    assert expected in done.stdout
    assert (tmp_path / "tidy-ran").read_text() == "tidy\n"
    record = json.loads((tmp_path / ".runner" / "runs" / "n" / "record.json").read_text())
    assert record["status"] == "failure"
    assert expected in record["steps"][0]["error"]
