"""The web page's defences: markup from instructions, titles, notes and field values is inert; a
form POST needs its own session's CSRF token; the session cookie is HttpOnly and SameSite=Strict;
a revoked token's session ends; every page carries a Content-Security-Policy that forbids scripts.

The HTML is checked as served, and again in a real Chromium, where no dialog may open.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Approver, Server, Session

INSTRUCTIONS = """\
Release notes follow.

<script>alert(1)</script>

<img src=x onerror=alert(2)>

<a href="javascript:alert(3)">raw link</a>

[plain](javascript:alert(4)) [mixed](JaVaScRiPt:alert(5)) [spaced]( javascript:alert(6))
[entity](java&#x73;cript:alert(7)) [tab](java%09script:alert(8)) <javascript:alert(9)>
![image](javascript:alert(10)) [data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxMSk8L3NjcmlwdD4=)
[vb](vbscript:msgbox(12))

<svg onload=alert(13)>

[the runbook](https://example.com/runbook) and **bold**
"""
TITLE = "Release <script>alert(14)</script>"
FIELD_LABEL = "<img src=x onerror=alert(15)>"
FIELD_PATTERN = '" autofocus onfocus="alert(16)'
NOTES = "<script>alert(17)</script> and <img src=x onerror=alert(18)>"
FIELD_VALUE = '"><img src=x onerror=alert(19)>'
CONFIRM_NOTES = '"><script>alert(20)</script>'

DANGEROUS_TAGS = {"script", "img", "svg", "iframe", "object", "embed", "base", "meta", "link"}
BAD_SCHEMES = ("javascript:", "vbscript:", "data:")


class Tags(HTMLParser):
    """Every tag and attribute of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_inert(page: str) -> None:
    parser = Tags()
    parser.feed(page)
    for tag, attrs in parser.tags:
        assert tag not in DANGEROUS_TAGS or (tag == "meta" and attrs == [("charset", "utf-8")]), (
            tag,
            attrs,
        )
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, value)
            if name in ("href", "src", "action", "formaction"):
                cleaned = "".join((value or "").split()).lower()
                assert not cleaned.startswith(BAD_SCHEMES), (tag, name, value)


def assert_csp(answer: httpx.Response) -> None:
    policy = answer.headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives.get("default-src") == ["'none'"], policy
    assert "script-src" not in directives and "script-src-elem" not in directives, policy
    assert directives.get("frame-ancestors") == ["'none'"], policy
    assert directives.get("form-action") == ["'self'"], policy
    assert answer.headers.get("x-frame-options") == "DENY"
    assert answer.headers.get("x-content-type-options") == "nosniff"


def hostile(server: Server, run_id: str) -> dict[str, Any]:
    """An interruption whose every shown value is markup, decided by alice with hostile notes
    and field values, with a run record that repeats them."""
    view = server.create(
        run_id,
        title=TITLE,
        instructions=INSTRUCTIONS,
        workflow="<b onclick=alert(21)>wf</b>",
        environment="<script>alert(22)</script>",
        inputs={"<i>k</i>": "<script>alert(23)</script>"},
        fields=[
            {
                "name": "ticket",
                "type": "string",
                "label": FIELD_LABEL,
                "pattern": None,
                "required": False,
                "options": [],
            },
            {
                "name": "other",
                "type": "string",
                "label": "",
                "pattern": FIELD_PATTERN,
                "required": False,
                "options": [],
            },
        ],
        following_steps=["<img src=x onerror=alert(24)>"],
    )
    assert server.assign("alice", view["id"]).status_code == 200
    return view


@pytest.fixture(scope="module")
def decided(server: Server) -> dict[str, Any]:
    view = hostile(server, "xss-decided")
    answer = server.submit("alice", view["id"], "proceed", NOTES, {"ticket": FIELD_VALUE})
    assert answer.status_code == 200, answer.text
    record = {
        "run_id": "xss-decided",
        "workflow_name": "<script>alert(25)</script>",
        "environment": "production",
        "status": "success",
        "started_at": "2030-01-01T00:00:00Z",
        "started_by": {"username": "<img src=x onerror=alert(26)>"},
        "steps": [
            {
                "name": TITLE,
                "status": "success",
                "approval": {
                    "decisions": [
                        {
                            "result": "proceed",
                            "display_name": "<script>alert(27)</script>",
                            "source": "server",
                            "notes": NOTES,
                        }
                    ]
                },
            }
        ],
    }
    assert server.api("PUT", "/runs/xss-decided", json=record).status_code == 200
    return answer.json()


@pytest.fixture
def alice(server: Server) -> Any:
    session = server.session("alice")
    yield session
    session.close()


@pytest.fixture
def bob(server: Server) -> Any:
    session = server.session("bob")
    yield session
    session.close()


# -- markup is inert ---------------------------------------------------------------------------


def test_instructions_are_safe_markdown(server: Server, alice: Session) -> None:
    view = hostile(server, "xss-instructions")
    answer = alice.page(f"/interruptions/{view['id']}")
    assert answer.status_code == 200
    page = answer.text
    assert_inert(page)
    assert_csp(answer)
    box = page.split('id="instructions">', 1)[1].split("</div>", 1)[0]
    # raw HTML is shown as text, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in box
    assert "&lt;img src=x onerror=alert(2)&gt;" in box
    # Markdown still works, and safe links stay links
    assert "<strong>bold</strong>" in box
    assert '<a href="https://example.com/runbook">the runbook</a>' in box
    assert len(re.findall(r"<a\s", box)) == 1, box
    # every other value is escaped too
    assert "Release &lt;script&gt;alert(14)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(15)&gt;" in page
    assert "&#34; autofocus onfocus=&#34;alert(16)" in page
    assert "&lt;b onclick=alert(21)&gt;wf&lt;/b&gt;" in page


def test_notes_and_field_values_are_escaped(
    server: Server, alice: Session, decided: dict[str, Any]
) -> None:
    for path in (f"/interruptions/{decided['id']}", "/", "/runs/xss-decided"):
        answer = alice.page(path)
        assert answer.status_code == 200, path
        assert_inert(answer.text)
        assert_csp(answer)
    detail = alice.page(f"/interruptions/{decided['id']}").text
    assert (
        "&lt;script&gt;alert(17)&lt;/script&gt; and &lt;img src=x onerror=alert(18)&gt;" in detail
    )
    assert "ticket=&#34;&gt;&lt;img src=x onerror=alert(19)&gt;" in detail
    run = alice.page("/runs/xss-decided").text
    assert "&lt;script&gt;alert(27)&lt;/script&gt;" in run
    assert "&lt;script&gt;alert(25)&lt;/script&gt;" in run


def test_abort_confirmation_escapes_the_notes(server: Server, alice: Session) -> None:
    view = hostile(server, "xss-confirm")
    answer = alice.post(
        f"/interruptions/{view['id']}/submit",
        {"csrf": alice.csrf(), "result": "abort", "notes": CONFIRM_NOTES},
    )
    assert answer.status_code == 200
    assert "Abort the deployment?" in answer.text
    assert_inert(answer.text)
    assert_csp(answer)
    assert 'value="&#34;&gt;&lt;script&gt;alert(20)&lt;/script&gt;"' in answer.text
    assert server.get(view["id"])["state"] == "waiting"


def test_no_dialog_opens_in_the_browser(
    server: Server, decided: dict[str, Any], sign_in: Callable[[Server, str], Approver]
) -> None:
    alice = sign_in(server, "alice")
    # the probe works: a page that does run a script is caught
    alice.page.goto("about:blank")
    alice.page.set_content("<script>alert('probe')</script>")
    assert alice.dialogs == ["probe"]
    alice.dialogs.clear()

    waiting = hostile(server, "xss-browser")
    for path in (
        f"/interruptions/{decided['id']}",
        f"/interruptions/{waiting['id']}",
        "/",
        "/runs/xss-decided",
    ):
        alice.goto(server, path)
        assert alice.page.locator("script, img, svg, [onerror], [onload]").count() == 0, path
        for link in alice.page.locator("a").all():
            href = link.get_attribute("href") or ""
            assert href.startswith(("/", "https://")), (path, href)
        # hover and focus what a payload would have used
        alice.page.mouse.move(10, 10)
        alice.page.keyboard.press("Tab")
    # the abort confirmation page, through the form
    alice.goto(server, f"/interruptions/{waiting['id']}")
    alice.page.fill("textarea[name=notes]", CONFIRM_NOTES)
    alice.page.click("#abort")
    alice.page.wait_for_selector("#confirm-abort")
    assert alice.page.locator("script").count() == 0
    assert alice.dialogs == []
    assert server.get(waiting["id"])["state"] == "waiting"

    # and were markup ever to slip through, the policy stops it: a script put into a served
    # page does not run
    alice.goto(server, f"/interruptions/{waiting['id']}")
    alice.page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = \"alert('csp')\"; document.body.append(s); }"
    )
    alice.page.wait_for_timeout(200)
    assert alice.dialogs == []


