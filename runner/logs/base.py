"""Shared plumbing of the log formats: one lock, one stream, elapsed times."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from runner.approvals.state import Decision
from runner.durations import format_duration
from runner.engine.record import RunRecord, RunStatus, StepRecord, StepStatus
from runner.errors import Location
from runner.model import Step, Workflow

_COLORS = {"success": "32", "failure": "31", "cancelled": "33", "skipped": "90", "bold": "1"}
SYMBOLS = {
    "success": "✓",
    "failure": "✗",
    "cancelled": "⊘",
    "skipped": "-",
    "interrupted": "!",
}


class BaseLog:
    """Writes whole lines under a lock (steps in parallel log from several threads)."""

    def __init__(self, stream: TextIO, *, color: bool = False) -> None:
        self.stream = stream
        self.color = color
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}
        self.running: set[str] = set()
        #: steps this process has seen finish or skip (a resumed run's earlier ones are not)
        self.seen: set[str] = set()
        self.run_start = time.monotonic()

    def paint(self, text: str, outcome: str) -> str:
        code = _COLORS.get(outcome)
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and code else text

    def write(self, *lines: str) -> None:
        with self.lock:
            try:
                for line in lines:
                    self.stream.write(line + "\n")
                self.stream.flush()
            except BrokenPipeError:
                # the reader went away (`| head`, a pager quit, a CI log stream closed): the
                # deployment goes on, recorded as always, and is not failed half-way for its
                # viewer; nothing more is written here
                self.stream = _discarded(self.stream)

    def elapsed(self, step: Step) -> str:
        # one reading: a step that never started (failed while deciding it) took 0.0 s, not
        # the -0.0 s that a second, later reading as its start gave
        now = time.monotonic()
        seconds = now - self.started.get(step.id, now)
        return format_duration(seconds)

    # default behaviour, refined by each format

    def run_started(self, workflow: Workflow, record: RunRecord) -> None:
        self.run_start = time.monotonic()
        self.write(f"{workflow.name} -> {record.environment}  (run {record.run_id})")

    def step_started(self, step: Step) -> None:
        self.started[step.id] = time.monotonic()
        with self.lock:
            self.running.add(step.id)
        self.write(self.paint(f"▶ {step.name}", "bold"))

    def prefix(self, step: Step) -> str:
        return f"[{step.id}] " if len(self.running) > 1 else "  "

    def line(self, step: Step, text: str) -> None:
        self.write(f"{self.prefix(step)}{text}")

    def annotation(
        self, step: Step, level: str, message: str, properties: Mapping[str, str]
    ) -> None:
        self.write(f"{self.prefix(step)}{level}: {message}")

    def group(self, step: Step, title: str | None) -> None:
        if title is not None:
            self.write(f"{self.prefix(step)}{title}")

    def step_skipped(self, step: Step, reason: str) -> None:
        self.seen.add(step.id)
        self.write(self.paint(f"- {step.name}: skipped ({reason})", "skipped"))

    def step_error(self, step: Step, message: str, location: Location | None) -> None:
        self.write(f"{self.prefix(step)}error: {message}")

    def step_finished(self, step: Step, record: StepRecord, summary: str) -> None:
        with self.lock:
            self.running.discard(step.id)
            self.seen.add(step.id)
        symbol = self.paint(SYMBOLS.get(record.outcome, "?"), record.outcome)
        note = ""
        if record.outcome == "failure":
            note = f"  ({record.error or f'exit code {record.exit_code}'})"
            if record.conclusion == "success":
                note += ", continuing (continue-on-error)"
        self.write(f"{symbol} {step.name}  {self.paint(self.elapsed(step), 'skipped')}{note}")

    def waiting(self, step: Step, request: Mapping[str, Any], status: str) -> None:
        self.write(f"⏸ {step.name}: {status}")

    def decision(self, step: Step, decision: Decision) -> None:
        notes = decision.notes
        self.write(
            f"  {decision.result} by {decision.who} via {decision.source}"
            + (f": {notes}" if notes else "")
        )

    def preflight_failed(self, problems: Sequence[Any]) -> None:
        """Manual steps nobody can decide here stopped the run before its first step
        (runner.engine.preflight.Problem); the error itself goes to stderr. CI logs
        annotate each step."""

    def run_detached(self, record: RunRecord, resume: str | None = None) -> None:
        """``resume``: the command that resumes the run (``RecordStore.resume_command``)."""
        self.write(
            f"Run {record.run_id} is waiting for approval; resume it with "
            f"`{resume or f'runner resume {record.run_id}'}`"
        )

    def close(self) -> None:
        """Nothing stays open in a plain log (see :meth:`runner.steps.base.RunLog.close`)."""

    def run_finished(self, workflow: Workflow, record: RunRecord) -> None:
        # the whole run's time, from its record: a resumed run started in another process
        # (maybe days ago, waiting for approval), not when this one did
        whole = span(record.started_at, record.finished_at)
        took = format_duration(time.monotonic() - self.run_start if whole is None else whole)
        earlier = [
            rec
            for rec in record.steps
            if rec.id not in self.seen
            and rec.status not in (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)
        ]
        if earlier:
            # resumed: this process saw only the steps after the wait; recap them all
            self.write(f"Steps of run {record.run_id}:")
            for rec in record.steps:
                self.write(f"  {step_line(rec)}")
        words = {
            "success": "succeeded",
            "failure": "failed",
            "aborted": "was aborted at a manual intervention",
            "timed-out": "timed out waiting for approval",
            "cancelled": "was cancelled",
        }.get(record.status, record.status)
        line = f"Run {record.run_id} {words} in {took}"
        if record.error and record.status != RunStatus.SUCCESS:
            line += f": {record.error.get('message', '')}"
        self.write(line)


def span(start: str | None, end: str | None) -> float | None:
    """Seconds between two recorded UTC stamps (``2030-01-01T12:00:00.000Z``), if both parse."""

    if not start or not end:
        return None
    try:
        began = datetime.fromisoformat(start.replace("Z", "+00:00"))
        ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (ended - began).total_seconds())


def step_time(rec: StepRecord) -> str:
    """A finished step's duration from its record ('' when it has none: skipped, pending)."""
    seconds = span(rec.started_at, rec.finished_at)
    return "" if seconds is None else format_duration(seconds)


def step_line(rec: StepRecord) -> str:
    symbol = SYMBOLS.get(rec.outcome or "", "-" if rec.status == StepStatus.SKIPPED else "…")
    took = step_time(rec)
    return f"{symbol} {rec.name}  {rec.conclusion or rec.status}" + (f"  {took}" if took else "")


__all__ = ["SYMBOLS", "BaseLog", "format_duration", "span", "step_line", "step_time"]


def _discarded(stream: TextIO) -> TextIO:
    """A sink for what would have gone to ``stream``, whose reader is gone. A stream on a file
    descriptor has it pointed at ``/dev/null`` too, so that the flush at the interpreter's exit
    does not print "Exception ignored ... BrokenPipeError" (Python's documented recipe,
    https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    null = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as the log)
    # a stream without a descriptor (a test's StringIO: io.UnsupportedOperation) is just dropped
    with contextlib.suppress(OSError, ValueError):
        os.dup2(null.fileno(), stream.fileno())
    return null
