"""Who is running the deployment, as the CI or the machine names them (effects: environment)."""

from __future__ import annotations

import os
import pwd
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
    login = os_account()
    return Identity(id=login, username=login, display_name=login)


def os_account() -> str:
    """The OS account the runner runs as: its effective user's name in the password database,
    never ``$LOGNAME`` or ``$USER`` (``getpass.getuser`` reads those first, and anyone can set
    them: ``LOGNAME=alice runner run`` answered the prompt as alice)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, OSError):
        # an account without a name (a container's bare uid) is nobody in a people file
        return f"uid-{os.geteuid()}"
