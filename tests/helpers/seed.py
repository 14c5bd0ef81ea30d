"""The repository's seed workflow (``workflows/deploy-webapp.yml``) copied into a test's folder,
runnable there by the person running the tests: the traders' check at a terminal prompt."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

from helpers.net import free_port
from helpers.paths import ROOT

#: the person at the terminal, the one member of the trading desk in the copy's people file
USER = pwd.getpwuid(os.geteuid()).pw_name


def seed_copy(root: Path) -> Path:
    """The repository's seed workflow and actions, with a people file naming the current user.

    The demo site's ports are swapped for free ones so that parallel runs cannot collide."""
    text = (ROOT / "workflows" / "deploy-webapp.yml").read_text()
    assert text.count("8765") == 2 and text.count("8766") == 2
    text = text.replace("8765", str(free_port())).replace("8766", str(free_port()))
    (root / "deploy-webapp.yml").write_text(text)
    shutil.copytree(ROOT / "actions", root / "actions")
    (root / "approvals").mkdir()
    (root / "approvals" / "people.yml").write_text(
        "people:\n"
        f"  - id: u-me\n    username: {USER}\n    display-name: Pat Operator\n"
        "    email: pat@example.com\n"
        "teams:\n"
        f"  trading-desk: [{USER}]\n"
    )
    return root
