"""A workflow run by the engine in this process, on a fake clock: what takes time (timeouts,
polls, a server's retries and backoff) takes none."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.clock import FakeClock
from runner.engine import start
from runner.logs.text import TextLog
from runner.options import RunOptions
from runner.prepare import prepare


@dataclass
class RunHere:
    """What a run in this process left: its exit code, record, log and clock."""

    code: int
    record: dict[str, Any]
    log: str
    clock: FakeClock

    def step(self, step_id: str) -> dict[str, Any]:
        found: dict[str, Any] = next(s for s in self.record["steps"] if s["id"] == step_id)
        return found


def run_here(
    root: Path,
    environ: Mapping[str, str],
    *,
    workflow: str = "deploy.yml",
    environment: str = "production",
    clock: FakeClock | None = None,
    run_id: str = "r1",
    options: RunOptions | None = None,
) -> RunHere:
    """Run ``root/workflow`` to its end (or its detach) with ``clock`` for the engine's ``now``
    and ``sleep`` (the steps and the approval sources get them from the engine). The caller
    chdirs into ``root`` (``monkeypatch.chdir``): the workflow loads relative to it."""
    clock = clock or FakeClock()
    prepared = prepare(workflow, environment, (), (), environ)
    out = io.StringIO()
    run = start.start_run(
        start.RunRequest(
            prepared=prepared,
            run_id=run_id,
            state_dir=root / "state",
            log=TextLog(out),
            environ=environ,
            options=options or RunOptions(),
        )
    )
    run.clock = clock.now
    run.sleep = clock.sleep
    code = run.execute()
    record = json.loads((root / "state" / "runs" / run_id / "record.json").read_text())
    return RunHere(code, record, out.getvalue(), clock)
