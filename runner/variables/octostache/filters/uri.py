"""``UriPart`` (``TextManipulationFunction.UriPart``): one component of a ``System.Uri``.

Covers what ``System.Uri`` gives for ordinary absolute URIs (scheme, user info, host, port, path,
query, fragment, default ports); a relative reference answers only ``IsAbsoluteUri``, like .NET.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, unquote, urlsplit

_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443, "ldap": 389, "file": -1}
_RELATIVE = "This operation is not supported for a relative URI."


def _host_type(host: str) -> str:
    if not host:
        return "Basic"
    try:
        version = ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        return "Dns" if re.fullmatch(r"[A-Za-z0-9.-]+", host) else "Basic"
    return "IPv4" if version == 4 else "IPv6"


def _part(text: str, part: str) -> str:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.netloc.startswith("[") or ":" in host:
        host = f"[{host}]"
    default = _PORTS.get(scheme, -1)
    port = parts.port if parts.port is not None else default
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    path = quote(parts.path, safe="/:@!$&'()*+,;=-._~%") or ("/" if parts.netloc else "")
    query = "?" + parts.query if parts.query else ""
    fragment = "#" + parts.fragment if parts.fragment else ""
    shown_port = f":{port}" if port != default and port != -1 else ""
    authority = host + shown_port
    server = f"{scheme}://{authority}" if parts.netloc or scheme == "file" else f"{scheme}:"
    user = userinfo + "@" if userinfo else ""
    answers = {
        "absolutepath": path,
        "absoluteuri": f"{scheme}://{user}{authority}{path}{query}{fragment}"
        if parts.netloc or scheme == "file"
        else f"{scheme}:{path}{query}{fragment}",
        "authority": authority,
        "dnssafehost": host.strip("[]"),
        "fragment": fragment,
        "host": host,
        "hostandport": f"{host}:{port}" if port != -1 else host,
        "hostnametype": _host_type(host),
        "isabsoluteuri": "true",
        "isdefaultport": "true" if port == default else "false",
        "isfile": "true" if scheme == "file" else "false",
        "isloopback": "true"
        if host in ("localhost", "[::1]")
        or host.startswith("127.")
        or (scheme == "file" and not host)
        else "false",
        "isunc": "true" if scheme == "file" and bool(host) else "false",
        "path": unquote(path),
        "pathandquery": path + query,
        "port": str(port),
        "query": query,
        "scheme": scheme,
        "schemeandserver": server,
        "userinfo": userinfo,
    }
    return answers[part]


def uri_part(argument: str | None, options: list[str]) -> str | None:
    """``UriPart Name``: errors are reported inline, in brackets, as Octostache does."""
    if argument is None:
        return None
    if not options:
        return "[UriPart error: no argument given]"
    name = options[0]
    part = name.lower()
    known = {
        "absolutepath", "absoluteuri", "authority", "dnssafehost", "fragment", "host",
        "hostandport", "hostnametype", "isabsoluteuri", "isdefaultport", "isfile",
        "isloopback", "isunc", "path", "pathandquery", "port", "query", "scheme",
        "schemeandserver", "userinfo",
    }  # fmt: skip
    if not _ABSOLUTE.match(argument):
        if part == "isabsoluteuri":
            return "false"
        if part in known:
            return f"[UriPart {name} error: {_RELATIVE}]"
    if part not in known:
        return f"[UriPart {name} error: argument '{name}' not supported]"
    try:
        return _part(argument, part)
    except ValueError as error:
        return f"[UriPart {name} error: {error}]"