# -- CSRF --------------------------------------------------------------------------------------


def test_a_form_post_without_its_csrf_token_is_refused(
    server: Server, alice: Session, bob: Session
) -> None:
    view = server.create("csrf-assign")
    path = f"/interruptions/{view['id']}"
    for data in ({}, {"csrf": ""}, {"csrf": "guessed"}, {"csrf": bob.csrf()}):
        answer = alice.post(f"{path}/assign", data)
        assert answer.status_code == 403, (data, answer.text)
        assert answer.json()["error"]["code"] == "csrf"
    assert server.get(view["id"])["responsible"] is None
    assert server.get(view["id"])["version"] == view["version"]

    # with its own token the same form works
    assert alice.post(f"{path}/assign", {"csrf": alice.csrf()}).status_code == 303
    assert server.get(view["id"])["responsible"] == "alice"

    for data in (
        {"result": "proceed", "notes": "x"},
        {"csrf": bob.csrf(), "result": "proceed", "notes": "x"},
        {"csrf": bob.csrf(), "result": "abort", "notes": "x", "confirm": "yes"},
    ):
        answer = alice.post(f"{path}/submit", data)
        assert answer.status_code == 403, (data, answer.text)
    after = server.get(view["id"])
    assert (after["state"], after["submissions"]) == ("waiting", [])

    # signing out needs it too, and a refused sign-out leaves the session alive
    assert alice.post("/logout", {}).status_code == 403
    assert alice.page("/").status_code == 200


