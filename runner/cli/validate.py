"""``runner validate FILE...``: check workflows and print every problem."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from runner.cli.main import source_lines
from runner.diagnostics import render_json, render_text
from runner.errors import ExitCode, UsageError
from runner.load import check_file, read_workflow, workflow_files


def validate_files(paths: list[str], output_format: str) -> tuple[int, str]:
    """Check each file; return the exit code and the report (text or JSON)."""

    diagnostics = []
    lines: dict[str, list[str]] = {}
    files = [name for path in paths for name in _files(path)]
    # every file read before any is reported (a usage error is alone), and read once: a pipe
    # (`runner validate <(generate)`, /dev/stdin) or a FIFO has nothing left to read twice
    raws = [read_workflow(path) for path in files]
    for path, raw in zip(files, raws, strict=True):
        loaded = check_file(path, raw=raw)
        diagnostics.extend(loaded.diagnostics)
        lines[loaded.path] = loaded.lines
    failed = any(d.severity == "error" for d in diagnostics)
    if output_format == "json":
        report = render_json(diagnostics)
    else:
        # a problem of an action the workflow uses is in the action's file
        report = render_text(
            diagnostics, lambda p: lines[p] if p in lines else source_lines(p), color=_color()
        )
    return (ExitCode.STEP_FAILED if failed else ExitCode.SUCCESS), report


def _files(path: str) -> list[str]:
    """``path``, or the workflow files in it when it is a folder (``runner validate
    workflows``: click refused a folder with its own "Invalid value" message)."""
    if not os.path.isdir(path):
        return [path]
    found = workflow_files(Path(path))
    if not found:
        raise UsageError(
            f"{path} is a folder holding no *.yml or *.yaml file",
            hint="name the workflow files to check, or a folder that holds them",
        )
    return found


def _color() -> bool:

    return "NO_COLOR" not in os.environ and sys.stdout.isatty()


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="Diagnostics as text (actionlint's format) or a JSON list.",
)
def validate(files: tuple[str, ...], output_format: str) -> int:
    """Check workflow files: exit 0 when clean, 1 when there are problems, 2 on bad usage.

    A folder stands for the *.yml and *.yaml files in it; a file that is not there is bad
    usage."""
    code, report = validate_files(list(files), output_format)
    click.echo(report, nl=False)
    return code
