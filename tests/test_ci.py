"""The CI job around the runner: detection, the run id it suggests, outputs handed back to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.anchor import unanchored_warning
from runner.ci import default_run_id, in_ci, write_job_outputs
from runner.model import Approvals, Trust, Workflow
from runner.steps.file_commands import parse_key_values


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"GITHUB_RUN_ID": "812", "GITHUB_RUN_ATTEMPT": "3"}, "gh-812-3"),
        ({"GITHUB_RUN_ID": "812"}, "gh-812-1"),
        ({"CI_JOB_ID": "77", "CI_PIPELINE_ID": "1001"}, "gl-1001-77"),
        ({"CI_JOB_ID": "77"}, "gl-0-77"),
        # GitHub's wins when both are set: it is the outer job
        ({"GITHUB_RUN_ID": "5", "CI_JOB_ID": "77"}, "gh-5-1"),
    ],
)
def test_the_ci_names_the_run(environ: dict[str, str], expected: str) -> None:
    assert default_run_id(environ) == expected


def test_outside_ci_a_run_id_sorts_by_time_and_does_not_repeat() -> None:
    first, second = default_run_id({}), default_run_id({"GITHUB_RUN_ID": ""})
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", first), first
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", second), second
    assert first != second


def test_outputs_reach_the_outer_github_job_in_its_own_format(tmp_path: Path) -> None:
    target = tmp_path / "github_output"
    target.write_text("earlier=1\n")  # what the job's own steps wrote stays
    values = {"run-id": "gh-1-1", "notes": "line one\nline two", "tricky": "EOF\nx=y"}
    write_job_outputs({"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(target)}, values)
    parsed = dict(parse_key_values(target.read_text(), source="GITHUB_OUTPUT"))
    assert parsed == {"earlier": "1", **values}


@pytest.mark.parametrize(
    "environ",
    [
        {"GITHUB_OUTPUT": "{target}"},  # a file of that name, outside GitHub Actions
        {"GITHUB_ACTIONS": "false", "GITHUB_OUTPUT": "{target}"},
        {"GITHUB_ACTIONS": "true"},
        {"GITLAB_CI": "true", "CI": "true"},
    ],
)
def test_outside_github_actions_no_outputs_are_written(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    target = tmp_path / "github_output"
    environ = {k: v.format(target=target) for k, v in environ.items()}
    write_job_outputs(environ, {"run-id": "r1"})
    assert not target.exists()


@pytest.mark.parametrize(
    ("environ", "warned"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"GITHUB_ACTIONS": "true"}, True),
        ({"BUILDKITE": "true"}, True),
        ({"JENKINS_URL": "https://ci.example.com/"}, True),
        # a CI variable turned off is outside CI, as the prompt and the lock's hints see it
        ({"CI": "false"}, False),
        ({"CI": "0"}, False),
    ],
)
def test_the_trust_anchor_warns_in_the_same_ci_as_everything_else(
    environ: dict[str, str], warned: bool
) -> None:
    workflow = Workflow(
        name="W",
        path="w.yml",
        digest="d",
        steps=(),
        approvals=Approvals(trust=Trust(people="people.yml", ref="refs/heads/trust")),
    )
    assert (unanchored_warning(workflow, environ) is not None) is warned
    assert (in_ci(environ) is not None) is warned
