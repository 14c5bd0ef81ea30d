"""The approvals branch as the file source reads it: git calls per poll, and bounds kept once hit.

(The attacks it resists are ``tests/attacks/test_approvals_branch.py``'s.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from runner.approvals.branch import MAX_BLOBS
from runner.errors import ApprovalError

if TYPE_CHECKING:
    from helpers.approval_world import World


def signed_files(world: World, request: object, who: str) -> dict[str, bytes]:
    key = getattr(world.keys, who)
    raw = world.body(request, key).encode()
    name = f"approvals/r1/gate.{key.principal}.json"
    return {name: raw, name + ".sig": world.sign(raw, key)}


def test_an_idle_poll_is_one_ls_remote_and_a_push_is_read_at_the_next(world: World) -> None:
    request = world.request()
    source = world.source()
    source.register(request)
    world.push(signed_files(world, request, "alice"))
    assert [s.who for s in source.poll(request) if not s.problem] == ["alice@example.com"]
    assert source.branch is not None
    calls = source.branch.calls
    for _ in range(3):
        source.poll(request)
    assert source.branch.calls == calls + 3, "an idle poll must be a single ls-remote"
    world.push(signed_files(world, request, "bob"))
    who = sorted(s.who for s in source.poll(request) if not s.problem)
    assert who == ["alice@example.com", "bob@example.com"]
    # ls-remote, fetch (and show-ref), log, cat-file --batch-check, cat-file --batch
    assert source.branch.calls == calls + 3 + 6


def test_a_bound_once_passed_is_not_walked_again_until_the_branch_moves(world: World) -> None:
    request = world.request()
    junk = {f"approvals/r1/gate.j{n:04}.json": f"{n}\n".encode() for n in range(MAX_BLOBS + 1)}
    world.push(junk)
    source = world.source()
    source.register(request)
    with pytest.raises(ApprovalError) as first:
        source.poll(request)
    assert f"more than {MAX_BLOBS} versions of step gate's files" in first.value.message
    assert source.branch is not None
    calls = source.branch.calls
    with pytest.raises(ApprovalError) as again:
        source.poll(request)
    assert again.value is first.value
    assert source.branch.calls == calls + 1
