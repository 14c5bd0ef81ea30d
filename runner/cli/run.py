"""``runner run FILE --env ENV``: run a deployment."""

from __future__ import annotations

import os

import click
from click.core import ParameterSource

from runner.cli.options import deployment_options, dry_run_options
from runner.cli.plan import show_plan
from runner.engine import history, session, signals, start
from runner.engine.run import Run
from runner.errors import UsageError
from runner.logs.choose import choose_log
from runner.options import RunOptions
from runner.prepare import prepare, require_environment


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@deployment_options
@dry_run_options
@click.option("--run-id", help="The run's id (default: from the CI's run id, else generated).")
@click.option(
    "--state-dir",
    help="Where run records live (default: $RUNNER_STATE_DIR, else .runner in the workspace root).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan and run nothing (as `runner plan`).")
@click.option(
    "--detach-on-wait",
    is_flag=True,
    help="At a manual step, record the run and exit 75 instead of waiting.",
)
@click.option(
    "--wait-for-lock",
    is_flag=True,
    help="Wait while another run deploys this workflow to the environment (else exit 5).",
)
@click.option(
    "--break-glass",
    metavar="REASON",
    help="Override a freeze or promotion rule in an emergency (you must be in a break-glass "
    "team); recorded, announced and listed for review.",
)
@click.option(
    "--insecure-local-trust",
    is_flag=True,
    help="Let approval sources read trust files from the working tree (local tries).",
)
@click.pass_context
def run(
    ctx: click.Context,
    file: str,
    environment: str | None,
    inputs: tuple[str, ...],
    skip: tuple[str, ...],
    output_format: str,
    assume: str,
    fields: tuple[str, ...],
    run_id: str | None,
    state_dir: str | None,
    dry_run: bool,
    detach_on_wait: bool,
    insecure_local_trust: bool,
    wait_for_lock: bool,
    break_glass: str | None,
) -> int:
    """Run a deployment in an environment. Exit codes are listed in `runner --help`."""
    if not dry_run:
        refuse_dry_run_options(ctx)
    environment = require_environment(file, environment)
    if dry_run:
        return show_plan(
            file,
            environment,
            inputs,
            skip,
            assume=assume,
            fields=fields,
            output_format=output_format,
            insecure_local_trust=insecure_local_trust,
        )
    return run_workflow(
        file,
        environment,
        inputs,
        skip,
        output_format=output_format,
        run_id=run_id,
        state_dir=state_dir,
        detach_on_wait=detach_on_wait,
        insecure_local_trust=insecure_local_trust,
        wait_for_lock=wait_for_lock,
        break_glass=break_glass,
    )


def refuse_dry_run_options(ctx: click.Context) -> None:
    """``--assume`` and ``--field`` decide manual steps in a dry run only: given without
    ``--dry-run`` they were ignored without a word, and a real deployment ran, asking people
    (``--assume abort`` meant to try the abort path deployed instead: newcomer pass)."""
    given = [
        option
        for name, option in (("assume", "--assume"), ("fields", "--field"))
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]
    if given:
        many = len(given) > 1
        raise UsageError(
            f"{' and '.join(given)} only {'apply' if many else 'applies'} with --dry-run (how a "
            "dry run decides manual steps); without it a real deployment runs and people decide "
            "them",
            hint=f"add --dry-run to see the plan, or leave {'them' if many else 'it'} out to "
            "deploy",
        )


def run_workflow(
    file: str,
    environment: str,
    inputs: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    *,
    output_format: str = "text",
    run_id: str | None = None,
    state_dir: str | None = None,
    detach_on_wait: bool = False,
    insecure_local_trust: bool = False,
    wait_for_lock: bool = False,
    break_glass: str | None = None,
) -> int:
    """Run ``file`` and return the exit code."""

    environ = dict(os.environ)
    options = RunOptions(
        detach_on_wait=detach_on_wait,
        insecure_local_trust=insecure_local_trust,
        break_glass=break_glass,
    )
    prepared = prepare(file, environment, inputs, skip, environ)
    folder = history.state_dir(state_dir, environ, prepared.loaded.workspace)
    prepared = session.policy_gate(prepared, folder, environ, options)
    log = choose_log(output_format, environ)
    # before any step changes anything: every manual step that may run must be decidable here
    session.preflight(prepared, environ, options, log)
    recorded: list[Run] = []
    request = start.RunRequest(
        prepared=prepared,
        run_id=run_id,
        state_dir=folder,
        log=log,
        environ=environ,
        options=options,
        on_record=recorded.append,
    )
    try:
        run = start.start_run(request)
        if run.record.break_glass:
            session.announce_break_glass(run)
        code = session.execute(run, wait_for_lock=wait_for_lock, new=True)
    except KeyboardInterrupt as exc:
        if not recorded or recorded[0].record.finished:
            raise  # nothing recorded yet, or a second signal: the CLI's one line, exit 130
        # a record exists: it must not stay "running" (``execute`` handles the rest itself)
        return signals.cancel_started(recorded[0], exc)
    session.export_outputs(run, environ)
    return code
