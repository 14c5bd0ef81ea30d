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
        raise WebhookError(str(exc) or type(exc).__name__) from exc
