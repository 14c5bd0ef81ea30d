"""The attack tests' fixtures, from the helpers that own them: a ``workspace``
(``helpers.run_helpers``) and real ssh-keygen keys with the git world of the ``file`` source
(``helpers.approval_world``). The approval server's helpers are ``helpers.server_helpers``."""

from helpers.approval_world import keys, world, world_template
from helpers.run_helpers import workspace

__all__ = ["keys", "workspace", "world", "world_template"]
