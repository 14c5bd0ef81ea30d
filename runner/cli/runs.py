"""``runner runs list`` and ``runner runs show RUN_ID``: the history of runs, for auditors."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import click
from msgspec import structs

from runner.approvals.request import GUIDED
from runner.approvals.state import GateState, GuidedOutcome, GuidedState
from runner.approvals.verify import Claims, masked_parts, reverify_evidence, unproven_claims
from runner.engine.history import state_dir as resolve
from runner.engine.record import RecordStore, RunRecord, StepStatus
from runner.engine.resume import load_for_resume
from runner.errors import RunnerError
from runner.logs.base import format_duration
from runner.workspace import absolute, workspace_here


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""

    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    finish = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return format_duration((finish - begin).total_seconds())


def reverify(record: RunRecord, workflow_path: str | None, insecure: bool) -> dict[str, str]:
    """Re-check each signed approval of the run as of its decision time, and that it says what
    the record claims of it: a verdict for each decision (see :func:`decision_key`), never one
    for a file name, which the record gives (a forged decision naming an honest one's file got
    that one's verdict)."""

    # the record names the workflow relative to the workspace root: find it from any folder
    path = workflow_path or str(absolute(record.workflow_path, workspace_here()))
    results: dict[str, str] = {}
    for step in record.steps:
        found: list[tuple[str, dict[str, Any], str, Claims]] = []
        decisions = (step.approval.decisions if step.approval else None) or ()
        for index, decision in enumerate(decisions):
            claims = _claims(record, step.id, decision.result, decision.username)
            claims = structs.replace(claims, notes=decision.notes, fields=dict(decision.fields))
            key = decision_key(step.id, index)
            found.append((key, decision.evidence, decision.submitted_at, claims))
        # a failed step's guided-failure decisions are signed files too
        for entry in step.guided.decisions if step.guided is not None else ():
            claims = _claims(record, step.id, entry.choice or "", entry.username or "")
            claims = structs.replace(
                claims, kind=GUIDED, attempt=entry.attempt, notes=entry.notes or ""
            )
            key = guided_key(step.id, entry.attempt)
            found.append((key, entry.evidence or {}, entry.submitted_at or "", claims))
        for key, evidence, submitted_at, claims in found:
            if "signature" not in evidence:
                continue
            results[key] = verdict(
                evidence, path, submitted_at, insecure, record.trust_commit, claims
            )
    return results


def decision_key(step_id: str, index: int) -> str:
    """Where ``runs show`` keeps the verdict of a gate's ``index``-th decision."""
    return f"{step_id}/decision-{index + 1}"


def guided_key(step_id: str, attempt: int) -> str:
    """Where ``runs show`` keeps the verdict of the decision on a failed ``attempt``."""
    return f"{step_id}/attempt-{attempt}"


def _claims(record: RunRecord, step_id: str, result: str, username: str) -> Claims:
    return Claims(
        run_id=record.run_id,
        step_id=step_id,
        environment=record.environment,
        digest=record.digest,
        commit=record.commit,
        inputs=dict(record.inputs),
        skipped=tuple(record.skip),
        result=result,
        username=username,
    )


def verdict(
    evidence: dict[str, Any],
    workflow_path: str,
    at: str | None,
    insecure: bool,
    trust_commit: str | None,
    claims: Claims | None = None,
) -> str:
    """What ``runs show`` says of one recorded signed approval, re-verified as of ``at``, and
    compared with what the record claims of it (``claims``)."""

    try:
        report = reverify_evidence(
            evidence, workflow_path, at=at, insecure=insecure, trust_commit=trust_commit
        )
    except RunnerError as exc:
        return f"cannot re-verify: {exc.message}"
    if report.refusal is not None:
        return f"NOT valid: {report.refusal}"
    unproven = unproven_claims(report, claims) if claims is not None else []
    if unproven:
        return "NOT valid: " + "; ".join(unproven)
    if report.valid:
        hidden = masked_parts(claims) if claims is not None else 0
        if hidden:
            # a mask can hide any words of the signed notes: say that there are some
            return (
                "signature re-verified as of the decision; the notes and fields shown have "
                f"{hidden} masked part{'s' if hidden > 1 else ''}, which only the signed "
                "approval holds"
            )
        return "signature re-verified as of the decision"
    # the reason alone, as runs show has always printed a check that holds but does not count
    return "; ".join(report.problems)


def show_text(record: RunRecord, checks: dict[str, str]) -> str:
    lines = [
        f"run {record.run_id}: {record.workflow_name} -> {record.environment}: {record.status}"
        # a run still going has no exit code yet ("(exit None)" read as a bug)
        + (f" (exit {record.exit_code})" if record.exit_code is not None else ""),
        f"  started {record.started_at} by {record.started_by.get('username', '?')}"
        + (f", finished {record.finished_at}" if record.finished_at else ""),
        f"  workflow {record.workflow_path}, digest {record.digest[:12]}"
        + (f", commit {record.commit[:12]}" if record.commit else ""),
    ]
    if record.error:
        lines.append(f"  error: {record.error.get('message')}: {record.error.get('detail')}")
    for step in record.steps:
        took = _duration(step.started_at, step.finished_at)
        lines.append(f"  {step.status:<11} {step.id}: {step.name}" + (f"  {took}" if took else ""))
        if step.status == StepStatus.SKIPPED and step.reason:
            lines.append(f"              {step.reason}")
        if step.error:
            lines.append(f"              {step.error}")
        if step.guided is not None:
            lines.extend(_guided_lines(step.id, step.guided, checks))
        approval = step.approval
        if approval is None:
            continue
        for index, decision in enumerate(approval.decisions or ()):
            lines.append(
                f"              {decision.result} by {decision.display_name} "
                f"({decision.username}) via {decision.source} at "
                f"{decision.submitted_at}" + (f": {decision.notes}" if decision.notes else "")
            )
            if decision.fields:
                lines.append(f"                fields: {json.dumps(decision.fields)}")
            evidence = decision.evidence
            if evidence.get("file"):
                lines.append(
                    f"                evidence: {evidence['file']} "
                    f"({evidence.get('fingerprint', '')}): "
                    f"{checks.get(decision_key(step.id, index), 'not re-verified')}"
                )
        for refusal in approval.refused:
            lines.append(f"              refused: {refusal.reason}")
        if approval.state == GateState.PROCEEDED_ON_TIMEOUT:
            lines.append("              proceeded on timeout, no approval")
    return "\n".join(lines) + "\n"


def _guided_lines(step_id: str, guided: GuidedState, checks: dict[str, str]) -> list[str]:
    """Each failed attempt of a step under guided failure and what was decided about it."""
    lines = []
    for decision in guided.decisions:
        code = decision.failure.get("exit_code")
        failed = f"attempt {decision.attempt} failed" + (
            f" (exit code {code})" if code is not None else ""
        )
        if decision.failure.get("timed_out"):
            # its exit code is the signal that stopped it
            failed = f"attempt {decision.attempt} timed out"
        choice = decision.choice or decision.state
        if decision.state == GuidedOutcome.DECIDED:
            lines.append(
                f"              guided failure: {failed}: {choice} by "
                f"{decision.display_name} ({decision.username}) via "
                f"{decision.source} at {decision.submitted_at}"
                + (f": {decision.notes}" if decision.notes else "")
            )
        else:
            lines.append(f"              guided failure: {failed}: {decision.state}, then {choice}")
        evidence = decision.evidence or {}
        if evidence.get("file"):
            lines.append(
                f"                evidence: {evidence['file']} ({evidence.get('fingerprint', '')}):"
                f" {checks.get(guided_key(step_id, decision.attempt), 'not re-verified')}"
            )
        for refusal in decision.refused:
            lines.append(f"                refused: {refusal.reason}")
    if guided.waiting is not None:
        asked = guided.waiting.interruption.attempt if guided.waiting.interruption else None
        lines.append(f"              guided failure: attempt {asked} failed, waiting to be decided")
    return lines


@click.group()
def runs() -> None:
    """The history of runs in the state folder."""


@runs.command("list")
@click.option("--state-dir")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def list_command(state_dir: str | None, output_format: str) -> int:
    """Every recorded run, newest first."""

    store = RecordStore(resolve(state_dir, os.environ))
    unreadable: list[tuple[str, str]] = []
    records = sorted(store.list(unreadable), key=lambda r: r.started_at, reverse=True)
    for run_id, why in unreadable:
        # left out without a word, a run whose record grew past what is read said "no runs
        # recorded": its deployment, maybe waiting at a gate, was lost from sight
        click.echo(f"warning: run {run_id} is left out: its record cannot be read: {why}", err=True)
    if output_format == "json":
        items: list[dict[str, Any]] = [
            {
                "run_id": r.run_id,
                "workflow": r.workflow_name,
                "environment": r.environment,
                "status": r.status,
                "exit_code": r.exit_code,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "started_by": r.started_by.get("username"),
            }
            for r in records
        ]
        click.echo(json.dumps(items, indent=2))
        return 0
    if not records and not unreadable:
        # say where: a newcomer in another folder (or without the CI's artifact) sees why
        click.echo(f"no runs recorded in {store.state_dir}")
        click.echo(
            "(the state folder is .runner in the workspace root: run this inside the checkout, "
            "or pass --state-dir)"
        )
    for r in records:
        click.echo(
            f"{r.started_at}  {r.run_id:<28} {r.status:<10} {r.environment:<12} "
            f"{r.workflow_name}  {_duration(r.started_at, r.finished_at)}"
        )
    return 0


@runs.command("show")
@click.argument("run_id")
@click.option("--state-dir")
@click.option(
    "--workflow",
    type=click.Path(dir_okay=False),
    help="The workflow whose trust settings re-verify signed approvals.",
)
@click.option("--insecure-local-trust", is_flag=True)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def show_command(
    run_id: str,
    state_dir: str | None,
    workflow: str | None,
    insecure_local_trust: bool,
    output_format: str,
) -> int:
    """One run: its steps, durations, who approved, when, notes and evidence (re-verified)."""

    store = RecordStore(resolve(state_dir, os.environ))
    record = load_for_resume(store, run_id)
    checks = reverify(record, workflow, insecure_local_trust)
    if output_format == "json":
        data = json.loads(record.to_json())  # the record's own JSON, approvals included
        data["reverified"] = checks
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(show_text(record, checks), nl=False)
    return 0
