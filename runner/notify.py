"""Chat webhooks: the one way the runner and its server post a message (Slack-, Teams- and
Mattermost-compatible JSON with a ``text``).

Three things announce: a manual step's wait (``steps.manual``), a break-glass override
(``engine.session``) and the approval server's interruption events (``server.notify``). Each
decides when to post and what a failure means for it; how to post, and what counts as a failure,
is here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runner.model import Webhook

#: seconds to wait for the receiver (the server's notifier, in its own thread, waits less)
TIMEOUT = 10.0


class WebhookError(OSError):
    """A message that did not reach the webhook: unreachable, an HTTP error, an answer that is
    not HTTP, or a URL that is not one (from ``url-env``, which no schema checks). An
    ``OSError`` so that callers catching network failures catch every way a post fails."""


def webhook_url(hook: Webhook | None, environ: Mapping[str, str]) -> str | None:
    """The hook's URL: written in the workflow, or read from the variable it names; None when
    there is no hook or its variable is not set."""
    if hook is None:
        return None
    return hook.url or (environ.get(hook.url_env) if hook.url_env else None) or None


def post_json(url: str, message: Mapping[str, Any], *, timeout: float = TIMEOUT) -> None:
    """POST ``message`` as JSON to ``url``; raise :class:`WebhookError` when it does not arrive."""
    # urllib.request, with the http.client, email and ssl it loads: about 20 ms of every
    # `runner` start; a run without a webhook never pays it
    import http.client
    import urllib.request

    body = json.dumps(message).encode()
    try:
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except WebhookError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # http.client's errors for an answer that is not HTTP are not OSErrors
        raise WebhookError(_failure(exc, timeout)) from exc


def _failure(exc: BaseException, timeout: float) -> str:
    """What failed, in words that never quote the URL: urllib's and http.client's messages do
    (``nonnumeric port: 'S3cret@host'``, ``unknown url type: ...``), and a webhook's URL is
    a secret (the path is its token; a password may be in it), which the masker catches only
    whole."""
    import http.client
    import socket
    import ssl
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"the webhook answered HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _failure(reason, timeout)
        return "the webhook's URL is not an http or https URL"
    if isinstance(exc, TimeoutError):
        return f"the webhook did not answer within {timeout:g} seconds"
    if isinstance(exc, ConnectionRefusedError):
        return "the webhook's host refused the connection"
    if isinstance(exc, socket.gaierror):
        return "the webhook's host name could not be resolved"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with the webhook's host failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, http.client.InvalidURL | ValueError):
        return "the webhook's URL is malformed"
    if isinstance(exc, http.client.HTTPException):
        return f"the webhook's answer was not HTTP ({type(exc).__name__})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"the webhook could not be reached: {exc.strerror}"
    return f"the webhook could not be reached ({type(exc).__name__})"
