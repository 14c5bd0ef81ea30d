"""The approval server and its web page for guided failure (issue 21): a failed step's question
shows what failed and the (already masked) log tail, escaped; its buttons are the request's
choices; each attempt is an interruption of its own; a decision is one of the choices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Server

FAILURE = {
    "exit_code": 3,
    "error": "",
    "timed_out": False,
    "log_tail": ["token is ***", "<script>alert(31)</script>", "attempt 1"],
}


def guided(server: Server, run_id: str, attempt: int, choices: list[str]) -> dict[str, Any]:
    return server.create(
        run_id,
        id=f"{run_id}--gate@attempt-{attempt}",
        title=f"Step 'Gate' failed with exit code 3 (attempt {attempt})",
        instructions=f"Choose {', '.join(choices)}.",
        kind="guided-failure",
        attempt=attempt,
        choices=choices,
        failure=FAILURE,
    )


def test_each_attempt_is_its_own_interruption(server: Server) -> None:
    first = guided(server, "gf-ids", 1, ["retry", "skip", "fail"])
    second = guided(server, "gf-ids", 2, ["skip", "fail"])
    assert (first["id"], second["id"]) == ("gf-ids--gate@attempt-1", "gf-ids--gate@attempt-2")
    assert second["request"]["choices"] == ["skip", "fail"]
    assert second["request"]["failure"] == FAILURE


def test_the_page_shows_the_failure_and_the_choices(server: Server) -> None:
    view = guided(server, "gf-page", 1, ["retry", "fail"])
    assert server.assign("alice", view["id"]).status_code == 200
    session = server.session("alice")
    try:
        page = session.page(f"/interruptions/{view['id']}").text
        failure = page.split('id="failure">', 1)[1].split("</div>", 1)[0]
        assert "attempt 1, exit code 3" in failure
        assert "token is ***\n&lt;script&gt;alert(31)&lt;/script&gt;\nattempt 1" in failure
        assert 'value="retry" id="retry">Retry</button>' in page
        assert 'value="fail" id="fail" class="abort">Fail</button>' in page
        assert 'id="proceed"' not in page and 'id="skip"' not in page
        answer = session.post(
            f"/interruptions/{view['id']}/submit",
            {"csrf": session.csrf(f"/interruptions/{view['id']}"), "result": "retry", "notes": ""},
        )
        assert answer.status_code == 303, answer.text
    finally:
        session.close()
    decided = server.get(view["id"])
    assert decided["state"] == "approved"
    assert [(s["username"], s["result"]) for s in decided["submissions"]] == [("alice", "retry")]


@pytest.mark.parametrize(
    ("result", "notes", "message"),
    [
        ("proceed", "x", "result must be skip or fail"),
        ("retry", "x", "result must be skip or fail"),
        ("skip", "", "a skip needs notes saying why"),
    ],
)
def test_a_decision_must_be_one_of_the_choices(
    server: Server, result: str, notes: str, message: str
) -> None:
    view = guided(server, f"gf-bad-{result}-{bool(notes)}", 2, ["skip", "fail"])
    assert server.assign("bob", view["id"]).status_code == 200
    answer = server.submit("bob", view["id"], result, notes)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"] == message
    assert server.get(view["id"])["state"] == "waiting"


def test_a_manual_step_still_takes_only_proceed_or_abort(server: Server) -> None:
    view = server.create("gf-manual")
    assert server.assign("bob", view["id"]).status_code == 200
    answer = server.submit("bob", view["id"], "retry", "x")
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == "result must be proceed or abort"
