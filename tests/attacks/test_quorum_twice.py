"""One person approving twice toward a quorum, through two different sources, counts once.

alice approves on the approval server (as the username ``alice``) and with a signed file (as
the principal ``alice@example.com``); both are the same person in the people file. A step that
needs two people from the desk still waits, with the second approval refused as already
counted; bob's approval then completes it. Real sources: the ``file`` source over git with
ssh-keygen signatures, and the ``server`` source against a real server on loopback.
"""

from __future__ import annotations

from datetime import UTC, datetime

from helpers.approval_world import World
from helpers.server_helpers import serving
from msgspec.structs import replace

from runner.approvals.server_client import ServerClient
from runner.approvals.server_source import ServerSource
from runner.approvals.wait import WaitOutcome, wait_for_decision
from runner.model import Approvals
from runner.model import ServerSource as ServerConfig
from runner.options import RunOptions
from runner.server.storage import Store, make_engine, migrate


def wait_once(world: World, request: object, sources: list[object]) -> WaitOutcome:
    refused: list[str] = []
    outcome = wait_for_decision(
        request,  # type: ignore[arg-type]
        sources,  # type: ignore[arg-type]
        world.directory(),
        None,
        now=lambda: datetime.now(UTC),
        sleep=lambda seconds: None,
        on_status=lambda verdict, remaining: None,
        on_refused=lambda refusal: refused.append(refusal.reason),
        on_source_error=lambda name, error: (_ for _ in ()).throw(error),
        detach=True,  # poll every source once, then report
    )
    return outcome


def test_one_person_through_two_sources_counts_once(world: World) -> None:
    engine = make_engine(f"sqlite:///{world.root / 'server.db'}")
    migrate(engine)
    store = Store(engine)
    store.import_directory(world.directory())
    runner_token = store.issue_token("runner", label="t")
    alice_token = store.issue_token("approver", "alice", label="t")
    bob_token = store.issue_token("approver", "bob", label="t")
    request = replace(world.request(), quorum=(("trading-desk", 2),), sources=("file", "server"))
    try:
        with serving(store) as url:
            server = ServerSource(
                environ={},
                approvals=Approvals(server=ServerConfig(url)),
                workspace=world.repo,
                directory=world.directory(),
                options=RunOptions(),
                client=ServerClient(url, runner_token, attempts=2, sleep=lambda s: None),
            )
            files = world.source()
            for source in (files, server):
                source.register(request)

            def approve(token: str) -> None:
                client = ServerClient(url, token, attempts=1)
                client.call("PUT", f"/interruptions/{request.id}/responsible", json={})
                client.call(
                    "POST",
                    f"/interruptions/{request.id}/submit",
                    json={"result": "proceed", "notes": "ok"},
                )

            # alice, twice: on the server, and as a signed file
            approve(alice_token)
            world.push_signed(world.body(request, world.keys.alice).encode(), world.keys.alice)
            server.register(request)  # idempotent: the server's current view, at once
            outcome = wait_once(world, request, [files, server])
            assert outcome.state == "detached"
            verdict = outcome.verdict
            assert [a.person.username for a in verdict.accepted] == ["alice"]
            assert verdict.progress == (("trading-desk", 1, 2),)
            assert {s.source for s in outcome.submissions} == {"file", "server"}
            (refusal,) = verdict.refused
            assert refusal.reason.endswith("alice already counted toward this step")

            # bob completes the quorum
            approve(bob_token)
            server.register(request)
            final = wait_once(world, request, [files, server])
            assert final.state == "approved"
            assert sorted(a.person.username for a in final.verdict.accepted) == ["alice", "bob"]
    finally:
        engine.dispose()
