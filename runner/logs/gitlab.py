"""The log inside GitLab CI: each step in a collapsible section
(https://docs.gitlab.com/ci/jobs/job_logs/#custom-collapsible-sections)."""

from __future__ import annotations

import re
import time

from runner.engine.record import StepRecord
from runner.logs.base import BaseLog
from runner.model import Step


def _section(step: Step) -> str:
    return "step_" + re.sub(r"[^A-Za-z0-9_.-]", "_", step.id)


class GitLabLog(BaseLog):
    def step_started(self, step: Step) -> None:
        super().step_started(step)
        self.write(
            f"\x1b[0Ksection_start:{int(time.time())}:{_section(step)}[collapsed=false]"
            f"\r\x1b[0K{step.name}"
        )

    def step_finished(self, step: Step, record: StepRecord, summary: str) -> None:
        self.write(f"\x1b[0Ksection_end:{int(time.time())}:{_section(step)}\r\x1b[0K")
        super().step_finished(step, record, summary)
