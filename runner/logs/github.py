"""The log inside GitHub Actions: each step in a ``::group::``, failures as ``::error``
annotations pointing at the workflow file, and a Markdown job summary at the end.

A step's own output is fenced with ``::stop-commands::`` so nothing a deployment script prints can
act as a workflow command on the outer job (the runner has already handled the step's commands).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from runner.approvals.request import Interruption
from runner.engine.record import RunRecord, StepRecord, StepStatus
from runner.errors import Location
from runner.logs.base import BaseLog, format_duration, step_time
from runner.model import Step, Workflow
from runner.steps.workflow_commands import escape_data, escape_property
from runner.workspace import absolute


def _live(line: str) -> bool:
    """Whether GitHub would act on text inside ``line``: after a line break (it reads `\r` and
    `\n` each as the end of a line), or a legacy ``##[command]``, which it finds anywhere in a
    line that is not a ``::command`` (``✗ a (Invalid format '##[stop-commands]x')`` stopped the
    outer job's commands with a token the script chose, and its next lines were live)."""
    return "\n" in line or "\r" in line or ("##[" in line and not line.startswith("::"))


class GitHubLog(BaseLog):
    """Steps running together (``start: with-previous``) share one group and one fence: the
    group opens with the first of them and closes with the last, so no step's output is ever
    printed while commands are live, and groups are never nested or interleaved."""

    def __init__(
        self, stream: TextIO, *, summary_path: str | None = None, workspace: str | None = None
    ) -> None:
        super().__init__(stream)
        #: ``$GITHUB_WORKSPACE``: annotations name files relative to it, as GitHub expects,
        #: whatever folder the runner was started from (``../workflows/x.yml`` from ``docs/``)
        self.workspace = workspace
        # held across a decision about the fence and the lines written because of it
        self.lock = threading.RLock()  # type: ignore[assignment]
        self.summary_path = summary_path
        self.token = secrets.token_hex(16)
        self.workflow_path = ""
        self.workflow: Workflow | None = None
        self.durations: dict[str, str] = {}
        #: what steps wrote to their own ``$GITHUB_STEP_SUMMARY`` (masked by the step kind)
        self.summaries: dict[str, str] = {}
        #: the steps inside the fence now
        self.fenced: set[str] = set()
        #: steps that have had their ``::error`` already (one annotation per failure)
        self.errored: set[str] = set()

    def write(self, *lines: str) -> None:
        with self.lock:
            if self.fenced or not any(_live(line) for line in lines):
                super().write(*lines)
                return
            # a line outside the fence holding text its writer chose (a step's error quoting
            # what its script wrote, an action's step name, an approver's notes) that GitHub
            # would act on: fenced as a step's own output is
            super().write(f"::stop-commands::{self.token}", *lines, f"::{self.token}::")

    def run_started(self, workflow: Workflow, record: RunRecord) -> None:
        self.workflow_path = workflow.path
        self.workflow = workflow
        super().run_started(workflow, record)

    def step_started(self, step: Step) -> None:
        with self.lock:
            super().step_started(step)
            if not self.fenced:
                self.write(f"::group::{escape_data(step.name)}", f"::stop-commands::{self.token}")
            self.fenced.add(step.id)

    def step_finished(self, step: Step, record: StepRecord, summary: str) -> None:
        with self.lock:
            if step.id in self.fenced:
                self.fenced.discard(step.id)
                if not self.fenced:
                    self.write(f"::{self.token}::", "::endgroup::")
            self.durations[step.id] = self.elapsed(step)
            if summary.strip():
                self.summaries[step.id] = summary
            super().step_finished(step, record, summary)
            if record.outcome == "failure" and step.id not in self.errored:
                self._error(
                    step,
                    f"Step '{step.name}' failed: {record.error or f'exit code {record.exit_code}'}",
                    step.location,
                )

    def step_error(self, step: Step, message: str, location: Location | None) -> None:
        # the step then finishes as failed: that must not annotate the same failure again
        self.errored.add(step.id)
        self._error(step, message, location or step.location)

    def preflight_failed(self, problems: Sequence[Any]) -> None:
        for problem in problems:
            self._error(
                problem.step, f"{problem.message} (fix: {problem.hint})", problem.step.location
            )

    def annotation(
        self, step: Step, level: str, message: str, properties: Mapping[str, str]
    ) -> None:
        # a key is the script's too (`::notice x\r##[stop-commands]e=1::`): escaped as a value
        props = ",".join(
            f"{escape_property(k)}={escape_property(v)}" for k, v in properties.items()
        )
        self._command(f"::{level} {props}::{escape_data(message)}")

    def _command(self, line: str) -> None:
        """A command for the outer job: outside the fence, in one write with its lifting."""
        with self.lock:
            if self.fenced:
                self.write(f"::{self.token}::", line, f"::stop-commands::{self.token}")
            else:
                self.write(line)

    def _error(self, step: Step, message: str, location: Location | None) -> None:
        props = {"title": f"{step.name}"}
        if location is not None:
            props.update(
                file=self._file(location.path), line=str(location.line), col=str(location.column)
            )
        text = ",".join(f"{k}={escape_property(v)}" for k, v in props.items())
        self._command(f"::error {text}::{escape_data(message)}")

    def close(self) -> None:
        """Lift the fence and close the group, however the run ends: a step that never finished
        (a detach at a manual step, an error, a second signal) would leave the outer job's later
        workflow commands (its own ``::notice``) unprocessed and what the runner says next
        inside a collapsed group."""
        with self.lock:
            if self.fenced:
                self.fenced.clear()
                self.write(f"::{self.token}::", "::endgroup::")

    def _file(self, path: str) -> str:
        if not self.workspace:
            return path

        try:
            return absolute(path).relative_to(absolute(self.workspace)).as_posix()
        except ValueError:
            return path

    def run_finished(self, workflow: Workflow, record: RunRecord) -> None:
        self.close()
        super().run_finished(workflow, record)
        self._summary(workflow, record)

    def run_detached(self, record: RunRecord, resume: str | None = None) -> None:
        # the job ends here: its summary says what the run waits for, and how it goes on; the
        # waiting manual step never finished, so its group is still open
        self.close()
        super().run_detached(record, resume)
        if self.workflow is not None:
            self._summary(self.workflow, record, resume)

    def _summary(self, workflow: Workflow, record: RunRecord, resume: str | None = None) -> None:
        if not self.summary_path:
            return
        text = job_summary(workflow, record, self.durations, self.summaries, resume)
        try:
            with Path(self.summary_path).open("a", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            # the run has ended: a summary that cannot be written changes nothing of it
            why = exc.strerror or str(exc)
            self.write(
                f"warning: cannot write the job summary to $GITHUB_STEP_SUMMARY "
                f"({self.summary_path}): {why}"
            )


def job_summary(
    workflow: Workflow,
    record: RunRecord,
    durations: Mapping[str, str],
    summaries: Mapping[str, str] | None = None,
    resume: str | None = None,
) -> str:
    """The run as Markdown for ``$GITHUB_STEP_SUMMARY``, followed by the steps' own summaries."""
    icon = {"success": "✅", "failure": "❌", "skipped": "⏭️", "cancelled": "🚫"}
    lines = [
        f"### {workflow.name} → {record.environment}: {record.status}",
        "",
        f"Run `{record.run_id}`, digest `{record.digest[:12]}`"
        + (f", commit `{record.commit[:12]}`" if record.commit else ""),
        "",
        "| | step | result | time | note |",
        "|---|---|---|---|---|",
    ]
    for rec in record.steps:
        note = rec.reason if rec.status == StepStatus.SKIPPED else (rec.error or "")
        if rec.approval is not None and rec.approval.decisions:
            last = rec.approval.decisions[-1]
            note = f"{last.result} by {last.display_name or last.username}"
        note = note.replace("|", "\\|")  # (no backslash inside an f-string before 3.12)
        lines.append(
            f"| {icon.get(rec.conclusion, '•')} | {rec.name} | {rec.conclusion or rec.status} | "
            f"{durations.get(rec.id) or step_time(rec)} | {note} |"
        )
    if record.error:
        lines += ["", f"**{record.error.get('message', '')}**"]
    for rec in record.steps:
        if rec.status == StepStatus.WAITING and rec.approval is not None:
            lines += _waiting(record, rec.approval.interruption, resume)
    for rec in record.steps:
        if summaries and summaries.get(rec.id):
            lines += ["", summaries[rec.id].rstrip("\n")]
    return "\n".join(lines) + "\n\n"


def _waiting(record: RunRecord, asked: Interruption | None, resume: str | None) -> list[str]:
    """What a detached run waits for: the question, who may answer, by when, and what then."""
    if asked is None:  # a record written by hand: say what little is known
        return [
            "",
            "#### ⏸️ Waiting for approval: None",
            "",
            "",
            "- who: anyone in the people file",
            "- deadline: none",
            "- sources: prompt",
            f"- then: `{resume or f'runner resume {record.run_id}'}`",
        ]
    teams = ", ".join(asked.teams) or "anyone in the people file"
    quorum = "; ".join(f"{count} from {team}" for team, count in asked.quorum)
    lines = ["", f"#### ⏸️ Waiting for approval: {asked.title or asked.step_name}", ""]
    lines += [f"> {line}" if line else ">" for line in asked.instructions.splitlines()]
    lines += [
        "",
        f"- who: {teams}" + (f" ({quorum})" if quorum else ""),
        f"- deadline: {asked.deadline or 'none'}",
        f"- sources: {', '.join(asked.sources) or 'prompt'}",
        f"- then: `{resume or f'runner resume {record.run_id}'}`",
    ]
    return lines


__all__ = ["GitHubLog", "format_duration", "job_summary"]
