"""Loading a workflow: bytes -> located YAML -> schema check -> model -> semantic checks."""

from __future__ import annotations

from pathlib import Path

from msgspec import Struct, field

from runner.errors import Diagnostic, Location, RunnerError, WorkflowError
from runner.gc_pause import gc_paused
from runner.load.build import build_workflow
from runner.load.checks import check_urls, check_workflow, find_workspace
from runner.load.expression_checks import check_expressions
from runner.load.schema import validate_document
from runner.load.secret_checks import check_secret_outputs
from runner.load.yaml import Document, LoadError, load_yaml
from runner.model import Workflow


class Loaded(Struct):
    """The outcome of checking one file: the model if it has no errors, and every diagnostic."""

    path: str
    workflow: Workflow | None
    diagnostics: list[Diagnostic]
    lines: list[str] = field(default_factory=list)
    document: Document | None = None
    workspace: Path = field(default_factory=Path.cwd)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def check_file(path: str | Path, *, raw: bytes | None = None) -> Loaded:
    """Load and check one workflow file; bad input becomes diagnostics, never an exception."""
    with gc_paused():
        return _check_file(path, raw)


def _check_file(path: str | Path, raw: bytes | None) -> Loaded:
    shown = str(path)
    try:
        data = raw if raw is not None else Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return Loaded(
            shown, None, [Diagnostic(Location(shown, 1, 1), f"cannot read file: {reason}", "file")]
        )
    try:
        doc = load_yaml(shown, data, substitutions=True)
    except LoadError as exc:
        return Loaded(shown, None, exc.diagnostics, _lines(data))
    workspace = find_workspace(Path(path))
    if not isinstance(doc.data, dict):
        message = "a workflow must be a YAML mapping with `name` and `steps`"
        return Loaded(
            shown,
            None,
            [Diagnostic(doc.location(()), message, "schema")],
            doc.lines,
            doc,
            workspace,
        )
    problems = validate_document(doc)
    if problems:
        problems = sorted(
            problems + _beyond_the_schema(doc, data, workspace, problems), key=Diagnostic.sort_key
        )
        return Loaded(shown, None, problems, doc.lines, doc, workspace)
    workflow = build_workflow(doc, data)

    problems = (
        check_workflow(workflow, workspace)
        + check_expressions(workflow, doc)
        + check_secret_outputs(workflow, doc)
        + check_urls(doc)
    )
    diagnostics = sorted(problems, key=Diagnostic.sort_key)
    has_errors = any(d.severity == "error" for d in diagnostics)
    return Loaded(shown, None if has_errors else workflow, diagnostics, doc.lines, doc, workspace)


def _beyond_the_schema(
    doc: Document, data: bytes, workspace: Path, schema_problems: list[Diagnostic]
) -> list[Diagnostic]:
    """The semantic problems of a file that also fails the schema: all of them at once, as
    actionlint reports, rather than a second round of fixes after the first. Best effort: a
    shape the schema refused may not build at all, and then its schema problems stand alone;
    a problem on a line the schema already reported is not said twice."""

    try:
        workflow = build_workflow(doc, data)
        found = check_workflow(workflow, workspace) + check_expressions(workflow, doc)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, RunnerError):
        return []
    reported = {(d.location.path, d.location.line) for d in schema_problems}
    return [d for d in found if (d.location.path, d.location.line) not in reported]


def load_workflow(path: str | Path) -> Loaded:
    """Like :func:`check_file`, but raise :class:`WorkflowError` unless the workflow is valid."""
    loaded = check_file(path)
    if loaded.workflow is None:
        raise WorkflowError(loaded.diagnostics)
    return loaded


def _lines(raw: bytes) -> list[str]:
    return raw.decode("utf-8", "replace").splitlines()
