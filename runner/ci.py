"""Whether the runner is inside a CI job: the prompt cannot ask there, and hints differ."""

from __future__ import annotations

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
