"""What the approval server would refuse in a question the workflow writes itself.

A manual step or a guided failure that asks the server sends it the step's name and id, the
workflow's name, the environment, the title, the instructions, the teams and quorum rules, the
fields and the names of the steps after it. Past the server's sizes
(:mod:`runner.request_limits`) the server answers 422 and the gate fails, but only once a
deployment reaches it: here, ``runner validate`` says so first, at the key to shorten.
Instructions and a title holding an expression are checked as written; they can only be
judged once rendered, at the gate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from runner.errors import Diagnostic, Location
from runner.model import Field, GuidedFailure, Manual, Quorum, Step, Workflow
from runner.request_limits import FOLLOWING_STEPS, INSTRUCTIONS_CHARS, LIST_ITEMS, TEXT_CHARS

KIND = "approval"


def check_server_limits(workflow: Workflow) -> Iterator[Diagnostic]:
    """A diagnostic for each part of a server question over the server's size (each once: a
    workflow's ``guided-failure`` applies to every step)."""
    configured = workflow.approvals.sources
    asking = [step for step in workflow.steps if _asks_server(_asker(step), configured)]
    if not asking:
        return
    where = workflow.location
    if len(workflow.name) > TEXT_CHARS:
        yield _too_long(where, "the workflow's `name`", TEXT_CHARS)
    for environment in workflow.environments:
        if len(environment) > TEXT_CHARS:
            yield _too_long(where, f"environment {environment[:40]!r}…", TEXT_CHARS)
    first = asking[0]
    # a question names its step, and lists the steps after it: every name from the first
    for step in workflow.steps[first.index :]:
        if len(step.name) > TEXT_CHARS:
            yield _too_long(step.at("name"), f"step `{step.id[:40]}`'s `name`", TEXT_CHARS)
    after = len(workflow.steps) - first.index - 1
    if after > FOLLOWING_STEPS:
        yield _diagnostic(
            first.at("name"),
            f"step `{first.id}` asks the approval server, which takes at most "
            f"{FOLLOWING_STEPS:,} steps after a question; {after:,} follow it here, so the gate "
            "fails in an environment that runs more than that",
            "warning",
        )
    seen: set[int] = set()
    for step in asking:
        if len(step.id) > TEXT_CHARS:
            yield _too_long(step.at("id"), f"step `{step.id[:40]}…`'s `id`", TEXT_CHARS)
        if step.manual is not None:
            yield from _manual(step, step.manual)
        elif step.guided is not None and id(step.guided) not in seen:
            seen.add(id(step.guided))
            guided = step.guided
            place = guided.location or step.location
            for key, items in (("teams", guided.teams), ("require", guided.require)):
                yield from _list(place, f"`guided-failure`'s `{key}`", items)


def _asker(step: Step) -> Manual | GuidedFailure | None:
    return step.manual if step.manual is not None else step.guided


def _asks_server(asker: Manual | GuidedFailure | None, configured: Sequence[str]) -> bool:
    return asker is not None and "server" in (asker.sources or configured)


def _manual(step: Step, manual: Manual) -> Iterator[Diagnostic]:
    if len(manual.title) > TEXT_CHARS and not _templated(manual.title):
        yield _too_long(step.at("manual.title"), "`manual.title`", TEXT_CHARS)
    if len(manual.instructions) > INSTRUCTIONS_CHARS and not _templated(manual.instructions):
        yield _too_long(step.at("manual.instructions"), "`manual.instructions`", INSTRUCTIONS_CHARS)
    for key, items in (("teams", manual.teams), ("require", manual.require)):
        yield from _list(step.at(f"manual.{key}"), f"`manual.{key}`", items)
    yield from _fields(step, manual.fields)


def _list(where: Location | None, what: str, items: Sequence[str | Quorum]) -> Iterator[Diagnostic]:
    """Teams or quorum rules: at most ``LIST_ITEMS``, each team's name at most ``TEXT_CHARS``."""
    if len(items) > LIST_ITEMS:
        yield _too_many(where, what, len(items))
    names = [item if isinstance(item, str) else item.team for item in items]
    if any(len(name) > TEXT_CHARS for name in names):
        yield _too_long(where, f"a team's name in {what}", TEXT_CHARS)


def _fields(step: Step, fields: Sequence[Field]) -> Iterator[Diagnostic]:
    where = step.at("manual.fields")
    if len(fields) > LIST_ITEMS:
        yield _too_many(where, "`manual.fields`", len(fields))
    for i, spec in enumerate(fields):
        if len(spec.options) > LIST_ITEMS:
            yield _too_many(where, f"field `{spec.name[:40]}`'s `options`", len(spec.options))
        texts = [("name", spec.name), ("label", spec.label)]
        texts += [("options", option) for option in spec.options]
        for key, text in texts:
            if len(text) > TEXT_CHARS and not (key == "label" and _templated(text)):
                place = step.where.get(f"manual.fields.{i}.{key}", where)
                yield _too_long(place, f"field `{spec.name[:40]}`'s `{key}`", TEXT_CHARS)
                break


def _templated(text: str) -> bool:
    return "#{" in text or "${{" in text


def _too_long(where: Location | None, what: str, limit: int) -> Diagnostic:
    return _diagnostic(
        where,
        f"{what} is longer than the {limit:,} characters the approval server takes: the gate "
        "would fail when a deployment reaches it; shorten it",
    )


def _too_many(where: Location | None, what: str, count: int) -> Diagnostic:
    return _diagnostic(
        where,
        f"{what} has {count:,} items, more than the {LIST_ITEMS} the approval server takes: the "
        "gate would fail when a deployment reaches it",
    )


def _diagnostic(where: Location | None, message: str, severity: str = "error") -> Diagnostic:
    assert where is not None  # a step's and a workflow's places fall back to their own
    return Diagnostic(where, message, KIND, severity)