def test_a_cross_site_form_does_not_carry_the_session(
    server: Server, sign_in: Callable[[Server, str], Approver]
) -> None:
    """Even with the right CSRF token, a form posted from another site is refused for its origin
    (and arrives without the SameSite=Strict cookie): the server changes nothing."""
    view = server.create("csrf-cross-site")
    alice = sign_in(server, "alice")
    csrf = alice.page.locator("input[name=csrf]").first.get_attribute("value")
    attack = (
        f'<form id="f" method="post" action="{server.url}/interruptions/{view["id"]}'
        f'/assign"><input name="csrf" value="{csrf}"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    alice.page.route(
        "http://attacker.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=attack),
    )
    with alice.page.expect_response(lambda r: r.url.endswith("/assign")) as posted:
        alice.page.goto("http://attacker.test/")
    # refused for its origin before anything else (without the cookie it would meet no session)
    assert posted.value.status == 403
    assert server.get(view["id"])["responsible"] is None
    # the session itself is still fine on the server's own site
    alice.goto(server, "/")
    assert alice.page.url == f"{server.url}/"


def login_from(server: Server, host: str, **headers: str) -> int:
    """The status of a sign-in POST sent to ``host`` with ``headers`` (Origin, Referer)."""
    answer = httpx.post(
        f"{server.url}/login",
        data={"token": server.tokens["alice"]},
        headers={"Host": host, **headers},
        timeout=15,
    )
    return answer.status_code


def test_an_origin_is_its_scheme_host_and_port_against_the_public_url(
    make_server: Callable[..., Server],
) -> None:
    """Attack pass: with --public-url https://approvals.example.com, a POST /login from
    `Origin: http://approvals.example.com` (a page a network attacker injects into any plain
    http visit) signed the approver in as the attacker: only the host was compared."""
    served = make_server(public_url="https://approvals.example.com")
    host = "approvals.example.com"  # as a TLS-terminating proxy forwards it
    assert login_from(served, host, Origin="https://approvals.example.com") == 303
    assert login_from(served, host, Origin="https://APPROVALS.example.com:443") == 303
    for origin in (
        "http://approvals.example.com",
        "https://approvals.example.com:8443",
        "http://evil.example",
        "null",
    ):
        assert login_from(served, host, Origin=origin) == 403, origin
    assert login_from(served, host, Referer="http://approvals.example.com/login") == 403
    assert login_from(served, host, Referer="https://approvals.example.com/login") == 303


def test_without_a_public_url_the_origin_is_the_requests_own(server: Server) -> None:
    own = server.url.removeprefix("http://")
    assert login_from(server, own, Origin=server.url) == 303
    assert login_from(server, own, Origin=f"https://{own}") == 403
    # a Host without a port is port 80: another port's origin is another origin
    assert login_from(server, "approvals.test", Origin="http://approvals.test:8080") == 403
    assert login_from(server, "approvals.test", Origin="http://approvals.test") == 303
    # behind a proxy ending TLS (no --public-url): the https page of that host is its own, a
    # review found every sign-in there refused; another port or host is not
    assert login_from(server, "approvals.test", Origin="https://approvals.test") == 303
    assert login_from(server, "approvals.test", Referer="https://approvals.test/login") == 303
    assert login_from(server, "approvals.test", Origin="https://approvals.test:8443") == 403
    assert login_from(server, "approvals.test", Origin="https://evil.test") == 403


