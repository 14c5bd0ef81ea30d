"""Who is running the deployment, as the CI or the machine names them (effects: environment)."""

from __future__ import annotations

import getpass
from collections.abc import Mapping

from runner.model import Identity

#: CI variables naming the person who triggered the job, in order of preference
ACTOR_VARIABLES = ("RUNNER_ACTOR", "GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN")


def current_actor(environ: Mapping[str, str]) -> Identity:
    """The CI's actor if set, else the local user name."""
    for name in ACTOR_VARIABLES:
        if environ.get(name):
            login = environ[name]
            return Identity(id=login, username=login, display_name=login)
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return Identity(id=login, username=login, display_name=login)
