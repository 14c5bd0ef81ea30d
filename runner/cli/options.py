"""Options shared by ``plan``, ``run`` and ``resume``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def deployment_options(func: F) -> F:
    """``--env``, ``--input``, ``--skip``, ``--format``: what every deployment command takes."""
    decorators = [
        click.option(
            "--env",
            "environment",
            metavar="ENV",
            help="The environment to deploy to (required: without it, the workflow's "
            "environments are listed).",
        ),
        click.option(
            "--input",
            "inputs",
            multiple=True,
            metavar="NAME=VALUE",
            help="A run input (repeatable).",
        ),
        click.option(
            "--skip",
            "skip",
            multiple=True,
            metavar="STEP",
            help="Skip this step by id (not allowed for required or team steps).",
        ),
        click.option(
            "--format",
            "output_format",
            type=click.Choice(["text", "json"]),
            default="text",
            help="Human-readable text or JSON.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def dry_run_options(func: F) -> F:
    """``--assume`` and ``--field``: how a dry run decides manual steps."""
    decorators = [
        click.option(
            "--assume",
            type=click.Choice(["proceed", "abort"]),
            default="proceed",
            help="How the dry run decides manual steps (with --dry-run only).",
        ),
        click.option(
            "--field",
            "fields",
            multiple=True,
            metavar="NAME=VALUE",
            help="A simulated approver field value (repeatable; with --dry-run only).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func