# -- the session cookie ------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_and_samesite_strict(
    server: Server, sign_in: Callable[[Server, str], Approver]
) -> None:
    answer = httpx.post(f"{server.url}/login", data={"token": server.tokens["alice"]})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    attributes = {
        part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]
    }
    assert "httponly" in attributes, cookie
    assert attributes.get("samesite", "").lower() == "samesite=strict", cookie
    assert server.tokens["alice"] not in cookie  # the token itself never goes into the cookie

    alice = sign_in(server, "alice")
    [stored] = alice.context.cookies()
    assert (stored["httpOnly"], stored["sameSite"]) == (True, "Strict")
    assert alice.page.evaluate("document.cookie") == ""


def test_signing_out_ends_the_session_on_the_server(server: Server) -> None:
    session = server.session("bob")
    try:
        copied = session.client.cookies["runner_session"]
        assert session.post("/logout", {"csrf": session.csrf()}).status_code == 303
        replay = httpx.Client(base_url=server.url, cookies={"runner_session": copied})
        with replay:
            answer = replay.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
    finally:
        session.close()


def test_a_tampered_cookie_is_not_a_session(server: Server, alice: Session) -> None:
    cookie = alice.client.cookies["runner_session"]
    forged = httpx.Client(base_url=server.url, cookies={"runner_session": cookie[:-2] + "xx"})
    with forged:
        answer = forged.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"


def test_a_revoked_tokens_session_stops_working(server: Server) -> None:
    view = server.create("revoked")
    # a token of carol's own for this test, so that revoking it leaves the others' alone
    server.tokens["carol"] = server.store.issue_token("approver", "carol")
    carol = server.session("carol")
    try:
        csrf = carol.csrf()
        assert carol.page(f"/interruptions/{view['id']}").status_code == 200
        server.revoke("carol")
        for path, back in (
            ("/", "/login"),
            (f"/interruptions/{view['id']}", f"/login?next=%2Finterruptions%2F{view['id']}"),
            ("/runs/anything", "/login?next=%2Fruns%2Fanything"),
        ):
            answer = carol.page(path)
            assert answer.status_code == 303 and answer.headers["location"] == back, path
        answer = carol.post(f"/interruptions/{view['id']}/assign", {"csrf": csrf})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert server.get(view["id"])["responsible"] is None
        again = httpx.post(f"{server.url}/login", data={"token": server.tokens["carol"]})
        assert again.status_code == 401 and "runner_session" not in again.headers.get(
            "set-cookie", ""
        )
    finally:
        carol.close()


def test_only_approver_tokens_sign_in(server: Server) -> None:
    for token in (server.runner_token, "rnr_nothing_here", ""):
        answer = httpx.post(f"{server.url}/login", data={"token": token})
        assert answer.status_code in (401, 422), token
        assert "set-cookie" not in answer.headers


# -- headers -----------------------------------------------------------------------------------


def test_every_page_has_the_content_security_policy(server: Server, alice: Session) -> None:
    view = server.create("csp")
    assert_csp(httpx.get(f"{server.url}/login"))
    assert_csp(httpx.post(f"{server.url}/login", data={"token": "wrong"}))
    assert_csp(alice.page("/"))
    assert_csp(alice.page(f"/interruptions/{view['id']}"))
    # an error page too (abort without notes)
    refused = alice.post(
        f"/interruptions/{view['id']}/submit",
        {"csrf": alice.csrf(), "result": "abort", "notes": ""},
    )
    assert refused.status_code == 422
    assert_csp(refused)
    assert alice.csrf_of(refused.text) == alice.csrf()


def test_the_page_shows_the_steps_the_run_skips_escaped(server: Server, alice: Session) -> None:
    view = server.create("skipping-run", skipped=["backup", "<b onclick=alert(31)>x</b>"])
    page = alice.page(f"/interruptions/{view['id']}").text
    assert "<th>Skipped with --skip</th><td>backup, &lt;b onclick=alert(31)&gt;x&lt;/b&gt;" in page
    assert_inert(page)
    plain = server.create("plain-run")
    assert "Skipped with --skip" not in alice.page(f"/interruptions/{plain['id']}").text
