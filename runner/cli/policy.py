"""``runner policy check FILE --env ENV`` and ``runner policy review``."""

from __future__ import annotations

import os

import click

from runner import policy as rules
from runner.engine.history import run_history
from runner.engine.history import state_dir as resolve
from runner.engine.record import RecordStore
from runner.errors import ExitCode
from runner.prepare import apply_policy, prepare


@click.group()
def policy() -> None:
    """Environment policies: explain a decision, review break-glass overrides."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--env", "environment", required=True)
@click.option(
    "--state-dir",
    help="Run history for the promotion rule (default: .runner in the workspace root).",
)
@click.option("--break-glass", metavar="REASON", help="Check as with this break-glass reason.")
@click.option("--insecure-local-trust", is_flag=True)
def check_command(
    file: str,
    environment: str,
    state_dir: str | None,
    break_glass: str | None,
    insecure_local_trust: bool,
) -> int:
    """Explain whether a run of FILE in ENV would be allowed, rule by rule (exit 5 if not)."""

    environ = dict(os.environ)
    prepared = prepare(file, environment, [], [], environ)
    gated = apply_policy(
        prepared,
        history=run_history(resolve(state_dir, environ, prepared.loaded.workspace)),
        environ=environ,
        insecure=insecure_local_trust,
        break_glass=break_glass,
    )
    verdict = gated.policy
    if verdict is None or not verdict.checks:
        click.echo(f"no policy applies to {environment}")
        return 0
    click.echo(f"policy for {environment}:")
    for line in rules.describe(verdict):
        click.echo(f"  {line}")
    click.echo("allowed" if verdict.allowed else "refused")
    return 0 if verdict.allowed else int(ExitCode.REFUSED)


@policy.command("review")
@click.option("--state-dir")
def review_command(state_dir: str | None) -> int:
    """Runs that overrode a policy rule with break-glass, for review afterwards."""

    found = [r for r in RecordStore(resolve(state_dir, os.environ)).list() if r.break_glass]
    if not found:
        click.echo("no break-glass runs")
    for record in sorted(found, key=lambda r: r.started_at):
        glass = record.break_glass or {}
        click.echo(
            f"{record.started_at}  run {record.run_id}  {record.workflow_name} -> "
            f"{record.environment}  {record.status}\n    by {glass.get('by')}, "
            f"overriding {', '.join(glass.get('overrode', []))}: {glass.get('reason')}"
        )
    return 0
