"""The CI job around the runner: whether there is one (the prompt cannot ask there, and hints
differ), the run id it suggests, and the outputs handed back to it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

#: the variables CI services set in every job, the one that answers first names the service
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL", "TF_BUILD")


def in_ci(environ: Mapping[str, str]) -> str | None:
    """The name of the first CI variable set (and not to 0/false), or None outside CI."""
    for name in CI_VARIABLES:
        value = environ.get(name, "")
        if value and value.lower() not in ("0", "false"):
            return name
    return None


def default_run_id(environ: Mapping[str, str]) -> str:
    """The CI's run id and attempt where there is one, else a fresh sortable id."""
    if environ.get("GITHUB_RUN_ID"):
        return f"gh-{environ['GITHUB_RUN_ID']}-{environ.get('GITHUB_RUN_ATTEMPT', '1')}"
    if environ.get("CI_JOB_ID"):
        return f"gl-{environ.get('CI_PIPELINE_ID', '0')}-{environ['CI_JOB_ID']}"
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def write_job_outputs(environ: Mapping[str, str], values: Mapping[str, str]) -> str | None:
    """``values`` as outputs of the outer GitHub Actions job (its ``GITHUB_OUTPUT`` file, in the
    heredoc form, so a value may hold newlines); nothing outside GitHub Actions. What went wrong
    if the file cannot be written: the run has ended by then, and its exit code must stay its
    own (it was an internal error, exit 70, after a successful run or a detach)."""
    target = environ.get("GITHUB_OUTPUT")
    if environ.get("GITHUB_ACTIONS") != "true" or not target:
        return None
    try:
        with open(target, "a", encoding="utf-8") as out:
            for name, value in values.items():
                # random, so no value can end the heredoc early and add outputs of its own
                delimiter = f"runner_{secrets.token_hex(8)}"
                out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    except OSError as exc:
        return (
            f"cannot write the job's outputs to $GITHUB_OUTPUT ({target}): "
            f"{exc.strerror or exc}; the next jobs do not get them (the run id among them)"
        )
    return None
