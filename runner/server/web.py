"""The approvers' web page: server-rendered HTML that works without JavaScript.

Login takes an approver token and sets a signed session cookie (HttpOnly, SameSite=Strict); every
request re-checks that the token is still live. Every form carries the session's CSRF token, and a
POST without it is refused. Every POST of the pages, ``/login`` included, must come from the
server's own origin (its ``Origin``, else its ``Referer``): a cross-origin ``POST /login`` with an
attacker's token would otherwise sign the victim in as the attacker (login CSRF, issue #17).
Instructions are Markdown rendered with raw HTML disabled and unsafe links dropped; every other
value is escaped by Jinja2. A Content-Security-Policy forbids scripts.
"""

from __future__ import annotations

import hmac
import os
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import DictLoader, Environment, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup
from msgspec import Struct

from runner.approvals.state import recorded_decisions
from runner.server.api import store_of, writes_of
from runner.server.app import create_app, status_of
from runner.server.changes import Writes
from runner.server.errors import Forbidden, ServerError
from runner.server.limits import BODY_SECONDS
from runner.server.notify import Notifier
from runner.server.storage import Caller, Store

COOKIE = "runner_session"
SESSION_SECONDS = 8 * 3600
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} - runner approvals</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;
text-align:left;vertical-align:top}.state{font-weight:bold}.error{color:#a00}
.box{border:1px solid #ccc;padding:1rem;margin:1rem 0;border-radius:4px}
button{padding:.4rem 1rem;margin-right:.5rem}.abort{color:#a00}
</style></head><body>
<header>{% if who %}<form method="post" action="/logout" style="float:right">
<input type="hidden" name="csrf" value="{{ csrf }}">Signed in as <b>{{ who.display_name }}</b>
<button>Sign out</button></form>{% endif %}<a href="/">Needs approval</a></header>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% block body %}{% endblock %}</body></html>"""

LOGIN = """{% extends "base" %}{% block body %}<h1>Sign in</h1>
<form method="post" action="/login"><input type="hidden" name="next" value="{{ next }}">
<p><label>Approver token
<input type="password" name="token" autocomplete="off" required></label></p>
<button>Sign in</button></form>{% endblock %}"""

INDEX = """{% extends "base" %}{% block body %}<h1>Needs approval</h1>
{% if not pending %}<p>Nothing waits for approval.</p>{% else %}<table>
<tr><th>Step</th><th>Deployment</th><th>Teams</th><th>Responsible</th><th>Waiting since</th></tr>
{% for i in pending %}<tr><td><a href="/interruptions/{{ i.id }}">{{ i.request.title }}</a></td>
<td>{{ i.request.workflow }} &rarr; {{ i.request.environment }}<br>
<a href="/runs/{{ i.run_id }}">run {{ i.run_id }}</a></td>
<td>{{ (i.request.teams or ['anyone'])|join(', ') }}</td><td>{{ i.responsible or '-' }}</td>
<td>{{ i.created }}</td></tr>{% endfor %}</table>{% endif %}
<h2>Recently decided</h2><ul>{% for i in decided %}<li><a href="/interruptions/{{ i.id }}">
{{ i.request.title }}</a>: {{ i.state }} ({{ i.request.environment }}, run {{ i.run_id }})</li>
{% endfor %}</ul>{% endblock %}"""

DETAIL = """{% extends "base" %}{% block body %}<h1>{{ i.request.title }}</h1>
<p class="state" id="state">{{ i.state }}{% if i.responsible %}, responsible:
<span id="responsible">{{ i.responsible }}</span>{% endif %}</p>
<div class="box" id="instructions">{{ instructions }}</div>
{% if i.request.kind == 'guided-failure' %}<h2>What failed</h2><div class="box" id="failure">
<p>Step {{ i.request.step_name }}, attempt {{ i.request.attempt }}{% if
i.request.failure.exit_code is not none %}, exit code {{ i.request.failure.exit_code }}{% endif
%}{% if i.request.failure.error %}: {{ i.request.failure.error }}{% endif %}</p>
<pre id="log-tail">{{ (i.request.failure.log_tail or [])|join('\n') }}</pre></div>{% endif %}
<h2>What is being approved</h2><table>
<tr><th>Deployment</th><td>{{ i.request.workflow }} &rarr; {{ i.request.environment }}</td></tr>
<tr><th>Run</th><td><a href="/runs/{{ i.run_id }}">{{ i.run_id }}</a>, started by
{{ i.request.started_by }}</td></tr>
<tr><th>Commit</th><td><code>{{ i.request.commit or '-' }}</code></td></tr>
<tr><th>Workflow digest</th><td><code>{{ i.request.digest }}</code></td></tr>
<tr><th>Inputs</th><td>{% for k, v in (i.request.inputs if i.request.inputs is mapping
else {}).items() %}<code>{{ k }}={{ v }}</code>
{% endfor %}</td></tr>
<tr><th>Steps that follow</th><td>{{ i.request.following_steps|join(', ') }}</td></tr>
{% if i.request.skipped %}<tr><th>Skipped with --skip</th><td>{{ i.request.skipped|join(', ')
}}</td></tr>{% endif %}
<tr><th>Who may decide</th><td>{{ (i.request.teams or ['anyone in the people file'])|join(', ')
}}{% for q in i.request.quorum %}; {{ q[1] }} from {{ q[0] }}{% endfor %}</td></tr>
<tr><th>Deadline</th><td>{{ i.request.deadline or 'none' }}</td></tr></table>
{% if i.state == 'waiting' %}
{% if i.responsible != who.username %}<form method="post" action="/interruptions/{{ i.id }}/assign">
<input type="hidden" name="csrf" value="{{ csrf }}">
{% if i.responsible %}<input type="hidden" name="reassign" value="yes">
<p>{{ i.responsible }} has taken responsibility.</p><button>Take it over</button>
{% else %}<button id="assign">Assign to me</button>{% endif %}</form>
{% else %}<form method="post" action="/interruptions/{{ i.id }}/submit" class="box">
<input type="hidden" name="csrf" value="{{ csrf }}">
{% for f in i.request.fields %}<p><label>{{ f.label or f.name }}{% if f.required %} *{% endif %}
{% if f.type == 'choice' %}<select name="field_{{ f.name }}"><option value=""></option>
{% for o in f.options %}<option>{{ o }}</option>{% endfor %}</select>
{% elif f.type == 'boolean' %}<select name="field_{{ f.name }}"><option value=""></option>
<option>true</option><option>false</option></select>
{% else %}<input name="field_{{ f.name }}"{% if f.pattern %} title="{{ f.pattern }}"{% endif %}>
{% endif %}</label></p>{% endfor %}
<p><label>Notes<br><textarea name="notes" rows="3" cols="60"></textarea></label></p>
{% if i.request.kind == 'guided-failure' %}{% for c in i.request.choices %}<button name="result"
value="{{ c }}" id="{{ c }}"{% if c == 'fail' %} class="abort"{% endif %}>{{ c|capitalize
}}</button>
{% endfor %}{% else %}<button name="result" value="proceed" id="proceed">Proceed</button>
<button name="result" value="abort" class="abort" id="abort">Abort</button>{% endif %}</form>
{% endif %}
{% endif %}
<h2>Decisions</h2><ul id="decisions">{% for s in i.submissions %}<li>{{ s.result }} by
{{ s.username }} at {{ s.at }}{% if s.notes %}: {{ s.notes }}{% endif %}{% for k, v in
s.fields.items() %} <code>{{ k }}={{ v }}</code>{% endfor %}</li>{% endfor %}</ul>
<h2>History</h2><ul>{% for h in history %}<li>{{ h.at }} {{ h.kind }} by {{ h.actor }}</li>
{% endfor %}</ul>{% endblock %}"""

CONFIRM = """{% extends "base" %}{% block body %}<h1>Abort the deployment?</h1>
<p>This stops <b>{{ i.request.workflow }}</b> in <b>{{ i.request.environment }}</b> at
<b>{{ i.request.title }}</b>. Notes: {{ notes }}</p>
<form method="post" action="/interruptions/{{ i.id }}/submit">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="notes"
value="{{ notes }}"><input type="hidden" name="confirm" value="yes">
<button name="result" value="abort" class="abort" id="confirm-abort">Yes, abort</button>
<a href="/interruptions/{{ i.id }}">No, go back</a></form>{% endblock %}"""

RUN = """{% extends "base" %}{% block body %}<h1>Run {{ r.run_id }}</h1>
<p>{{ r.workflow_name }} &rarr; {{ r.environment }}: <b>{{ r.status }}</b>, started
{{ r.started_at }} by {{ starter }}</p><table>
<tr><th>Step</th><th>Status</th><th>Decisions</th></tr>{% for s in steps %}<tr>
<td>{{ s.name }}</td><td>{{ s.status }}</td><td>{% for d in decisions(s.approval)
%}{{ d.result }} by {{ d.display_name }} via {{ d.source }}{% if d.notes %}: {{ d.notes
}}{% endif %}<br>{% endfor %}</td></tr>{% endfor %}</table>{% endblock %}"""


def render_markdown(text: str) -> Markup:
    """Markdown with raw HTML off and only http(s)/mailto links: instructions stay inert."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    md.validateLink = _safe_link  # type: ignore[method-assign]
    return Markup(md.render(text))


TEMPLATES = Environment(
    loader=DictLoader(
        {
            "base": BASE,
            "login": LOGIN,
            "index": INDEX,
            "detail": DETAIL,
            "confirm": CONFIRM,
            "run": RUN,
        }
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


class Pages(Struct, frozen=True):
    """What the pages need beyond the API's state: the session cookie's signer, and the
    server's public address (for the cookie's ``Secure`` flag)."""

    signer: URLSafeTimedSerializer
    public_url: str


def create_full_app(
    store: Store,
    *,
    public_url: str = "",
    webhook: str | None = None,
    secret: str | None = None,
    address: str = "",
    body_seconds: float = BODY_SECONDS,
) -> FastAPI:
    """The API plus the web page and the notifications. ``public_url`` is ``--public-url``
    (the only origin the pages' forms are taken from, when set); the notifications link to it,
    else to ``address``, where the server listens."""
    notifier = Notifier(webhook, public_url or address) if webhook else None
    signer = URLSafeTimedSerializer(
        secret or os.environ.get("RUNNER_SERVER_SECRET") or secrets.token_hex(32),
        salt="runner-session",
    )
    app = create_app(store, notify=notifier.send if notifier else None, body_seconds=body_seconds)
    app.state.pages = Pages(signer, public_url)
    app.add_middleware(SameOriginPosts, public_url=public_url)
    app.include_router(router)
    return app


def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(name).render(**values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


async def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


async def session(request: Request) -> tuple[Caller, str] | None:
    """The signed-in approver and the session's CSRF token, or None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = (await pages_of(request)).signer.loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:
        return None
    caller = await run_in_threadpool(
        (await store_of(request)).web_session_caller, str(data.get("session"))
    )
    if caller is None or caller.person is None:
        return None
    return caller, str(data.get("csrf"))


def check_csrf(expected: str, given: str) -> None:
    if not given or not hmac.compare_digest(expected, given):
        raise Forbidden(
            "csrf",
            "the form's CSRF token is missing or wrong; reload the page and try again",
        )


router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, store: Store = Depends(store_of)) -> Response:
    found = await session(request)
    if found is None:
        return to_login(request)
    who, csrf = found
    views = await run_in_threadpool(lambda: store.list_interruptions(pending=False, run=None))
    pending = [v for v in views if v["state"] == "waiting"]
    decided = [v for v in reversed(views) if v["state"] != "waiting"][:20]
    return page(
        "index",
        title="Needs approval",
        who=who.person,
        csrf=csrf,
        pending=pending,
        decided=decided,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(next: str = "") -> Response:
    return page("login", title="Sign in", who=None, next=safe_next(next))


@router.post("/login")
async def login(
    token: str = Form(...),
    next: str = Form(""),
    store: Store = Depends(store_of),
    pages: Pages = Depends(pages_of),
) -> Response:
    caller = await run_in_threadpool(store.authenticate, token.strip())
    if caller is None or caller.person is None or caller.kind not in ("approver", "admin"):
        return page(
            "login",
            status=401,
            title="Sign in",
            who=None,
            next=safe_next(next),
            error="That token is not a live approver token.",
        )
    session_id = await run_in_threadpool(
        lambda: store.start_web_session(caller.token_id, lifetime=SESSION_SECONDS)
    )
    cookie = pages.signer.dumps({"session": session_id, "csrf": secrets.token_urlsafe(24)})
    # back to the link that was followed (the one in the chat message), never off-site
    response = RedirectResponse(safe_next(next) or "/", status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=pages.public_url.startswith("https://"),
    )
    return response


@router.post("/logout")
async def logout(
    request: Request,
    csrf: str = Form(""),
    store: Store = Depends(store_of),
    pages: Pages = Depends(pages_of),
) -> Response:
    found = await session(request)
    if found is not None:
        check_csrf(found[1], csrf)
        data = pages.signer.loads(request.cookies[COOKIE], max_age=SESSION_SECONDS)
        await run_in_threadpool(store.end_web_session, str(data.get("session")))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


async def detail_page(
    request: Request, interruption_id: str, *, error: str = "", status: int = 200
) -> Response:
    found = await session(request)
    if found is None:
        return to_login(request, f"/interruptions/{interruption_id}")
    who, csrf = found
    store = await store_of(request)
    view = await run_in_threadpool(store.get, interruption_id)
    history = await run_in_threadpool(store.history, interruption_id)
    return page(
        "detail",
        status=status,
        title=view["request"].get("title", "Step"),
        who=who.person,
        csrf=csrf,
        i=view,
        history=history,
        error=error,
        instructions=render_markdown(text_of(view["request"].get("instructions"))),
    )


@router.get("/interruptions/{interruption_id}", response_class=HTMLResponse)
async def detail(request: Request, interruption_id: str) -> Response:
    return await detail_page(request, interruption_id)


@router.post("/interruptions/{interruption_id}/assign")
async def assign(
    request: Request,
    interruption_id: str,
    csrf: str = Form(""),
    reassign: str = Form(""),
    writes: Writes = Depends(writes_of),
) -> Response:
    found = await session(request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    who, expected = found
    check_csrf(expected, csrf)
    assert who.person is not None
    try:
        await writes.take_responsibility(interruption_id, who.person, reassign == "yes")
    except ServerError as exc:
        return await detail_page(request, interruption_id, error=exc.message, status=status_of(exc))
    return RedirectResponse(f"/interruptions/{interruption_id}", status_code=303)


@router.post("/interruptions/{interruption_id}/submit")
async def submit(
    request: Request,
    interruption_id: str,
    store: Store = Depends(store_of),
    writes: Writes = Depends(writes_of),
) -> Response:
    found = await session(request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    who, expected = found
    form = await request.form()
    check_csrf(expected, str(form.get("csrf", "")))
    assert who.person is not None
    result = str(form.get("result", ""))
    notes = str(form.get("notes", ""))
    fields = {
        str(k)[6:]: str(v) for k, v in form.items() if str(k).startswith("field_") and str(v) != ""
    }
    if result == "abort" and form.get("confirm") != "yes":
        if not notes.strip():
            return await detail_page(
                request,
                interruption_id,
                status=422,
                error="An abort needs notes saying why.",
            )
        view = await run_in_threadpool(store.get, interruption_id)
        return page("confirm", title="Abort?", who=who.person, csrf=expected, i=view, notes=notes)
    try:
        await writes.submit(interruption_id, who.person, result, notes, fields)
    except ServerError as exc:
        return await detail_page(request, interruption_id, error=exc.message, status=status_of(exc))
    return RedirectResponse(f"/interruptions/{interruption_id}", status_code=303)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, store: Store = Depends(store_of)) -> Response:
    found = await session(request)
    if found is None:
        return to_login(request)
    who, csrf = found
    record = await run_in_threadpool(store.get_run, run_id)
    return page(
        "run",
        title=f"Run {run_id}",
        who=who.person,
        csrf=csrf,
        r=record,
        starter=starter_of(record),
        steps=steps_of(record),
        decisions=recorded_decisions,
    )


# a record kept before the server checked its shape may lack a part, or hold another type
# there: its page shows what there is (it answered a bare 500)


def starter_of(record: dict[str, Any]) -> str:
    started_by = record.get("started_by")
    name = started_by.get("username") if isinstance(started_by, dict) else None
    return name if isinstance(name, str) else "-"


def steps_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    steps = record.get("steps")
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def to_login(request: Request, back: str | None = None) -> Response:
    """To the sign-in page, which then sends the user back to ``back`` (default: the page
    asked for)."""
    target = back or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if target == "/":
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


def safe_next(target: str) -> str:
    """``target`` if it is a path on this server, else ``""``: a ``next`` that leads elsewhere
    (``https://evil``, ``//evil``, ``/\\evil``, which browsers read as another host) would make
    the sign-in page an open redirect, a phisher's tool."""
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or len(target) > 2048
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target)
    ):
        return ""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return ""
    return target


def text_of(value: Any) -> str:
    """``value`` when it is text, else "": a request kept before the server checked types may
    hold a list where a page expects text (its page answered 500)."""
    return value if isinstance(value, str) else ""


def _safe_link(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://", "mailto:"))


#: the port of an origin that names none
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def _origin_of(url: str) -> Origin | None:
    """The web origin of ``url`` (scheme, host, port), or None when it is no http(s) URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def own_origin(request: Request, public_url: str) -> Origin | None:
    """This server's origin: ``--public-url`` when set (a proxy may forward any ``Host``),
    else the scheme the request came in by with the host it was sent to."""
    if public_url:
        return _origin_of(public_url)
    host = request.headers.get("host") or ""
    return _origin_of(f"{request.scope.get('scheme', 'http')}://{host}") if host else None


def _ours(theirs: Origin | None, ours: Origin | None, request: Request, public_url: str) -> bool:
    """Whether ``theirs`` is this server's origin. Without ``--public-url``, a request that came
    in over plain http for a host without a port, from a page of ``https://`` that host, came
    through a proxy ending TLS (a review found every sign-in there refused after the scheme
    was compared): the https page is the host owner's own; the other way round, an http page
    posting to an https server, stays refused."""
    if theirs is None or ours is None:
        return False
    if theirs == ours:
        return True
    host = request.headers.get("host") or ""
    return (
        not public_url
        and ours[0] == "http"
        and ":" not in host.rsplit("]", 1)[-1]
        and theirs == ("https", ours[1], DEFAULT_PORTS["https"])
    )


def foreign_origin(request: Request, public_url: str) -> str | None:
    """Why a page's POST does not come from this server's own pages, or None.

    A browser sends ``Origin`` with every cross-origin POST (``null`` from opaque origins), and
    a ``Referer`` where it sends no ``Origin``; a client with neither is no browser, and cannot
    carry a victim's cookies. An origin is its scheme, host and port together: comparing the
    host alone took ``http://approvals.example.com`` (any page a network attacker injects into
    a plain-http visit) for ``https://approvals.example.com`` (attack pass)."""
    ours = own_origin(request, public_url)
    origin = request.headers.get("origin")
    if origin is not None:
        if not _ours(_origin_of(origin), ours, request, public_url):
            return (
                f"this form was posted from another site ({origin[:100]}); sign in and "
                "decide on this server's own pages"
            )
        return None
    referer = request.headers.get("referer")
    if referer is not None and not _ours(_origin_of(referer), ours, request, public_url):
        return "this form was posted from another site; use this server's own pages"
    return None


class SameOriginPosts:
    """ASGI middleware: a POST to the pages (not the API, whose bearer tokens no browser sends
    by itself) from another origin is refused with 403 before any handler runs. A plain ASGI
    class, not ``@app.middleware``: that wraps every request, the long-polls included, in
    extra tasks, and made a decision reach 1,000 waiting runners three times slower."""

    def __init__(self, app: Any, public_url: str) -> None:
        self.app = app
        self.public_url = public_url

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and not str(scope.get("path", "")).startswith("/api/")
        ):
            request = Request(scope)
            problem = foreign_origin(request, self.public_url)
            if problem:
                response = JSONResponse(
                    {"error": {"code": "cross_origin", "message": problem}},
                    status_code=403,
                    headers=HEADERS,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
