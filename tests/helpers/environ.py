"""The environment a test gives the runner: the host's CI variables removed, so that a test run
inside a CI job (or a shell with ``RUNNER_ACTOR`` set) sees what a test run on a laptop sees."""

from __future__ import annotations

import os

#: the host's variables that would decide whether this is CI, which CI, who runs, which ref and
#: commit are deployed, the run id, where outputs and state go, and which approval server answers
HOST_VARIABLES = (
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "JENKINS_URL",
    "TF_BUILD",
    "RUNNER_ACTOR",
    "GITHUB_TRIGGERING_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "GITHUB_REF",
    "GITHUB_SHA",
    "CI_COMMIT_TAG",
    "CI_COMMIT_BRANCH",
    "CI_COMMIT_REF_NAME",
    "CI_COMMIT_SHA",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "CI_JOB_ID",
    "CI_PIPELINE_ID",
    "GITHUB_OUTPUT",
    "GITHUB_ENV",
    "GITHUB_PATH",
    "GITHUB_STEP_SUMMARY",
    "RUNNER_DEBUG",
    "RUNNER_STATE_DIR",
    "RUNNER_SERVER_TOKEN",
    "RUNNER_APPROVER_TOKEN",
    "RUNNER_SERVER_URL",
    "RUNNER_SERVER_DATABASE",
)

#: commits by a fixed author, whatever the host's git configuration, and never a prompt
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@e",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@e",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def host_env(**extra: str) -> dict[str, str]:
    """This process's environment without :data:`HOST_VARIABLES`, with ``NO_COLOR=1`` (output
    the tests can compare) and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in HOST_VARIABLES}
    env.update({"NO_COLOR": "1", **extra})
    return env
