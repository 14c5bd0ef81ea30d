"""``--format json``: one JSON object per line for each event, for machines."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from runner.approvals.state import Decision
from runner.engine.record import RunRecord, StepRecord, step_fields
from runner.errors import Location
from runner.logs.base import BaseLog
from runner.model import Step, Workflow


class JsonLog(BaseLog):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)

    def emit(self, event: str, **fields: Any) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.write(json.dumps({"event": event, "time": stamp, **fields}, ensure_ascii=False))

    def run_started(self, workflow: Workflow, record: RunRecord) -> None:
        self.emit(
            "run-started",
            run_id=record.run_id,
            workflow=workflow.name,
            path=workflow.path,
            environment=record.environment,
            digest=record.digest,
        )

    def step_started(self, step: Step) -> None:
        self.emit("step-started", step=step.id, name=step.name)

    def line(self, step: Step, text: str) -> None:
        self.emit("output", step=step.id, text=text)

    def annotation(
        self, step: Step, level: str, message: str, properties: Mapping[str, str]
    ) -> None:
        self.emit(
            "annotation", step=step.id, level=level, message=message, properties=dict(properties)
        )

    def group(self, step: Step, title: str | None) -> None:
        self.emit("group", step=step.id, title=title)

    def step_skipped(self, step: Step, reason: str) -> None:
        self.emit("step-skipped", step=step.id, name=step.name, reason=reason)

    def step_error(self, step: Step, message: str, location: Location | None) -> None:
        where = str(location) if location else None
        self.emit("step-error", step=step.id, message=message, location=where)

    def step_finished(self, step: Step, record: StepRecord, summary: str) -> None:
        self.emit(
            "step-finished",
            step=step.id,
            name=step.name,
            outcome=record.outcome,
            conclusion=record.conclusion,
            exit_code=record.exit_code,
            attempts=record.attempts,
            outputs=record.outputs,
            error=record.error,
        )

    def waiting(self, step: Step, request: Mapping[str, Any], status: str) -> None:
        self.emit("waiting", step=step.id, status=status, request=dict(request))

    def decision(self, step: Step, decision: Decision) -> None:
        self.emit("decision", step=step.id, decision=decision.to_json())

    def run_detached(self, record: RunRecord, resume: str | None = None) -> None:
        self.emit(
            "run-detached",
            run_id=record.run_id,
            resume=resume or f"runner resume {record.run_id}",
        )

    def run_finished(self, workflow: Workflow, record: RunRecord) -> None:
        self.emit(
            "run-finished",
            run_id=record.run_id,
            status=record.status,
            exit_code=record.exit_code,
            error=record.error,
            steps=[step_fields(s) for s in record.steps],  # as the record holds them
        )
