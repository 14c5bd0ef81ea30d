"""``runner plan FILE --env ENV``: the dry run. Runs nothing; shows what would happen."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import click

from runner.cli.options import deployment_options, dry_run_options
from runner.gc_pause import gc_paused


@gc_paused()
def plan_text(
    path: str,
    environment: str,
    inputs: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    *,
    assume: str = "proceed",
    fields: tuple[str, ...] = (),
    output_format: str = "text",
    environ: Mapping[str, str] | None = None,
    insecure_local_trust: bool = False,
) -> str:
    """The plan of ``path`` for ``environment`` as text or JSON."""
    from runner.actor import current_actor
    from runner.engine.history import run_history, state_dir
    from runner.engine.plan import make_plan
    from runner.inputs import parse_pairs
    from runner.plan_view import plan_to_json, plan_to_text
    from runner.prepare import apply_policy, prepare

    env = dict(os.environ if environ is None else environ)
    prepared = prepare(path, environment, inputs, skip, env)
    prepared = apply_policy(
        prepared,
        history=run_history(state_dir(None, env, prepared.loaded.workspace)),
        environ=env,
        insecure=insecure_local_trust,
    )
    plan = make_plan(
        prepared.workflow,
        environment,
        inputs=prepared.inputs,
        variables=prepared.variables,
        skip=prepared.skip,
        assume="abort" if assume == "abort" else "proceed",
        fields=parse_pairs(fields, "--field"),
        created_by=current_actor(env),
        policy=prepared.policy,
    )
    if output_format == "json":
        return json.dumps(plan_to_json(plan), indent=2, ensure_ascii=False) + "\n"
    return plan_to_text(plan)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@deployment_options
@dry_run_options
@click.option(
    "--insecure-local-trust",
    is_flag=True,
    help="Read the policy from the working tree (local tries).",
)
def plan(
    file: str,
    environment: str,
    inputs: tuple[str, ...],
    skip: tuple[str, ...],
    output_format: str,
    assume: str,
    fields: tuple[str, ...],
    insecure_local_trust: bool,
) -> int:
    """Show what a run would do in an environment, step by step, without running anything."""
    click.echo(
        plan_text(
            file,
            environment,
            inputs,
            skip,
            assume=assume,
            fields=fields,
            output_format=output_format,
            insecure_local_trust=insecure_local_trust,
        ),
        nl=False,
    )
    return 0
