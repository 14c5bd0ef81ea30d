"""`runner run ... | head`: the reader of the log goes away mid-run (a pager quit, `head`, a CI
log stream closed). The deployment must not stop half-way for its viewer, nor be left looking
"running": before, the next line written raised BrokenPipeError inside the step, which failed as
"the runner could not handle this step's output ... a bug in the runner", and the run's record
stayed `running` (exit 1, nothing on stderr). Now the log stops writing and the run goes on,
recorded as always. A real subprocess with a real pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RUNNER = Path(sys.executable).with_name("runner")

WORKFLOW = """\
name: Piped
steps:
  - id: first
    name: First
    run: |
      for i in $(seq 1 200); do echo "line $i"; done
  - id: second
    name: Second
    run: echo done > second-ran
"""


def test_a_closed_log_pipe_does_not_stop_or_fail_the_deployment(tmp_path: Path) -> None:
    (tmp_path / "w.yml").write_text(WORKFLOW, encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"}
    argv = [str(RUNNER), "run", "w.yml", "--env", "dev", "--run-id", "piped"]
    with subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"Piped -> dev")
        proc.stdout.close()  # `| head -1`: the reader is gone
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert (code, stderr) == (0, "")
    assert (tmp_path / "second-ran").read_text() == "done\n"
    record = json.loads((tmp_path / ".runner" / "runs" / "piped" / "record.json").read_text())
    assert record["status"] == "success"
    assert [s["status"] for s in record["steps"]] == ["success", "success"]
