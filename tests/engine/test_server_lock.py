"""The server's deployment lock as the runner asks for it: a refusal says what to do."""

from __future__ import annotations

from typing import Any

import pytest

from runner.engine.deployment_lock import acquire
from runner.engine.server_lock import ServerLock
from runner.errors import RefusedError


class Held:
    """A server whose lock ``holder`` keeps (every ask is refused)."""

    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder
        self.asked: list[tuple[str, str]] = []

    def call(self, method: str, path: str, **_: Any) -> Any:
        self.asked.append((method, path))
        return {"taken": False, **self.holder}


def lock(client: Held) -> ServerLock:
    return ServerLock(
        client,
        "k" * 32,
        "mine-1",
        "Deploy -> production",
        lease=60,
        say=lambda text: None,
        on_lost=lambda text: None,
    )


def take(held: ServerLock) -> None:
    acquire(held, wait=False, say=lambda text: None, sleep=lambda seconds: None)


def test_a_lock_held_by_a_detached_run_is_not_worth_waiting_for_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    client = Held({"run_id": "waiting-1", "since": "2026-12-04T10:00:00Z", "detached": True})
    with pytest.raises(RefusedError) as caught:
        take(lock(client))
    assert "detached at a block-deployments step" in caught.value.message
    assert caught.value.hint is not None
    assert "--wait-for-lock" not in caught.value.hint
    assert "runner resume waiting-1" in caught.value.hint
    assert client.asked == [("POST", "/locks/" + "k" * 32)]


@pytest.mark.parametrize(
    ("ci", "hint"),
    [
        ("true", "run the job again when that run has ended, or pass --wait-for-lock to queue"),
        ("", "wait for it with --wait-for-lock"),
    ],
)
def test_a_lock_held_by_a_running_deployment(
    monkeypatch: pytest.MonkeyPatch, ci: str, hint: str
) -> None:
    for name in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL", "TF_BUILD"):
        monkeypatch.delenv(name, raising=False)
    if ci:
        monkeypatch.setenv("CI", ci)
    client = Held(
        {"run_id": "busy-2", "since": "2026-12-04T10:00:00Z", "expires": "2026-12-04T10:01:00Z"}
    )
    with pytest.raises(RefusedError) as caught:
        take(lock(client))
    assert caught.value.message.startswith("Deploy -> production is being deployed by run busy-2")
    assert caught.value.hint == hint
