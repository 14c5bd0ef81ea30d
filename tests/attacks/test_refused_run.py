"""A run that the deployment lock refuses must not become a deployment later.

`runner run` saved the new run's record (status `running`, every step pending) before it asked
for the lock, and left it so when refused: `runner runs list` showed it running for ever, and
`runner resume` of it, once the environment was free, started the deployment that had been
refused. Found by tests/e2e/test_gitlab_ci_local.py (a second pipeline's deploy job, refused
while a run waited; its run id is in the job's dotenv report).
"""

from __future__ import annotations

import subprocess

from helpers.run_helpers import RUNNER, Workspace, wait_for

WORKFLOW = """\
name: Locked
environments: [production]
steps:
  - id: hold
    name: Hold the environment
    run: |
      touch "$RUNNER_TEMP/ran"
      for _ in $(seq 1 600); do [ -f "$GO" ] && exit 0; sleep 0.05; done
      exit 1
"""


def test_a_run_refused_at_the_lock_cannot_be_resumed_into_a_deployment(
    workspace: Workspace,
) -> None:
    go = workspace.root / "go"
    env = {"GO": str(go)}
    path = workspace.write(WORKFLOW)

    def ran(run_id: str) -> bool:
        return (workspace.state_dir / "runs" / run_id / "tmp" / "ran").exists()

    first = workspace.spawn(path, env=env, environment="production", run_id="first")
    try:
        wait_for(lambda: ran("first"), what="the first run's step")
        second = workspace.cli(path, env=env, environment="production", run_id="second")
        go.touch()
        first.communicate(timeout=30)
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
        first.wait()
    assert first.returncode == 0
    assert second.code == 5, second.out + second.err
    assert "Locked -> production is being deployed by run first" in second.err
    record = second.record
    assert (record.status, record.exit_code) == ("refused", 5)
    assert record.finished_at is not None
    assert record.error is not None and "is being deployed by run first" in record.error["message"]
    assert [s.status for s in record.steps] == ["pending"]

    # the environment is free now: resuming the refused run reports it and deploys nothing
    resumed = subprocess.run(
        [str(RUNNER), "resume", "second", "--state-dir", str(workspace.state_dir)],
        cwd=workspace.root,
        env=workspace.environ(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 5, resumed.stdout + resumed.stderr
    assert "run second already finished: refused (exit code 5)" in resumed.stdout
    assert not ran("second")
