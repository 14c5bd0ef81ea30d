"""The signed-file tests' fixtures (``helpers.approval_world``): real ``ssh-keygen`` keys, ``sign``,
``ssh_keygen_verify`` and a git ``world`` of one's own."""

from helpers.approval_world import (
    keys,
    sign_fixture,
    ssh_keygen_verify_fixture,
    world,
    world_template,
)

__all__ = ["keys", "sign_fixture", "ssh_keygen_verify_fixture", "world", "world_template"]
