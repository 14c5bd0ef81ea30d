"""The pages stay up whatever a runner token stored before the server checked it: a lone
surrogate or a wrong type in one interruption, or a run record of an odd shape, shows that one
record mended or without the odd part, never a 500 for everyone; and the pages' forms keep the
limits the API keeps (attack pass)."""

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


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"notes": "N" * 10_001}, "notes are at most 10,000 characters"),
        ({"field_ticket": "T" * 1_001}, "at most 100 fields, each name and value of at most"),
        ({f"field_f{n}": "x" for n in range(101)}, "at most 100 fields"),
    ],
)
def test_the_web_form_keeps_the_submission_limits(
    server: Server, alice: Session, form: dict[str, str], says: str
) -> None:
    """The API refused notes over 10,000 characters; the form stored 200,000 and carried them
    into the deployment."""
    view = server.create(f"limits-{len(form)}-{len(str(form))}")
    assert server.assign("alice", view["id"]).status_code == 200
    answer = alice.post(
        f"/interruptions/{view['id']}/submit",
        {"csrf": alice.csrf(), "result": "proceed", **form},
    )
    assert answer.status_code == 422, answer.text[:300]
    assert says in answer.text
    assert server.get(view["id"])["submissions"] == []


@pytest.mark.parametrize(
    "record",
    [
        {"status": "running", "steps": []},
        {"status": "running", "started_by": "x", "steps": 5},
        {"status": "running", "started_by": {"username": ["x"]}, "steps": [1, {"name": "ok"}]},
    ],
)
def test_a_run_record_kept_before_the_checks_has_a_page(
    server: Server, alice: Session, record: dict[str, Any]
) -> None:
    """A record without `started_by`, or with `steps` not a list, made its page a bare 500."""
    run_id = f"odd-{abs(hash(str(record)))}"
    good = {"run_id": run_id, "status": "running", "started_by": {"username": "x"}, "steps": []}
    assert server.api("PUT", f"/runs/{run_id}", json=good).status_code == 200
    with server.store.tx() as c:
        c.execute(
            update(t.runs)
            .where(t.runs.c.run_id == run_id)
            .values(record={"run_id": run_id, **record})
        )
    page = alice.page(f"/runs/{run_id}")
    assert page.status_code == 200, page.text
    assert f"Run {run_id}" in page.text
