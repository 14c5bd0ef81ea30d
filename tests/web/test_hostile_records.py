"""The pages stay up whatever a runner token stored before the server checked it: a lone
surrogate or a wrong type in one interruption, or a run record of an odd shape, shows that one
record mended or without the odd part, never a 500 for everyone (attack pass)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import update

from runner.server import tables as t

if TYPE_CHECKING:
    from conftest import Server, Session


@pytest.fixture
def alice(server: Server) -> Iterator[Session]:
    session = server.session("alice")
    yield session
    session.close()


def kept_unchecked(server: Server, run_id: str, **unchecked: Any) -> str:
    """An interruption of ``run_id`` whose request holds ``unchecked``, as a server kept it
    before it checked requests; its id."""
    view = server.create(run_id)
    with server.store.tx() as c:
        c.execute(
            update(t.interruptions)
            .where(t.interruptions.c.id == view["id"])
            .values(request={**view["request"], **unchecked})
        )
    return str(view["id"])


def test_one_bad_interruption_does_not_take_down_the_index(server: Server, alice: Session) -> None:
    server.create("fine-1")
    bad = kept_unchecked(server, "half-1", title="\ud800 gate")
    page = alice.page("/")
    assert page.status_code == 200, page.text
    assert "\ufffd gate" in page.text
    assert "/interruptions/fine-1--gate" in page.text
    assert alice.page(f"/interruptions/{bad}").status_code == 200
    assert server.api("GET", "/interruptions", who="alice").status_code == 200


def test_a_wrongly_typed_interruption_kept_before_the_checks_has_a_page(
    server: Server, alice: Session
) -> None:
    bad = kept_unchecked(server, "types-1", instructions=["x"], inputs="x")
    page = alice.page(f"/interruptions/{bad}")
    assert page.status_code == 200, page.text
    assert alice.page("/").status_code == 200
