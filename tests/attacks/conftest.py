"""The attack tests' fixtures, from the helpers that own them: a ``workspace``
(``helpers.run_helpers``), real ssh-keygen keys with the git world of the ``file`` source
(``helpers.approval_world``), and the approval server's (``tests/server/conftest.py``, loaded
under the module name ``server_helpers``)."""

from helpers.approval_world import keys, world, world_template
from helpers.paths import ROOT, borrow
from helpers.run_helpers import workspace

server_helpers = borrow("server_helpers", ROOT / "tests" / "server" / "conftest.py")

__all__ = ["keys", "server_helpers", "workspace", "world", "world_template"]
