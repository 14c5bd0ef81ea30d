"""Hostile files on the approvals branch: anyone who can push there (any SSH key, trusted or
not) must only ever get a refusal, never stop or sway a waiting run.
"""

from __future__ import annotations

import hashlib

import pytest
from helpers.approval_world import World

GATED = """\
name: Seed
environments: [production]
approvals:
  trust: {ref: refs/remotes/origin/approvals-trust, people: trust/people.yml, \
allowed-signers: trust/allowed_signers, revoked-keys: trust/revoked_keys}
  file: {remote: origin, branch: approvals, path: approvals, poll-seconds: 1}
steps:
  - id: gate
    name: Approve release
    manual:
      teams: [trading-desk]
      timeout-minutes: 0.05
  - id: after
    name: After
    run: echo after
"""

NAME = "gate.mallory@example.com.json"


def run_with_file(
    world: World, monkeypatch: pytest.MonkeyPatch, run_id: str, raw: bytes
) -> tuple[int, str]:
    world.commit_workflow(GATED)
    world.push_signed(raw, world.keys.mallory, run_id=run_id, name=NAME)
    done = world.run_here(monkeypatch, "--run-id", run_id)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b'{"format": "runner-approval/v1"}' + b" " * 70_000, id="too-large"),
        pytest.param(b'{"a": 1, "a": 2}', id="duplicate-keys"),
        pytest.param("\udcff".encode("utf-8", "surrogateescape"), id="not-utf8"),
    ],
)
def test_a_malformed_signed_file_is_refused_and_the_run_times_out(
    world: World, monkeypatch: pytest.MonkeyPatch, raw: bytes
) -> None:
    code, output = run_with_file(world, monkeypatch, "h1", raw)
    assert code == 4, output
    assert f"warning: refused file: {NAME}:" in output
    assert "internal error" not in output


def test_a_deeply_nested_signed_file_is_refused_not_a_crash(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run_with_file(world, monkeypatch, "h2", b"[" * 20_000)
    assert "internal error" not in output, output
    assert code == 4, output
    assert f"warning: refused file: {NAME}:" in output


def test_a_signed_body_holding_half_a_character_is_refused_not_a_crash(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed by a trusted approver, notes holding a lone `\\ud800` escape went into the run's
    record, which cannot be written with one: an internal error in the middle of the gate."""
    path = world.commit_workflow(GATED)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    request = world.request(run_id="h3", digest=digest, commit=world.head)
    raw = world.body(request, world.keys.alice, notes="ok HALF").encode()
    raw = raw.replace(b"ok HALF", b"ok \\ud800")
    world.push_signed(raw, world.keys.alice, run_id="h3", name="gate.alice@example.com.json")
    done = world.run_here(monkeypatch, "--run-id", "h3")
    output = done.stdout + done.stderr
    assert "internal error" not in output, output
    assert done.returncode == 4, output
    assert "approval body holds half of a character" in output
