"""Checks of the ``${{ }}`` and ``#{}`` text in a workflow, each problem at its line and column.

- syntax, with the contexts GitHub allows at each key (``secrets`` never in ``if:``, status
  functions only in ``if:``);
- ``steps.<id>`` and ``Octopus.Action[Name]`` references to unknown or later steps, and
  ``inputs.<name>`` to inputs the workflow does not declare;
- a warning where an untrusted value (inputs, step outputs, manual notes) is pasted into a ``run``
  script, which can inject shell code; the safe pattern passes it through ``env``;
- a warning on a bare ``if: steps.x.outputs.approved``: the string ``'false'`` is truthy;
- ``#{}`` templates that would come back verbatim.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from msgspec import Struct

from runner import expressions, variables
from runner.errors import Diagnostic, ExpressionError, Location
from runner.expressions.ast import Call, Index, Literal, NamedValue, walk
from runner.expressions.functions import format_
from runner.load.yaml import Document, Path, position_in_text
from runner.model import MANUAL_OCTOPUS_OUTPUTS, MANUAL_OUTPUTS, Step, Workflow

if TYPE_CHECKING:
    from runner.expressions.ast import Node

ALL = ("env", "vars", "inputs", "secrets", "steps", "deployment", "runner", "job")
IN_IF = ("env", "vars", "inputs", "steps", "deployment", "runner", "job")
WORKFLOW_ENV = ("vars", "inputs", "secrets", "deployment", "runner")
HOST = ("hashfiles",)
STATUS = ("success", "failure", "always", "cancelled")
#: contexts whose values come from people or earlier steps, not from the workflow's author
UNTRUSTED = ("inputs", "steps")

_ACTION_REF = re.compile(r"Octopus\.Action\[([^\]]*)\]", re.IGNORECASE)
_STEP_STATUS_REF = re.compile(r"Octopus\.Step\[([^\]]*)\]", re.IGNORECASE)
#: a name ``#{}`` reads (``variables.references``) that is a step's output variable
_ACTION_OUTPUT_NAME = re.compile(r"Octopus\.Action\[([^\]#]*)\]\.Output\.(.+)", re.IGNORECASE)
_BARE_APPROVED = re.compile(
    r"^\s*!?\s*steps\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\.\s*outputs\s*\.\s*approved\s*$",
    re.IGNORECASE,
)


class Field(Struct, frozen=True):
    """One string in the workflow that may hold expressions."""

    path: Path
    text: str
    contexts: tuple[str, ...]
    functions: tuple[str, ...]
    step: Step | None
    is_run: bool = False
    is_if: bool = False


class _Steps:
    """The workflow's steps by id and by lower-cased name (the first of each), so that checking
    every reference costs the same whatever the number of steps."""

    def __init__(self, workflow: Workflow) -> None:
        self.by_id: dict[str, Step] = {}
        self.by_name: dict[str, Step] = {}
        for step in workflow.steps:
            self.by_id.setdefault(step.id, step)
            self.by_name.setdefault(step.name.lower(), step)


def check_expressions(workflow: Workflow, doc: Document) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    steps = _Steps(workflow)
    for field in _fields(workflow, doc):
        found.extend(_check_field(workflow, doc, field, steps))
    return found


def _fields(workflow: Workflow, doc: Document) -> Iterator[Field]:
    data = doc.data
    for name, value in (data.get("env") or {}).items():
        if isinstance(value, str):
            yield Field(("env", name), value, WORKFLOW_ENV, HOST, None)
    for name, spec in (data.get("outputs") or {}).items():
        path: Path = ("outputs", name) if isinstance(spec, str) else ("outputs", name, "value")
        text = spec if isinstance(spec, str) else spec.get("value", "")
        yield Field(path, text, ALL, HOST, None)
    for step in workflow.steps:
        raw = data["steps"][step.index]
        base: Path = ("steps", step.index)
        if isinstance(raw.get("if"), str):
            yield Field((*base, "if"), raw["if"], IN_IF, HOST + STATUS, step, is_if=True)
        for key in ("run", "working-directory", "continue-on-error"):
            if isinstance(raw.get(key), str):
                yield Field((*base, key), raw[key], ALL, HOST, step, is_run=key == "run")
        for group in ("env", "with"):
            for name, value in (raw.get(group) or {}).items():
                if isinstance(value, str):
                    yield Field((*base, group, name), value, ALL, HOST, step)
        manual = raw.get("manual") or {}
        for key in ("title", "instructions"):
            if isinstance(manual.get(key), str):
                yield Field((*base, "manual", key), manual[key], ALL, HOST, step)
        for i, spec in enumerate(manual.get("fields") or []):
            if isinstance(spec.get("label"), str):
                yield Field((*base, "manual", "fields", i, "label"), spec["label"], ALL, HOST, step)


def _check_field(
    workflow: Workflow, doc: Document, field: Field, steps: _Steps
) -> Iterator[Diagnostic]:

    text = field.text
    if field.is_if and "#{" not in text and "${{" not in text:
        spans = [(0, text)]  # an `if` is an expression with or without the ${{ }} wrapper
    else:
        try:
            templates = expressions.find_templates(text) if "${{" in text else []
        except ExpressionError as exc:
            offset = getattr(exc, "offset", 0)
            yield _at(doc, field.path, text, offset, exc.message, "expression")
            return
        spans = [(t.start + 3, t.expression) for t in templates]
    for offset, expression in spans:
        if not expression.strip():
            continue
        try:
            # the same tree as with all of ALL and HOST + STATUS allowed (names only decide
            # whether it parses), which the checks below read
            tree = expressions.parse(expression, field.contexts, field.functions)
        except ExpressionError as exc:
            message = exc.message
            if "Unrecognized named-value: 'secrets'" in message and field.is_if:
                message += "; `secrets` is not available in `if:` (GitHub refuses it too)"
            elif "Unrecognized function" in message and field.functions == HOST:
                message += "; status functions are only available in `if:`"
            elif message.startswith("Unrecognized named-value"):
                # GitHub's message names no way out: say which contexts this key has
                message += f"; the contexts here are {', '.join(sorted(field.contexts))}"
            yield _at(doc, field.path, text, offset, message, "expression")
            continue
        yield from _references(workflow, doc, field, offset, tree, steps)
        for message in _format_errors(tree):
            yield _at(doc, field.path, text, offset, message, "expression")
        if field.is_run and field.step is not None:
            used = _named_values(tree) & set(UNTRUSTED)
            # an untrusted value one step removed: `env: {X: ${{ inputs.x }}}`, then `${{ env.X }}`
            tainted = _tainted_env(workflow, doc, field.step)
            used |= {tainted[name] for name in _env_names(tree) if name in tainted}
            if used:
                yield _at(
                    doc,
                    field.path,
                    text,
                    offset,
                    f"`{expression.strip()}` is pasted into the script, where a value from "
                    f"{' and '.join(sorted(used))} can inject shell code; pass it through `env:` "
                    'and use "$NAME" instead',
                    "injection",
                    warning=True,
                )
        if field.is_if:
            bare = _BARE_APPROVED.match(expression)
            if bare:
                yield _at(
                    doc,
                    field.path,
                    text,
                    offset,
                    f"`steps.{bare.group(1)}.outputs.approved` is the string 'true' or "
                    "'false', and both are truthy; compare it: "
                    f"`steps.{bare.group(1)}.outputs.approved == 'true'`",
                    "approval",
                    warning=True,
                )
    if "#{" in text:
        yield from _octopus(workflow, doc, field, steps)


def _format_errors(tree: Node | None) -> Iterator[str]:
    """The errors a ``format()`` with a written format string gives whatever its arguments
    are (``format('{1}', x)``): found when the step runs, after the steps before it ran."""
    if tree is None:
        return
    for node in walk(tree):
        if (
            isinstance(node, Call)
            and node.name == "format"
            and node.args
            and isinstance(node.args[0], Literal)
            and isinstance(node.args[0].value, str)
        ):
            try:
                format_([node.args[0].value, *("" for _ in node.args[1:])])
            except ExpressionError as exc:
                yield exc.message


def _env_names(tree: Node | None) -> set[str]:
    """The ``env.NAME`` (and ``env['NAME']``) an expression reads, upper-cased as env is."""

    if tree is None:
        return set()
    return {
        node.key.value.upper()
        for node in walk(tree)
        if isinstance(node, Index)
        and isinstance(node.target, NamedValue)
        and node.target.name == "env"
        and isinstance(node.key, Literal)
        and isinstance(node.key.value, str)
    }


def _tainted_env(workflow: Workflow, doc: Document, step: Step) -> dict[str, str]:
    """The env names (upper-cased) the step sees whose value holds an untrusted context, each
    with that context: the workflow's env, then the step's own (which wins, as at run time)."""

    found: dict[str, str] = {}
    raw_step = doc.data["steps"][step.index]
    for env in (doc.data.get("env") or {}, raw_step.get("env") or {}):
        for name, value in env.items():
            found.pop(str(name).upper(), None)
            if not isinstance(value, str) or "${{" not in value:
                continue
            try:
                templates = expressions.find_templates(value)
                used: set[str] = set()
                for template in templates:
                    used |= _named_values(expressions.parse(template.expression, ALL, HOST))
            except ExpressionError:
                continue  # reported where it is written
            untrusted = sorted(used & set(UNTRUSTED))
            if untrusted:
                found[str(name).upper()] = untrusted[0]
    return found


def _named_values(tree: Node | None) -> set[str]:
    """``expressions.referenced_named_values`` of the expression ``tree`` was parsed from."""

    return set() if tree is None else {n.name for n in walk(tree) if isinstance(n, NamedValue)}


def _references(
    workflow: Workflow, doc: Document, field: Field, offset: int, tree: Node | None, steps: _Steps
) -> Iterator[Diagnostic]:

    if tree is None:
        return
    for node in walk(tree):
        output = _manual_output_read(node, steps)
        if output is not None:
            step, name = output
            if name.lower() not in {n.lower() for n in _manual_outputs(step)}:
                yield _at(
                    doc,
                    field.path,
                    field.text,
                    offset,
                    f"manual step `{step.id}` has no output `{name}`, so this is always empty "
                    f"(its outputs: {', '.join(_manual_outputs(step))})",
                    "reference",
                )
        if (
            isinstance(node, Index)
            and isinstance(node.target, NamedValue)
            and node.target.name == "steps"
            and isinstance(node.key, Literal)
            and isinstance(node.key.value, str)
        ):
            yield from _step_reference(
                workflow, doc, field, offset, node.key.value, steps, by_name=False
            )
        elif (
            isinstance(node, Index)
            and isinstance(node.target, NamedValue)
            and node.target.name == "inputs"
            and isinstance(node.key, Literal)
            and isinstance(node.key.value, str)
            and node.key.value.lower() not in {name.lower() for name in workflow.inputs}
        ):
            # an input the workflow does not declare is always empty: `inputs.versoin` deployed
            # release "" without a word (GitHub looks names up ignoring case, as here)
            declared = ", ".join(workflow.inputs) or "none"
            yield _at(
                doc,
                field.path,
                field.text,
                offset,
                f"input `{node.key.value}` is not declared (inputs: {declared}); fix the name "
                "or add it under `inputs:`",
                "reference",
            )


def _read_at(text: str, name: str) -> int:
    """Where ``#{}`` in ``text`` reads ``name``: its first copy inside a ``#{`` that is not
    escaped (``##{`` is text), else the first ``#{``."""
    for found in re.finditer(re.escape(name), text, re.IGNORECASE):
        opening = text.rfind("#{", 0, found.start())
        if opening >= 0 and not text.startswith("##{", opening - 1):
            return found.start()
    return max(text.find("#{"), 0)


def _manual_output_read(node: Node, steps: _Steps) -> tuple[Step, str] | None:
    """The manual step and the output name ``node`` reads, if it is ``steps.<id>.outputs.<name>``
    (or with ``['...']``) of a manual step of the workflow."""
    if not (isinstance(node, Index) and isinstance(node.key, Literal)):
        return None
    outputs = node.target
    if not (
        isinstance(outputs, Index)
        and isinstance(outputs.key, Literal)
        and str(outputs.key.value).lower() == "outputs"
    ):
        return None
    step = outputs.target
    if not (
        isinstance(step, Index)
        and isinstance(step.target, NamedValue)
        and step.target.name == "steps"
        and isinstance(step.key, Literal)
    ):
        return None
    target = steps.by_id.get(str(step.key.value))
    if target is None or target.manual is None or not isinstance(node.key.value, str):
        return None
    return target, node.key.value


def _manual_outputs(step: Step) -> list[str]:
    assert step.manual is not None
    return [*MANUAL_OUTPUTS, *(f.name for f in step.manual.fields)]


def _manual_octopus_outputs(step: Step) -> list[str]:
    assert step.manual is not None
    return [*MANUAL_OCTOPUS_OUTPUTS, *(f"Manual.{f.name}" for f in step.manual.fields)]


def _step_reference(
    workflow: Workflow,
    doc: Document,
    field: Field,
    offset: int,
    key: str,
    steps: _Steps,
    *,
    by_name: bool,
) -> Iterator[Diagnostic]:
    target = steps.by_name.get(key.lower()) if by_name else steps.by_id.get(key)
    what = f"step name {key!r}" if by_name else f"step `{key}`"
    if target is None:
        choices = ", ".join(s.name if by_name else s.id for s in workflow.steps)
        yield _at(
            doc,
            field.path,
            field.text,
            offset,
            f"{what} does not exist (steps: {choices})",
            "reference",
        )
    elif field.step is not None and target.index >= field.step.index:
        when = "is this step" if target.index == field.step.index else "runs later"
        yield _at(
            doc,
            field.path,
            field.text,
            offset,
            f"{what} {when}; only the outputs of earlier steps are available here",
            "reference",
        )


def _octopus(
    workflow: Workflow, doc: Document, field: Field, steps: _Steps
) -> Iterator[Diagnostic]:

    for problem in variables.check(field.text):
        yield _at(doc, field.path, field.text, problem.offset, problem.message, "substitution")
    # the names `#{}` reads (not text outside it, nor `##{` escapes, nor a `calc`'s operators)
    defined = _variable_names(workflow)
    for reference in sorted(variables.references(field.text)):
        if not _is_known(reference, defined):
            yield _unknown_variable(doc, field, reference, defined)
        match = _ACTION_OUTPUT_NAME.fullmatch(reference)
        if match is None:
            continue
        target = steps.by_name.get(match.group(1).lower())
        if target is None or target.manual is None:
            continue  # a script step's outputs are whatever it writes
        name = match.group(2)
        known = _manual_octopus_outputs(target)
        if name.lower() not in {n.lower() for n in known}:
            yield _at(
                doc,
                field.path,
                field.text,
                _read_at(field.text, reference),
                f"manual step '{target.name}' has no output variable `{name}`, so "
                f"`#{{...}}` leaves this text as written (its output variables: "
                f"{', '.join(known)})",
                "reference",
            )
    for pattern in (_ACTION_REF, _STEP_STATUS_REF):
        for match in pattern.finditer(field.text):
            name = match.group(1)
            if "#{" in name:
                continue
            by_id = pattern is _STEP_STATUS_REF and name in steps.by_id
            yield from _step_reference(
                workflow, doc, field, match.start(1), name, steps, by_name=not by_id
            )
    if field.is_run and field.step is not None:
        inputs = {name.lower() for name in workflow.inputs}
        pasted = sorted(n for n in variables.references(field.text) if n.lower() in inputs)
        if pasted:
            at = field.text.find("#{")
            yield _at(
                doc,
                field.path,
                field.text,
                max(at, 0),
                f"input `{pasted[0]}` is pasted into the script through `#{{}}`, where "
                "its value can inject shell code; pass it through `env:` and use "
                '"$NAME" instead',
                "injection",
                warning=True,
            )
    first = _ACTION_REF.search(field.text) if field.is_run and field.step is not None else None
    if first is not None:
        yield _at(
            doc,
            field.path,
            field.text,
            first.start(),
            "a step's output variable is pasted into the script, where its value (manual "
            "notes, for one) can inject shell code; pass it through `env:` and use "
            '"$NAME" instead',
            "injection",
            warning=True,
        )


def _variable_names(workflow: Workflow) -> dict[str, str]:
    """The names ``#{}`` can read that the workflow defines (its variables and inputs), by
    their lower-cased form; the ``Octopus.`` system variables are the runner's."""
    names = {name.lower(): name for name in workflow.inputs}
    names.update((name.lower(), name) for name in workflow.variables)
    return names


def _is_known(reference: str, known: dict[str, str]) -> bool:
    """Whether ``reference`` reads a variable: itself, or a part of one (``Creds.password``,
    ``Servers[0]``: a JSON value's field), or a system variable; a name holding ``#{`` (built
    from another) cannot be told."""
    lowered = reference.lower()
    if lowered.startswith("octopus.") or "#{" in reference or lowered in known:
        return True
    return any(lowered[:at] in known for at, char in enumerate(lowered) if char in ".[" and at)


def _unknown_variable(
    doc: Document, field: Field, reference: str, known: dict[str, str]
) -> Diagnostic:
    close = difflib.get_close_matches(reference.lower(), list(known), n=1)
    hint = f"; did you mean `#{{{known[close[0]]}}}`?" if close else ""
    then = " (it stays as written, which an `if:` counts as true)" if field.is_if else ""
    return _at(
        doc,
        field.path,
        field.text,
        _read_at(field.text, reference),
        f"`#{{{reference}}}` names no variable or input of this workflow, nor a system "
        f"variable: `#{{}}` finds no value for it{then}{hint}",
        "reference",
        warning=True,
    )


def _at(
    doc: Document,
    path: Path,
    text: str,
    offset: int,
    message: str,
    kind: str,
    *,
    warning: bool = False,
) -> Diagnostic:
    location = position_in_value(doc, path, text, offset)
    return Diagnostic(location, message, kind, "warning" if warning else "error")


def position_in_value(doc: Document, path: Path, text: str, offset: int) -> Location:
    """The file position of ``text[offset]``, for a string value at ``path`` (see
    :func:`runner.load.yaml.position_in_text`)."""
    return position_in_text(doc.lines, doc.location(path), text, offset)
