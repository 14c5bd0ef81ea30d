"""Loading a workflow: bytes -> located YAML -> schema check -> model -> semantic checks."""

from __future__ import annotations

import difflib
from pathlib import Path

from msgspec import Struct, field

from runner.bounded import read_prefix
from runner.errors import Diagnostic, RunnerError, UsageError, WorkflowError
from runner.gc_pause import gc_paused
from runner.load.build import build_workflow
from runner.load.checks import check_urls, check_workflow, find_workspace
from runner.load.expression_checks import check_expressions
from runner.load.schema import validate_document
from runner.load.secret_checks import check_secret_outputs
from runner.load.yaml import MAX_FILE_BYTES, Document, LoadError, load_yaml
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
    """Load and check one workflow file; bad input becomes diagnostics, never an exception. A
    file that cannot be read at all is a usage error (:func:`read_workflow`)."""
    with gc_paused():
        return _check_file(path, raw)


#: the names of workflow files, for suggestions
WORKFLOW_SUFFIXES = (".yml", ".yaml")


def read_workflow(path: str | Path) -> bytes:
    """The bytes of the workflow file ``path``; a :class:`UsageError` when there is none to read:
    a missing file has no line to point at (it was "path:1:1: cannot read file", exit 1 from
    ``validate`` and 2 from ``run``), and a mistyped name is most often a letter off a file
    beside it (newcomer pass)."""
    try:
        # one byte past the limit is enough to refuse it: a link to /dev/zero or to a huge
        # file (a deployed commit can hold one) was read whole, a MemoryError
        return read_prefix(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint=_nearest(Path(path))) from None
    except IsADirectoryError:
        names = workflow_files(Path(path))
        raise UsageError(
            f"{path} is a folder, not a workflow file",
            hint=f"name one of its files, e.g. {names[0]}"
            if names
            else "it holds no *.yml or *.yaml file",
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def workflow_files(folder: Path) -> list[str]:
    """The workflow files directly in ``folder``, as paths from where it was named, sorted."""
    try:
        found = sorted(p for p in folder.iterdir() if p.suffix in WORKFLOW_SUFFIXES and p.is_file())
    except OSError:
        return []
    return [str(p) for p in found]


def _nearest(path: Path) -> str | None:
    """ "did you mean ...?" with the workflow file beside ``path`` whose name is nearest."""
    beside = {Path(p).name: p for p in workflow_files(path.parent)}
    close = difflib.get_close_matches(path.name, list(beside), n=1)
    if close:
        return f"did you mean {beside[close[0]]}?"
    if not path.parent.is_dir():
        return f"there is no folder {path.parent}"
    return None


def _check_file(path: str | Path, raw: bytes | None) -> Loaded:
    shown = str(path)
    data = raw if raw is not None else read_workflow(path)
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
