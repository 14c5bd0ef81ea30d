"""The ``server`` source: the interruption is registered on the approval server, then
long-polled. A failure to reach the server is never a decision: the run keeps waiting.

Decisions count only for the interruption whose stored request is this run's own, field by field
(environment, workflow digest, commit, step, instructions, ...): the server finds an existing
interruption by run id and step, and a staging run's approval, or one registered ahead of a real
run under its id, must never answer another request (issue #17). No wait (a retry, a backoff)
reaches past the step's deadline."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.approvals.identity import Directory
from runner.approvals.request import Interruption, Submission
from runner.approvals.server_client import DEFAULT_TOKEN_ENV, ServerAnswer, ServerClient
from runner.approvals.verify import server_rows
from runner.approvals.wait import parse_time
from runner.errors import ApprovalError
from runner.model import Approvals
from runner.options import RunOptions

LONG_POLL_SECONDS = 20.0
#: how long withdrawing a request may take once the step has ended
CANCEL_SECONDS = 10.0
#: the server's states of an interruption that no one can decide any more
ENDED = ("cancelled", "timed-out")


def client_for(approvals: Approvals, environ: Mapping[str, str], **kwargs: Any) -> ServerClient:
    config = approvals.server
    if config is None:
        raise ApprovalError("`approvals.server` is not configured")
    name = config.token_env or DEFAULT_TOKEN_ENV
    token = environ.get(name)
    if not token:
        raise ApprovalError(f"the server source needs a runner token in ${name}")
    return ServerClient(config.url, token, ca_bundle=config.ca_bundle, **kwargs)


class ServerSource:
    name = "server"
    interval = 0.0  # poll() itself waits on the server (long-poll)

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        approvals: Approvals,
        workspace: Path,
        directory: Directory,
        options: RunOptions,
        client: ServerClient | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        **_: object,
    ) -> None:
        self.approvals = approvals
        self.client = client or client_for(approvals, environ, sleep=sleep)
        self.now = now
        self.etag: str | None = None
        self.view: dict[str, Any] | None = None
        self.url = approvals.server.url if approvals.server else ""
        self.failures = 0
        self.fresh = False

    def _budget(self, request: Interruption) -> float | None:
        """Seconds left before the step's deadline (None: no deadline)."""
        if not request.deadline:
            return None
        return max(0.0, (parse_time(request.deadline) - self.now()).total_seconds())

    def register(self, request: Interruption) -> None:
        view = self.client.call(
            "POST", "/interruptions", json=request.to_dict(), budget=self._budget(request)
        )
        self.view = checked_view(view, request)
        if self.view and self.view.get("version"):
            self.etag = f'"{self.view["version"]}"'
        # decisions made while no runner waited (a detached run) count at the first poll,
        # without waiting for a further change
        self.fresh = True

    def poll(self, request: Interruption) -> list[Submission]:
        if self.fresh:
            self.fresh = False
            return self._submissions(request)
        if self.failures:
            # a server answering garbage at once must not be hammered in a tight loop, nor
            # the step kept past its deadline by the pause
            pause = min(30.0, 0.5 * 2 ** min(self.failures, 6))
            left = self._budget(request)
            self.client.sleep(pause if left is None else min(pause, left))
        try:
            found = self._poll(request)
        except ApprovalError:
            self.failures += 1
            raise
        self.failures = 0
        return found

    def _poll(self, request: Interruption) -> list[Submission]:
        headers = {"If-None-Match": self.etag} if self.etag else None
        wait = LONG_POLL_SECONDS
        left = self._budget(request)
        if left is not None:
            # the step times out on time, not at the end of a long-poll
            wait = round(max(0.0, min(wait, left)), 1)
        status, body, answer_headers = self.client.request(
            "GET",
            f"/interruptions/{request.id}",
            params={"wait": wait},
            headers=headers,
            read_timeout=wait + 15,
            budget=None if left is None else left + 5,
        )
        if status == 404:
            # the server lost it (restored from an old backup?): register again, idempotently
            self.register(request)
            return self._submissions(request)
        if status == 304:
            return self._submissions(request)
        if (
            status != 200
            or not isinstance(body, dict)
            or not isinstance(body.get("submissions"), list)
        ):
            raise ApprovalError(
                f"the approval server answered HTTP {status} with an unexpected body"
            )
        self.view = None  # nothing counts until this answer is known to be about our request
        self.view = checked_view(body, request)
        self.etag = answer_headers.get("ETag") or answer_headers.get("etag")
        return self._submissions(request)

    def _submissions(self, request: Interruption) -> list[Submission]:
        if self.view and self.view.get("state") in ENDED:
            # nobody can decide it on the server any more: say so, rather than print
            # "Waiting..." until the deadline (attack pass: another token cancelled it)
            raise ApprovalError(
                f"the approval server's interruption {request.id} is {self.view['state']} "
                "there: approvers can no longer decide it on the server (cancelled by a runner "
                "or an admin, or timed out); this source will not decide the step"
            )
        return server_rows(self.view, request.id, self.url) if self.view else []

    def cancel(self, request: Interruption, reason: str) -> None:
        with contextlib.suppress(ServerAnswer):
            self.client.call(
                "POST",
                f"/interruptions/{request.id}/cancel",
                json={"reason": reason},
                attempts=2,
                budget=CANCEL_SECONDS,
            )

    def instructions(self, request: Interruption) -> list[str]:
        # from the terminal, responsibility comes first (the server refuses a proceed without
        # it), and a proceed must carry each required field
        fields = "".join(f" --field {f.name}=..." for f in request.fields if f.required)
        server = f"--server {self.url}"
        if request.guided:
            # a failed step's choices are made on the page (or POST .../submit with the result)
            return [f"{self.url}/interruptions/{request.id}  ({', '.join(request.choices)})"]
        return [
            f"{self.url}/interruptions/{request.id}  or  runner approval assign {request.id} "
            f"{server} && runner approval proceed {request.id} {server}{fields} --notes ..."
        ]


def checked_view(view: Any, request: Interruption) -> dict[str, Any]:
    """``view`` if it is the interruption of exactly ``request``, else ApprovalError (fail closed:
    its decisions answer another question)."""
    if not isinstance(view, dict):
        raise ApprovalError("the approval server answered something else than an interruption")
    differ = differing_fields(view.get("request"), request.to_dict())
    if view.get("id") != request.id:
        differ = ["id", *differ]
    if differ:
        raise ApprovalError(
            f"the approval server's interruption {request.id} asks something else than this run "
            f"(differs in: {', '.join(differ)}); its decisions do not count here",
            hint="a run id is used once: was this id used by another run, or registered ahead "
            "of this one? start the run with another --run-id",
        )
    return view


#: request fields shown to approvers that follow from fields compared (the workflow's digest,
#: the environment, ``skipped``): a runner that lists them by another rule than the runner that
#: registered the request (one that listed the steps ``--skip`` leaves out) must not make the
#: run's own interruption "another request" (a resume after an upgrade failed its gate)
DERIVED_FIELDS = frozenset({"following_steps"})


def differing_fields(stored: Any, own: dict[str, Any]) -> list[str]:
    """The request fields that differ, compared as JSON; ``request`` if there is none to compare.
    (The server judges a re-registration with the same rule.)"""
    if not isinstance(stored, dict):
        return ["request"]
    left = json.loads(json.dumps(stored, sort_keys=True))
    right = json.loads(json.dumps(own, sort_keys=True))
    return sorted(
        k for k in set(left) | set(right) if k not in DERIVED_FIELDS and left.get(k) != right.get(k)
    )
