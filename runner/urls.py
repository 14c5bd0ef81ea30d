"""Whether a URL the user wrote (an approval server's, a webhook's) can be asked at all."""

from __future__ import annotations

from urllib.parse import urlsplit


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as an http(s) address to send requests to, else None: a scheme
    other than http or https (``localhost:8080`` reads as the scheme ``localhost``), no host, or
    text that does not parse (``http://[::1`` made requests raise an exception of its own)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here, as in requests)
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{url!r} is not an http:// or https:// URL"
    if not parts.hostname:
        return f"{url!r} names no host"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return f"{url!r} holds a space or a control character"
    return None
