"""Which log format fits where the runner is running."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from runner.logs.base import BaseLog
from runner.logs.github import GitHubLog
from runner.logs.gitlab import GitLabLog
from runner.logs.jsonl import JsonLog
from runner.logs.text import TextLog


def choose_log(
    output_format: str, environ: Mapping[str, str], stream: TextIO | None = None
) -> BaseLog:
    """JSON when asked; GitHub's or GitLab's format inside their jobs; else the terminal's."""
    out = stream or sys.stdout
    if output_format == "json":
        return JsonLog(out)
    if environ.get("GITHUB_ACTIONS") == "true":
        return GitHubLog(
            out,
            summary_path=environ.get("GITHUB_STEP_SUMMARY"),
            workspace=environ.get("GITHUB_WORKSPACE"),
        )
    if environ.get("GITLAB_CI") == "true":
        return GitLabLog(out)

    color = "NO_COLOR" not in environ and hasattr(out, "isatty") and out.isatty()
    return TextLog(out, color=color)
