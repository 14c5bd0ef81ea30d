"""What the approval server's storage and services refuse, with no HTTP in it.

Each error carries a stable ``code`` (the API's ``error.code``) and a message for people;
``runner.server.app.status_of`` is the one place that turns a class into an HTTP status, and the
CLI (``runner server ...``) turns the same errors into its own messages::

    ServerError            code, message
    ├── Malformed          a value outside what the operation takes at all (400)
    ├── Unauthenticated    no token, or an unknown or revoked one (401)
    ├── Forbidden          this caller may not do this (403)
    ├── NotFound           no such person, interruption, run or lock (404)
    ├── Conflict           the state forbids it now: decided, taken, rewritten (409)
    └── Invalid            the request is not acceptable as sent (422)
        └── TooLarge       a field over the documented sizes (runner.server.limits)
"""

from __future__ import annotations


class ServerError(Exception):
    """Root of the server's refusals: a stable ``code`` and a readable ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Malformed(ServerError):
    """A value outside what the operation takes at all (a token kind that does not exist)."""


class Unauthenticated(ServerError):
    """No token, or one that is unknown or revoked."""


class Forbidden(ServerError):
    """This caller may not do this: the wrong kind of token, not in the team, not responsible."""


class NotFound(ServerError):
    """No such person, interruption, run or lock."""


class Conflict(ServerError):
    """What is stored forbids it now: decided already, taken by another, settled."""


class Invalid(ServerError):
    """The request is not acceptable as sent (its shape, its fields, its notes)."""


class TooLarge(Invalid):
    """A field over the sizes documented in docs/approvals.md (``runner.server.limits``)."""
