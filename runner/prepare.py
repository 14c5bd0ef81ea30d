"""What ``plan``, ``run`` and ``resume`` do before the first step: load the workflow and check the
command line against it (environment, inputs, ``--skip``), then resolve variables."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from msgspec import Struct, structs

from runner import policy
from runner.actor import current_actor
from runner.anchor import (
    Anchor,
    anchor_of,
    anchor_server,
    anchor_workflow,
    unanchored_warning,
)
from runner.approvals.trust import load_directory, pin_trust
from runner.errors import Diagnostic, UsageError, WorkflowError
from runner.git import Git, deployed_commit
from runner.inputs import parse_pairs, resolve_inputs
from runner.load import Loaded, load_workflow
from runner.model import Workflow
from runner.policy import Verdict
from runner.variables.resolve import VariableSet, resolve


class Prepared(Struct, frozen=True):
    loaded: Loaded
    workflow: Workflow
    environment: str
    inputs: Mapping[str, Any]
    variables: VariableSet
    skip: frozenset[str]
    #: the environment policy's verdict (None: no policy applies)
    policy: Verdict | None = None
    #: the trust anchor the environment sets (``RUNNER_TRUST_REF``), if any
    anchor: Anchor | None = None
    #: the secret inputs' values as given (``--input``), before their conversion: a number's
    #: text as written (``012345``), which the run masks as it masks the number
    secret_texts: tuple[str, ...] = ()


def warn_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare(
    path: str,
    environment: str,
    raw_inputs: Iterable[str],
    skip: Iterable[str],
    environ: Mapping[str, str],
    *,
    trust_commit: str | None = None,
    warn: Callable[[str], None] = warn_stderr,
    resumed: bool = False,
) -> Prepared:
    """Load ``path`` and check the request; raise a user error naming what to change.

    The trust anchor the environment sets replaces the workflow's choice of trust (refusing a
    workflow that names other trust), and the trust ref is pinned, before any step can run
    (``trust_commit`` when resuming)."""
    loaded = load_workflow(path)
    assert loaded.workflow is not None
    workflow = loaded.workflow
    anchor = anchor_of(environ)
    if loaded.document is not None:
        anchor_server(workflow, environ, loaded.document.location)
    if anchor is not None:
        assert loaded.document is not None
        # a resumed run's trust commit must be in the anchored ref's history: checked by
        # runner.engine.evidence against this workflow's (now anchored) trust ref
        workflow = anchor_workflow(workflow, anchor, loaded.document.location)
    warning = unanchored_warning(workflow, environ, trust_anchored=anchor is not None)
    if warning:
        warn(warning)
    trust = workflow.approvals.trust
    if trust is not None and trust.ref:  # only then is there a ref to pin (and a module to load)
        workflow = pin_trust(workflow, Git(loaded.workspace), trust_commit)
    check_environment(loaded, workflow, environment)
    # a resumed run's inputs are its record's (restored by the resume): a required one was
    # refused here, and such a run could not be resumed
    given = {} if resumed else parse_pairs(raw_inputs, "--input")
    inputs = {} if resumed else resolve_inputs(workflow.inputs, given)
    secret_texts = tuple(
        value
        for name, value in given.items()
        if name in workflow.inputs and workflow.inputs[name].secret
    )
    skipped = check_skip(workflow, skip)
    variables = resolve(workflow.variables, environment, environ)
    return Prepared(
        loaded,
        workflow,
        environment,
        inputs,
        variables,
        skipped,
        anchor=anchor,
        secret_texts=secret_texts,
    )


def require_environment(path: str, environment: str | None) -> str:
    """``environment``, or a usage error naming the environments ``path`` deploys to: a
    deployment always targets one (its lock, scoped variables and record are per environment),
    so a missing ``--env`` is never a default. The workflow is loaded first, so a broken one
    reports its own problems before this one."""
    if environment is not None:
        return environment
    workflow = load_workflow(path).workflow
    assert workflow is not None
    if workflow.environments:
        names = ", ".join(f"`{e}`" for e in workflow.environments)
        raise UsageError(
            f"--env is missing: {path} deploys to {names}",
            hint=f"name one, e.g. `--env {workflow.environments[0]}`",
        )
    raise UsageError(
        "--env is missing: name the environment to deploy to",
        hint=f"{path} declares no `environments:`, so any name is accepted, e.g. `--env dev`; "
        "the deployment lock, scoped variables and the run's record are per environment",
    )


#: an environment name, as the workflow schema has it (``$defs/environment-name``)
ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_environment(loaded: Loaded, workflow: Workflow, environment: str) -> None:
    if not ENVIRONMENT_NAME.fullmatch(environment):
        # a workflow without `environments:` takes any name, but not any text: the name is
        # printed in every log (a newline and `::warning::` made a GitHub workflow command),
        # and signed into approvals
        raise UsageError(
            f"--env {environment!r} is not an environment name",
            hint="use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        )
    if workflow.environments and environment not in workflow.environments:
        assert loaded.document is not None
        location = loaded.document.location(("environments",))
        allowed = ", ".join(f"`{e}`" for e in workflow.environments)
        message = (
            f"--env {environment}: this workflow deploys only to {allowed}; "
            "add the environment here or pick one of these"
        )
        raise WorkflowError([Diagnostic(location, message, "environment")])


def check_skip(workflow: Workflow, skip: Iterable[str]) -> frozenset[str]:
    ids = set()
    for key in skip:
        step = workflow.step(key)
        if step is None:
            raise UsageError(f"--skip {key}: no step has this id or name")
        if step.unskippable:
            why = "it is required" if step.required else "its manual step names teams"
            raise UsageError(f"--skip {key}: step `{step.id}` cannot be skipped: {why}")
        ids.add(step.id)
    return frozenset(ids)


def apply_policy(
    prepared: Prepared,
    *,
    history: Iterable[Mapping[str, Any]],
    environ: Mapping[str, str],
    insecure: bool,
    break_glass: str | None = None,
    now: datetime | None = None,
) -> Prepared:
    """Evaluate the environment's policy and put its approval step first in the workflow."""
    trust = prepared.workflow.approvals.trust
    if trust is None or not trust.policy:
        return prepared  # no policy file named: nothing to read, nor to import

    workflow = prepared.workflow
    git = Git(prepared.loaded.workspace)
    document = policy.load_policy(workflow, git, insecure=insecure)
    if document is None:
        return prepared
    actor = current_actor(environ)
    teams: list[str] = []
    if workflow.approvals.trust is not None:
        directory = load_directory(workflow.approvals.trust, git, "")
        person = directory.by_login(actor.username)
        teams = directory.teams_of(person) if person else []
    verdict = policy.evaluate(
        document,
        prepared.environment,
        ref=policy.current_ref(environ, git),
        now=now or datetime.now(UTC),
        history=history,
        digest=workflow.digest,
        commit=deployed_commit(git),
        actor_teams=teams,
        actor=actor.username,
        break_glass=break_glass,
    )
    gated = policy.with_policy_approval(workflow, document, prepared.environment)
    return structs.replace(prepared, workflow=gated, policy=verdict)
