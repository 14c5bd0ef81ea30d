"""Semantic checks: what the schema cannot say about a workflow. Each returns diagnostics.

Expression-level checks (syntax, contexts allowed per key, step references, the shell-injection
warning) live in :mod:`runner.load.expression_checks`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from runner.errors import Diagnostic, Location, WorkflowError
from runner.load.action import MAX_NESTING, load_action
from runner.load.limit_checks import check_server_limits
from runner.load.yaml import Document
from runner.model import GuidedFailure, Step, Workflow
from runner.patterns import PatternError, compile_pattern
from runner.urls import url_problem
from runner.workspace import workspace_of


def _error(location: Location | None, message: str, kind: str) -> Diagnostic:
    assert location is not None
    return Diagnostic(location, message, kind)


def _warning(location: Location | None, message: str, kind: str) -> Diagnostic:
    assert location is not None
    return Diagnostic(location, message, kind, "warning")


def check_workflow(workflow: Workflow, workspace: Path) -> list[Diagnostic]:
    """Every semantic problem of ``workflow``; ``workspace`` is where ``./actions`` resolves."""
    found: list[Diagnostic] = []
    for check in (_unique_steps, _environments, _inputs, _manual_steps, _guided_failure):
        found.extend(check(workflow))
    found.extend(check_server_limits(workflow))
    found.extend(_actions(workflow, workspace))
    return found


#: a control character: a newline in a name printed as a log line writes a line of its own (a
#: GitHub workflow command such as ``::error::``), an escape code rewrites the terminal
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unique_steps(workflow: Workflow) -> Iterator[Diagnostic]:
    ids: dict[str, Step] = {}
    names: dict[str, Step] = {}
    for step in workflow.steps:
        if _CONTROL.search(step.name):
            yield _error(
                step.at("name"),
                f"`name` must be a name on one line, without control characters (it is printed "
                f"as a log line), got {step.name!r}",
                "schema",
            )
        if step.id in ids:
            first = ids[step.id].at("id")
            yield _error(
                step.at("id"),
                f"step id `{step.id}` is already used at line {first.line if first else '?'}; "
                "ids must be unique",
                "id",
            )
        ids.setdefault(step.id, step)
        key = step.name.lower()
        if key in names:
            first = names[key].at("name")
            yield _error(
                step.at("name"),
                f"step name {step.name!r} is already used at line {first.line if first else '?'}; "
                "names must be unique (Octopus addresses outputs by step name, ignoring case)",
                "id",
            )
        names.setdefault(key, step)


def _environments(workflow: Workflow) -> Iterator[Diagnostic]:
    known = set(workflow.environments)
    if not known:
        return
    for step in workflow.steps:
        for key, names in (
            ("environments", step.environments),
            ("exclude-environments", step.exclude_environments),
        ):
            for name in names:
                if name not in known:
                    yield _error(
                        step.at(key),
                        f"environment `{name}` is not one of the workflow's environments "
                        f"({', '.join(f'`{e}`' for e in workflow.environments)})",
                        "environment",
                    )
    for variable in workflow.variables.values():
        for value in variable.values:
            for name in value.environments:
                if name not in known:
                    yield _error(
                        value.location,
                        f"variable `{variable.name}` is scoped to `{name}`, which is not one of "
                        "the workflow's environments",
                        "environment",
                    )


def _inputs(workflow: Workflow) -> Iterator[Diagnostic]:
    for spec in workflow.inputs.values():
        if spec.type == "choice" and not spec.options:
            yield _error(
                spec.location, f"input `{spec.name}` is a choice but has no `options`", "input"
            )
        if (
            spec.default is not None
            and spec.type == "choice"
            and str(spec.default) not in (spec.options)
        ):
            yield _error(
                spec.location,
                f"the default of input `{spec.name}` is not one of its `options`",
                "input",
            )
        if (
            spec.default is not None
            and spec.type == "number"
            and (isinstance(spec.default, bool) or not isinstance(spec.default, (int, float)))
        ):
            yield _error(
                spec.location, f"the default of input `{spec.name}` must be a number", "input"
            )
        if (
            spec.default is not None
            and spec.type == "boolean"
            and not isinstance(spec.default, bool)
        ):
            yield _error(
                spec.location, f"the default of input `{spec.name}` must be true or false", "input"
            )


def _manual_steps(workflow: Workflow) -> Iterator[Diagnostic]:
    configured = workflow.approvals.sources
    trust = workflow.approvals.trust
    for step in workflow.steps:
        manual = step.manual
        if manual is None:
            continue
        where = step.at("manual")
        if step.timeout_minutes is not None:
            yield _error(
                step.at("timeout-minutes"),
                f"step `{step.id}`: a manual step's "
                "timeout goes in `manual.timeout-minutes` (with `on-timeout`)",
                "approval",
            )
        for source in manual.sources:
            if source not in configured:
                yield _error(
                    where,
                    f"step `{step.id}` asks the `{source}` source, but `approvals` does not "
                    f"configure it (configured: {', '.join(configured)})",
                    "approval",
                )
        if (manual.teams or manual.require or manual.prevent_self_approval) and trust is None:
            yield _error(
                where,
                f"step `{step.id}` names teams or prevents self-approval, which needs the "
                "people-and-teams file: add `approvals.trust.people`",
                "approval",
            )
        if manual.teams:
            for quorum in manual.require:
                if quorum.team not in manual.teams:
                    yield _error(
                        where,
                        f"`require` names team `{quorum.team}`, which is not one of the step's "
                        f"`teams` ({', '.join(manual.teams)})",
                        "approval",
                    )
        if manual.on_timeout == "proceed":
            yield _warning(
                where,
                f"step `{step.id}` proceeds when its timeout passes, without any approval; "
                "prefer `on-timeout: abort` unless that is really intended",
                "approval",
            )
        for i, spec in enumerate(manual.fields):
            if spec.pattern is not None:
                try:
                    compile_pattern(spec.pattern)
                except PatternError as exc:
                    yield _error(
                        step.at(f"manual.fields.{i}.pattern"),
                        f"field `{spec.name}`: `pattern` is not a regular expression: {exc}",
                        "approval",
                    )
        seen: set[str] = set()
        for spec in manual.fields:
            if spec.name in seen:
                yield _error(where, f"field `{spec.name}` is defined twice", "approval")
            seen.add(spec.name)


def _guided_failure(workflow: Workflow) -> Iterator[Diagnostic]:
    """Each ``guided-failure`` once: the workflow's, then every step's own."""
    configs: list[tuple[GuidedFailure, str]] = []
    if workflow.guided is not None:
        configs.append((workflow.guided, "the workflow's `guided-failure`"))
    for step in workflow.steps:
        if step.guided is None or step.guided is workflow.guided:
            continue
        if step.manual is not None:
            yield _error(
                step.guided.location,
                f"step `{step.id}` is a manual step, whose abort is already a decision: remove "
                "its `guided-failure`",
                "guided-failure",
            )
            continue
        configs.append((step.guided, f"step `{step.id}`'s `guided-failure`"))
        if step.continue_on_error is True:
            yield _warning(
                step.guided.location,
                f"step `{step.id}` continues on error, so its failure never asks anyone: remove "
                "`continue-on-error` or `guided-failure`",
                "guided-failure",
            )
    configured = workflow.approvals.sources
    trust = workflow.approvals.trust
    for guided, what in configs:
        where = guided.location
        for source in guided.sources:
            if source not in configured:
                yield _error(
                    where,
                    f"{what} asks the `{source}` source, but `approvals` does not configure it "
                    f"(configured: {', '.join(configured)})",
                    "guided-failure",
                )
        if (guided.teams or guided.require or guided.prevent_self_approval) and trust is None:
            yield _error(
                where,
                f"{what} names teams or prevents self-approval, which needs the "
                "people-and-teams file: add `approvals.trust.people`",
                "guided-failure",
            )
        if guided.teams:
            for quorum in guided.require:
                if quorum.team not in guided.teams:
                    yield _error(
                        where,
                        f"{what}: `require` names team `{quorum.team}`, which is not one of its "
                        f"`teams` ({', '.join(guided.teams)})",
                        "guided-failure",
                    )
        if guided.max_retries is not None and "retry" not in guided.choices:
            yield _error(
                where,
                f"{what} limits retries but does not offer `retry`: add `retry` to `choices` "
                "or remove the limit",
                "guided-failure",
            )
        if guided.on_timeout == "skip":
            yield _warning(
                where,
                f"{what} skips a failed step when its timeout passes, without anyone deciding; "
                "prefer `on-timeout: fail` unless that is really intended",
                "guided-failure",
            )
        if guided.on_timeout == "skip" and "skip" not in guided.choices:
            yield _error(
                where,
                f"{what} skips on timeout, but `skip` is not one of its `choices`: add it or "
                "use `on-timeout: fail`",
                "guided-failure",
            )


def action_path(workspace: Path, uses: str) -> Path:
    """The ``action.yml`` of a local action reference ``./actions/NAME``."""
    return workspace / uses / "action.yml"


def _actions(workflow: Workflow, workspace: Path) -> Iterator[Diagnostic]:
    """Each action the workflow uses, and each they use in turn, must exist and load: a broken
    ``action.yml`` (or one that uses itself) validated clean and failed only when run."""
    loaded: dict[str, int] = {}
    for step in workflow.steps:
        if step.uses and not action_path(workspace, step.uses).is_file():
            yield _error(
                step.at("uses"),
                f"action `{step.uses}` not found: the repository has no "
                f"{step.uses.removeprefix('./')}/action.yml",
                "action",
            )
        elif step.uses:
            yield from _action_problems(workspace, (step.uses,), loaded)


def _action_problems(
    workspace: Path, chain: tuple[str, ...], loaded: dict[str, int]
) -> Iterator[Diagnostic]:
    """The problems of the last action of ``chain`` (the actions that led to it, in order) and of
    the actions it uses; each action's own problems once (``loaded``: how deep each action was
    looked at). An action is looked at again when reached deeper than before, for the nesting
    limit only: looked at once, where it was first reached (``b -> a9``), a chain reaching it
    deeper (``b -> c1 -> ... -> c8 -> a9 -> a10``) passed ``validate`` and failed the run."""
    uses = chain[-1]
    before = loaded.get(uses)
    if before is not None and before >= len(chain):
        return
    loaded[uses] = len(chain)
    first = before is None
    try:
        action = load_action(action_path(workspace, uses))
    except WorkflowError as exc:
        if first:
            yield from exc.diagnostics
        return
    for nested in action.steps:
        if not nested.uses:
            continue
        if nested.uses in chain:
            if not first:
                continue  # said when the action was first looked at, or the cycle ends there
            cycle = " -> ".join((*chain[chain.index(nested.uses) :], nested.uses))
            yield _error(
                nested.location,
                f"action `{uses}` uses `{nested.uses}` again ({cycle}): an action cannot call "
                "itself; move the shared steps into an action of their own",
                "action",
            )
        elif len(chain) >= MAX_NESTING:
            yield _error(
                nested.location,
                f"actions nest more than {MAX_NESTING} deep here ({chain[0]} -> ... -> {uses} "
                f"-> {nested.uses}): a run refuses to go deeper; call fewer actions in turn",
                "action",
            )
        elif not action_path(workspace, nested.uses).is_file():
            if not first:
                continue
            yield _error(
                nested.location,
                f"action `{nested.uses}` not found: the repository has no "
                f"{nested.uses.removeprefix('./')}/action.yml",
                "action",
            )
        else:
            yield from _action_problems(workspace, (*chain, nested.uses), loaded)


def check_urls(doc: Document) -> list[Diagnostic]:
    """The approval server's and the webhooks' URLs (``server: {url}``, ``notify: {url}``) must be
    ones a request can be sent to: the schema only checks that they start with ``http(s)://``, and
    ``http://[::1`` passed it, then ended the run in an internal error at its first request."""
    found: list[Diagnostic] = []
    pending: list[tuple[tuple[str | int, ...], object]] = [((), doc.data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                where = (*path, key)
                if key == "url" and path[-1:] in (("server",), ("notify",)):
                    problem = url_problem(item) if isinstance(item, str) else None
                    if problem:
                        message = f"{problem}; write it in full, e.g. `https://host:8080`"
                        found.append(Diagnostic(doc.location(where), message, "url"))
                else:
                    pending.append((where, item))
        elif isinstance(value, list):
            pending.extend(((*path, i), item) for i, item in enumerate(value))
    return found


def find_workspace(workflow_path: Path) -> Path:
    """The folder ``./actions/...`` is relative to: the workflow's workspace root."""

    return workspace_of(workflow_path)
