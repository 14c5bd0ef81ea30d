"""``runner plan FILE --env ENV``: the dry run. Runs nothing; shows what would happen."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import click
from msgspec import structs

from runner.actor import current_actor
from runner.cli.options import deployment_options, dry_run_options
from runner.engine.history import run_history, state_dir
from runner.engine.plan import make_plan
from runner.engine.preflight import approval_problems
from runner.gc_pause import gc_paused
from runner.inputs import parse_pairs
from runner.options import RunOptions
from runner.plan_view import outcome, plan_to_json, plan_to_text
from runner.prepare import apply_policy, prepare, require_environment


def plan_text(
    path: str,
    environment: str,
    inputs: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    **options: object,
) -> str:
    """The plan of ``path`` for ``environment`` as text or JSON."""
    return plan_result(path, environment, inputs, skip, **options)[0]  # type: ignore[arg-type]


@gc_paused()
def plan_result(
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
    stdin_tty: bool | None = None,
) -> tuple[str, int]:
    """The plan of ``path`` for ``environment`` as text or JSON, and the exit code a run would
    end with before its first step (5: the policy refuses; 1: a manual step nobody can decide
    here), else 0."""

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
    # the checks a run makes before its first step, but whether stdin is a terminal: a plan's
    # output is often captured, and says nothing of the terminal the run will have
    problems = approval_problems(
        prepared,
        env,
        RunOptions(insecure_local_trust=insecure_local_trust),
        stdin_tty=True if stdin_tty is None else stdin_tty,
    )
    plan = structs.replace(plan, problems=tuple(problems))
    code = outcome(plan)[1]
    anchor = prepared.anchor.describe() if prepared.anchor else None
    if output_format == "json":
        shown = {**plan_to_json(plan), "trust_anchor": anchor}
        return json.dumps(shown, indent=2, ensure_ascii=False) + "\n", code
    text = plan_to_text(plan)
    if anchor is None:
        return text, code
    first, _, rest = text.partition("\n")
    # where trust comes from, so that a reviewer sees that the workflow did not choose it
    return f"{first}\nTrust anchor: {anchor}\n{rest}", code


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
    environment: str | None,
    inputs: tuple[str, ...],
    skip: tuple[str, ...],
    output_format: str,
    assume: str,
    fields: tuple[str, ...],
    insecure_local_trust: bool,
) -> int:
    """Show what a run would do in an environment, step by step, without running anything."""
    return show_plan(
        file,
        require_environment(file, environment),
        inputs,
        skip,
        assume=assume,
        fields=fields,
        output_format=output_format,
        insecure_local_trust=insecure_local_trust,
    )


def show_plan(
    file: str,
    environment: str,
    inputs: tuple[str, ...],
    skip: tuple[str, ...],
    *,
    assume: str,
    fields: tuple[str, ...],
    output_format: str,
    insecure_local_trust: bool,
) -> int:
    """Print the plan (``runner plan``, ``runner run --dry-run``); its exit code."""
    text, code = plan_result(
        file,
        environment,
        inputs,
        skip,
        assume=assume,
        fields=fields,
        output_format=output_format,
        insecure_local_trust=insecure_local_trust,
    )
    click.echo(text, nl=False)
    return code
