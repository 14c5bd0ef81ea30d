"""A ``$RUNNER_PATH`` (``$GITHUB_PATH``) entry holding a secret (attack pass on secrets).

``echo "/tmp/cache-$PW/bin" >> "$GITHUB_PATH"``: the log masked the entry, but the record kept
it in clear, and with it ``events.jsonl``, ``runner runs show --format json``, the approval
server's copy of the record and ``runner resume``'s refusal of a relative entry. It is stored
masked now, as a ``$RUNNER_ENV`` value holding a secret is; the steps of the process that added
it get it whole, and a resumed run, which has only ``***``, refuses to run the steps after it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers.run_helpers import RUNNER, Workspace

SECRET = "Pr0dDbPassw0rd-path-5c1e"

WORKFLOW = """\
name: path entries
variables:
  Pw:
    from-env: TEST_PW
    secret: true
steps:
  - id: tools
    name: Tools
    env:
      PW: "#{Pw}"
    run: |
      echo "/tmp/cache-$PW/bin" >> "$GITHUB_PATH"
      echo "tools-$PW/bin" >> "$RUNNER_PATH"
  - id: use
    name: Use
    env:
      PW: "#{Pw}"
    run: |
      case "$PATH" in "/tmp/cache-$PW/bin:tools-$PW/bin:"*) echo "PATH whole";; esac
      # the first attempt kills the runner, as a lost CI machine would
      if [ -n "$KILL" ] && [ ! -f "$HOME/killed" ]; then touch "$HOME/killed"; kill -9 "$PPID"; fi
"""


def runner(ws: Workspace, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUNNER), *args, "--state-dir", str(ws.state_dir)],
        cwd=ws.root,
        env=ws.environ(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def state_text(state_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in state_dir.rglob("*") if p.is_file())


def test_a_path_entry_holding_a_secret_is_stored_masked(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    done = ws.cli(WORKFLOW, "--format", "json", env={"TEST_PW": SECRET})
    assert done.code == 0, done.out + done.err
    assert '"text": "PATH whole"' in done.out  # the later step got the entries whole
    record = done.record
    assert record.path == ["/tmp/cache-***/bin", "tools-***/bin"]
    assert sorted(record.secret_path) == ["/tmp/cache-***/bin", "tools-***/bin"]
    shown = runner(ws, "runs", "show", "run-1", "--format", "json", env={})
    assert shown.returncode == 0, shown.stderr
    for where, text in {
        "state": state_text(ws.state_dir),
        "log": done.out + done.err,
        "runs show": shown.stdout,
    }.items():
        assert SECRET not in text, where


def test_a_resume_refuses_masked_and_never_runs_on_a_masked_entry(tmp_path: Path) -> None:
    """The record's relative entry is refused (no seal), its refusal masked; with a seal, the
    steps after the entry cannot run, since the resumed process has only ``***`` of it."""
    ws = Workspace(tmp_path)
    env = {"TEST_PW": SECRET, "KILL": "1", "HOME": str(tmp_path)}
    started = ws.cli(WORKFLOW, env=env)
    assert started.code == -9, started.out + started.err
    unsealed = runner(ws, "resume", "run-1", "--rerun-interrupted", env=env)
    assert unsealed.returncode != 0
    assert "PATH entry 'tools-***/bin' (not an absolute path)" in unsealed.stderr
    assert SECRET not in unsealed.stdout + unsealed.stderr
    assert SECRET not in state_text(ws.state_dir)


def test_a_sealed_resume_does_not_run_the_steps_after_a_secret_path_entry(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    env = {"TEST_PW": SECRET, "KILL": "1", "HOME": str(tmp_path), "RUNNER_RECORD_KEY": "k" * 64}
    started = ws.cli(WORKFLOW, env=env)
    assert started.code == -9, started.out + started.err
    resumed = runner(ws, "resume", "run-1", "--rerun-interrupted", env=env)
    assert resumed.returncode != 0
    assert "PATH whole" not in resumed.stdout
    assert (
        "an earlier step added the PATH entry `/tmp/cache-***/bin`, which holds a secret, and "
        "secret values are never stored: step `use` and the steps after it cannot run in a "
        "resumed run"
    ) in resumed.stderr
