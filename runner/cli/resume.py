"""``runner resume RUN_ID``: go on with a recorded run (after a detach, or a crash)."""

from __future__ import annotations

import os

import click

from runner.engine import history, signals, start
from runner.engine.record import RecordStore
from runner.engine.resume import fetch_from_server
from runner.engine.resume import resume as resume_run
from runner.engine.seal import record_key
from runner.inputs import parse_pairs
from runner.logs.choose import choose_log
from runner.options import RunOptions
from runner.workspace import workspace_here


@click.command()
@click.argument("run_id")
@click.option(
    "--state-dir",
    help="Where run records live (default: $RUNNER_STATE_DIR, else .runner in the workspace root).",
)
@click.option(
    "--detach-on-wait", is_flag=True, help="If still undecided, record the run and exit 75 again."
)
@click.option(
    "--rerun-interrupted",
    is_flag=True,
    help="Run again the steps that were running when the runner died.",
)
@click.option(
    "--wait-for-lock",
    is_flag=True,
    help="Wait while another run deploys this workflow to the environment.",
)
@click.option(
    "--insecure-local-trust",
    is_flag=True,
    help="Let approval sources read trust files from the working tree (local tries).",
)
@click.option(
    "--server",
    "server_url",
    help="Fetch the run's record from this approval server when it is not here.",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A secret input again (secret values are never stored).",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def resume(
    run_id: str,
    state_dir: str | None,
    detach_on_wait: bool,
    rerun_interrupted: bool,
    wait_for_lock: bool,
    insecure_local_trust: bool,
    server_url: str | None,
    inputs: tuple[str, ...],
    output_format: str,
) -> int:
    """Resume a run: ask the sources again and continue after its manual step."""

    environ = dict(os.environ)
    run_id = start.check_run_id(run_id)
    workspace = workspace_here()
    folder = history.state_dir(state_dir, environ, workspace)

    # the server's copy, sealed as it is saved here: it came from the server, not an artifact
    store = RecordStore(folder, key=record_key(environ))
    if server_url and not store.exists(run_id):
        fetch_from_server(store, run_id, server_url, environ.get("RUNNER_SERVER_TOKEN"))
    log = choose_log(output_format, environ)
    try:
        return resume_run(
            run_id,
            folder,
            log=log,
            environ=environ,
            options=RunOptions(
                detach_on_wait=detach_on_wait, insecure_local_trust=insecure_local_trust
            ),
            rerun_interrupted=rerun_interrupted,
            wait_for_lock=wait_for_lock,
            secret_inputs=parse_pairs(inputs, "--input"),
            workspace=workspace,
        )
    except KeyboardInterrupt as exc:
        # a signal before the run's steps go on (``execute`` handles those after): the run is
        # cancelled all the same (and its record sealed, as every save with the key)
        return signals.cancel_recorded(store, run_id, exc, log)
