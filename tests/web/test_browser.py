"""The approvers' web page in a real headless Chromium, against a real server, with a real run
waiting on it: sign in, find the step under "Needs approval", take responsibility, proceed with
notes and a field; the run goes on and names the approver. Another member of the team sees who
is responsible and cannot decide; an abort goes through its confirmation page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Approver, Run, Server

NOT_RESPONSIBLE = "take responsibility before submitting"


def test_proceed_in_the_browser_lets_the_waiting_run_go_on(
    server: Server,
    start_run: Callable[[Server, str], Run],
    sign_in: Callable[[Server, str], Approver],
    wait_until: Callable[..., Any],
) -> None:
    run = start_run(server, "web-proceed")
    alice = sign_in(server, "alice")
    page = alice.page

    # "Needs approval" lists the waiting step; its page says what is being approved
    assert page.locator("h1").inner_text() == "Needs approval"
    row = page.locator("tr", has=page.locator(f"a[href='/interruptions/{run.interruption_id}']"))
    assert row.count() == 1
    assert "trading-desk" in row.inner_text()
    row.locator("a", has_text="Approve release").click()
    page.wait_for_url(f"**/interruptions/{run.interruption_id}")
    assert page.locator("#state").inner_text().startswith("waiting")
    instructions = page.locator("#instructions")
    assert instructions.locator("strong").inner_text() == "trading desk"
    assert "1.4.2" in instructions.inner_text()
    assert "Web test" in page.content() and "production" in page.content()
    assert page.locator("#proceed").count() == 0  # nobody is responsible yet

    page.click("#assign")
    page.wait_for_selector("#responsible")
    assert page.locator("#responsible").inner_text() == "alice"
    assert server.get(run.interruption_id)["responsible"] == "alice"

    # bob, of the same team, in a browser of his own: sees alice has it and cannot decide
    bob = sign_in(server, "bob")
    bob.goto(server, f"/interruptions/{run.interruption_id}")
    assert bob.page.locator("#responsible").inner_text() == "alice"
    assert "alice has taken responsibility" in bob.page.content()
    assert bob.page.locator("#proceed").count() == 0
    assert bob.page.locator("#abort").count() == 0
    bob_csrf = bob.page.locator("input[name=csrf]").first.get_attribute("value")
    assert bob_csrf
    forged = bob.context.request.post(
        f"{server.url}/interruptions/{run.interruption_id}/submit",
        form={"csrf": bob_csrf, "result": "proceed", "notes": "bob sneaks in"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert NOT_RESPONSIBLE in forged.text() and "alice has it" in forged.text()
    view = server.get(run.interruption_id)
    assert (view["state"], view["responsible"], view["submissions"]) == ("waiting", "alice", [])
    assert run.process.poll() is None

    # alice proceeds with notes and the ticket field
    page.reload()
    assert page.locator("label", has_text="Change ticket").count() == 1
    page.fill("input[name=field_ticket]", "CHG-42")
    page.fill("textarea[name=notes]", "Desk told by phone")
    page.click("#proceed")
    page.wait_for_url(f"**/interruptions/{run.interruption_id}")
    assert page.locator("#state").inner_text().startswith("approved")
    decisions = page.locator("#decisions").inner_text()
    assert "proceed by alice" in decisions
    assert "Desk told by phone" in decisions and "ticket=CHG-42" in decisions

    assert run.finish() == 0, run.text()
    assert "approved by Alice Martin, notes Desk told by phone, ticket CHG-42" in run.text()
    gate = next(s for s in run.record()["steps"] if s["id"] == "gate")
    assert gate["outputs"]["responsible-user-username"] == "alice"
    assert gate["outputs"]["ticket"] == "CHG-42"
    [decision] = gate["approval"]["decisions"]
    assert (decision["username"], decision["source"], decision["result"]) == (
        "alice",
        "server",
        "proceed",
    )

    # the run's own page, from the record the runner keeps on the server
    def run_page_final() -> bool:
        page.goto(f"{server.url}/runs/{run.run_id}")
        return "success" in page.locator("p").first.inner_text()

    wait_until(run_page_final, "the final run record on the server", seconds=10)
    assert "proceed by Alice Martin via server: Desk told by phone" in page.content()

    # the index no longer lists it as waiting; it is under "Recently decided"
    page.goto(f"{server.url}/")
    assert page.locator(f"table a[href='/interruptions/{run.interruption_id}']").count() == 0
    assert "approved" in page.locator("ul").last.inner_text()
    assert alice.dialogs == [] and bob.dialogs == []


def test_abort_goes_through_the_confirmation_page(
    server: Server,
    start_run: Callable[[Server, str], Run],
    sign_in: Callable[[Server, str], Approver],
) -> None:
    run = start_run(server, "web-abort")
    bob = sign_in(server, "bob")
    page = bob.page
    bob.goto(server, f"/interruptions/{run.interruption_id}")
    page.click("#assign")
    page.wait_for_selector("#abort")

    # an abort without notes is refused, and nothing changes
    page.click("#abort")
    assert "An abort needs notes saying why." in page.locator("[role=alert]").inner_text()
    assert server.get(run.interruption_id)["state"] == "waiting"

    # with notes: first the confirmation page, which decides nothing by itself
    page.fill("textarea[name=notes]", "Trading window is open")
    page.click("#abort")
    page.wait_for_selector("#confirm-abort")
    assert page.locator("h1").inner_text() == "Abort the deployment?"
    assert "Trading window is open" in page.content()
    assert server.get(run.interruption_id)["state"] == "waiting"

    # "No, go back" leaves it waiting
    page.click("text=No, go back")
    page.wait_for_selector("#abort")
    view = server.get(run.interruption_id)
    assert (view["state"], view["submissions"]) == ("waiting", [])

    page.fill("textarea[name=notes]", "Trading window is open")
    page.click("#abort")
    page.click("#confirm-abort")
    page.wait_for_url(f"**/interruptions/{run.interruption_id}")
    assert page.locator("#state").inner_text().startswith("aborted")
    assert "abort by bob" in page.locator("#decisions").inner_text()

    assert run.finish() == 3, run.text()
    text = run.text()
    assert "Bob Chen" in text and "Trading window is open" in text
    gate = next(s for s in run.record()["steps"] if s["id"] == "gate")
    assert gate["outputs"]["approved"] == "false"
    assert gate["outputs"]["responsible-user-username"] == "bob"
    assert bob.dialogs == []


def test_someone_outside_the_team_cannot_take_responsibility(
    server: Server, sign_in: Callable[[Server, str], Approver]
) -> None:
    view = server.create("web-outsider")
    carol = sign_in(server, "carol")
    carol.goto(server, f"/interruptions/{view['id']}")
    carol.page.click("#assign")
    assert "carol is not in team trading-desk" in carol.page.locator("[role=alert]").inner_text()
    assert server.get(view["id"])["responsible"] is None


def test_signing_out_ends_the_session(
    server: Server, sign_in: Callable[[Server, str], Approver]
) -> None:
    alice = sign_in(server, "alice")
    alice.page.click("button:has-text('Sign out')")
    alice.page.wait_for_url("**/login")
    alice.goto(server, "/")
    assert alice.page.url.endswith("/login")


def test_a_wrong_token_does_not_sign_in(server: Server, browser: Any) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server.url}/login")
        page.fill("input[name=token]", server.runner_token)  # live, but not an approver's
        page.click("button:has-text('Sign in')")
        assert "not a live approver token" in page.locator("[role=alert]").inner_text()
        assert context.cookies() == []
    finally:
        context.close()
