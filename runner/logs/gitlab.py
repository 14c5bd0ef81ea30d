"""The log inside GitLab CI: each step in a collapsible section
(https://docs.gitlab.com/ci/jobs/job_logs/#custom-collapsible-sections)."""

from __future__ import annotations

import re
import time
from typing import TextIO

from runner.engine.record import RunRecord, StepRecord
from runner.logs.base import BaseLog
from runner.model import Step, Workflow


def _section(step: Step) -> str:
    return "step_" + re.sub(r"[^A-Za-z0-9_.-]", "_", step.id)


class GitLabLog(BaseLog):
    def __init__(self, stream: TextIO, *, color: bool = False) -> None:
        super().__init__(stream, color=color)
        #: the sections started and not yet ended, in order
        self.sections: list[str] = []

    def step_started(self, step: Step) -> None:
        super().step_started(step)
        with self.lock:
            self.sections.append(_section(step))
        self.write(
            f"\x1b[0Ksection_start:{int(time.time())}:{_section(step)}[collapsed=false]"
            f"\r\x1b[0K{step.name}"
        )

    def step_finished(self, step: Step, record: StepRecord, summary: str) -> None:
        with self.lock:
            if _section(step) in self.sections:
                self.sections.remove(_section(step))
        self._end(_section(step))
        super().step_finished(step, record, summary)

    def close(self) -> None:
        """End the sections of steps that never finished (a detach at a manual step, an error,
        a second signal): GitLab would fold everything after them into the last one."""
        with self.lock:
            left, self.sections = self.sections, []
        for name in reversed(left):
            self._end(name)

    def run_detached(self, record: RunRecord, resume: str | None = None) -> None:
        self.close()
        super().run_detached(record, resume)

    def run_finished(self, workflow: Workflow, record: RunRecord) -> None:
        self.close()
        super().run_finished(workflow, record)

    def _end(self, name: str) -> None:
        self.write(f"\x1b[0Ksection_end:{int(time.time())}:{name}\r\x1b[0K")
