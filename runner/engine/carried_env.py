"""What a resumed run may take from its record of the environment steps set (#17).

Steps before a gate set environment variables and ``PATH`` entries (``RUNNER_ENV``,
``RUNNER_PATH``); the record keeps them, and a resumed run gives them to every later step, in
the job that holds the production secrets. Whoever rewrote an unsealed record chooses them, and
some names make a program run code of the writer's choice before it does anything else
(``LD_PRELOAD``, ``BASH_ENV``, an exported bash function...). Without a seal, a resume refuses
a record holding any of them; with one, the names were set by the workflow's own steps, but the
state folder's other files still travel unsealed, so nothing taken may point into it.

Pure: the caller passes the state folder and decides what to do with the problems.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

#: names that change how a program is loaded or started, or which configuration or helper
#: programs it runs (GitHub's runner refuses only NODE_OPTIONS in GITHUB_ENV: a step of the job
#: may set the others for the next, but a record from another job may not)
LOADER_NAMES = frozenset(
    name.casefold()
    for name in (
        "PATH",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "IFS",
        "CDPATH",
        "GLOBIGNORE",
        "HOME",
        "XDG_CONFIG_HOME",
        "ZDOTDIR",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "OPENSSL_CONF",
        "OPENSSL_ENGINES",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONUSERBASE",
        "PYTHONINSPECT",
        "PYTHONBREAKPOINT",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "PERL5DB",
        "RUBYOPT",
        "RUBYLIB",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
        "SSH_ASKPASS",
        "EDITOR",
        "VISUAL",
        "PAGER",
    )
)
#: prefixes of such names: the dynamic loaders, exported bash functions
#: (``BASH_FUNC_name%%``), and git's own variables (``GIT_SSH_COMMAND``, ``GIT_CONFIG_*``,
#: ``GIT_EXEC_PATH``, ``GIT_DIR``... each runs or points git at code of one's choice)
LOADER_PREFIXES = ("ld_", "dyld_", "bash_func_", "git_")


def loader_name(name: str) -> bool:
    folded = name.casefold()
    return folded in LOADER_NAMES or folded.startswith(LOADER_PREFIXES)


def _inside(path: str, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(folder)
    except ValueError:
        return False
    return True


def problems(
    env: Mapping[str, str], path: Sequence[str], state_dir: Path, *, sealed: bool
) -> list[str]:
    """What the resumed run must not take from the record, one message each."""
    state = Path(os.path.realpath(state_dir))
    found = []
    for name, value in env.items():
        if str(state) in value or str(state_dir) in value:
            # whatever its name (AWS_CONFIG_FILE, KUBECONFIG, SSL_CERT_FILE ... each can run a
            # command or trust a key): the state folder's files travel unsealed
            found.append(f"environment variable {name[:80]!r} names a file of the state folder")
        elif not sealed and loader_name(name):
            found.append(f"environment variable {name[:80]!r} (changes how programs start)")
    for item in path:
        for entry in item.split(os.pathsep) or [""]:
            if not sealed and not os.path.isabs(entry):
                found.append(f"PATH entry {entry[:200]!r} (not an absolute path)")
            elif os.path.isabs(entry) and _inside(entry, state):
                found.append(f"PATH entry {entry[:200]!r} (inside the state folder)")
    return found
