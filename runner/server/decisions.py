"""Decisions on interruptions: registering one, taking responsibility, submitting, cancelling.

Who counts is ``runner.approvals.quorum.judge``'s to say, as on the runner: a submission that
``judge`` refuses is refused here with the rule it broke, and the state the server stores is the
verdict. This service adds only what belongs to the server: one responsible person at a time,
and locking, so that among concurrent decisions on one interruption each sees the one before.
"""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from runner.approvals.identity import Directory, Person, eligible
from runner.approvals.quorum import Refused, Verdict, check_fields, judge
from runner.approvals.request import Interruption, Result, Submission, slot
from runner.approvals.server_source import differing_fields
from runner.server import audit_log, interruptions, people
from runner.server.errors import Conflict, Forbidden, Invalid, ServerError, TooLarge
from runner.server.limits import request_problem, submission_problem, unwritable
from runner.server.tokens import Caller
from runner.server.values import iso, now

#: how each of ``judge``'s rules refuses a submission
REFUSALS: dict[str, type[ServerError]] = {
    "unknown_person": Forbidden,
    "not_in_team": Forbidden,
    "self_approval": Forbidden,
    "already_counted": Conflict,
    "bad_fields": Invalid,
    "bad_result": Invalid,
}
#: the rules that come before responsibility: someone who may not decide at all hears that,
#: not that someone else holds it
WHO_MAY_DECIDE = ("unknown_person", "not_in_team")


class Decisions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, request: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """Create, or find again (idempotent on run id and step, so a restarted runner finds its
        own)."""
        try:
            parsed = Interruption.from_dict(request)
        except (TypeError, ValueError, KeyError) as exc:
            raise Invalid("bad_request", f"not an interruption: {exc}") from None
        # judged here, before anything is stored, whichever way the request came in
        too_large = request_problem(parsed)
        if too_large:
            raise TooLarge("too_large", f"the request is too large: {too_large}")
        problem = unwritable(parsed.to_dict())
        if problem:
            raise Invalid("bad_request", f"the request cannot be kept: {problem}")
        # the id is derived from the run and step, never taken from the caller: a runner token
        # must not be able to claim another run's interruption first
        parsed = replace(parsed, id=f"{parsed.run_id}--{slot(parsed)}")
        try:
            return self._create(parsed, caller)
        except IntegrityError:
            pass
        # another runner created it at the same moment (the create is idempotent), or the id of
        # another run and step is the same text (`a--b` + `c`, `a` + `b--c`)
        with self.engine.connect() as c:
            found = interruptions.of_step(c, parsed.run_id, slot(parsed))
            if found is None:
                raise Conflict(
                    "id_taken", f"interruption {parsed.id} belongs to another run and step"
                )
            return _same_request(interruptions.view(c, found), parsed)

    def _create(self, parsed: Interruption, caller: Caller) -> dict[str, Any]:
        with self.engine.begin() as c:
            existing = interruptions.of_step(c, parsed.run_id, slot(parsed))
            if existing is None:
                interruptions.insert_waiting(c, parsed, now(), caller.token_id)
                audit_log.append(
                    c,
                    "created",
                    parsed.id,
                    f"runner:{caller.token_id}",
                    {
                        "run_id": parsed.run_id,
                        "step": parsed.step_id,
                        "environment": parsed.environment,
                    },
                )
                return interruptions.view(c, parsed.id)
            view = interruptions.view(c, existing)
        return _same_request(view, parsed)

    def take_responsibility(
        self, interruption_id: str, person: Person, reassign: bool
    ) -> dict[str, Any]:
        with self.engine.begin() as c:
            current = _waiting(c, interruption_id)
            request = current["request"]
            teams = request.get("teams") or []
            if not eligible(people.directory(c), person, teams):
                raise Forbidden(
                    "not_in_team", f"{person.username} is not in team {' or '.join(teams)}"
                )
            if not interruptions.take(
                c, interruption_id, person.username, reassign=reassign, moment=now()
            ):
                holder = interruptions.view(c, interruption_id)["responsible"]
                raise Conflict(
                    "responsible_taken", f"{holder} has taken responsibility; reassign explicitly"
                )
            previous = current["responsible"]
            kind = "reassigned" if previous and previous != person.username else "assigned"
            audit_log.append(
                c, kind, interruption_id, person.username, {"from": previous, "to": person.username}
            )
            return interruptions.view(c, interruption_id)

    def submit(
        self, interruption_id: str, person: Person, result: str, notes: str, fields: dict[str, str]
    ) -> dict[str, Any]:
        """Judge and keep one person's decision. The limits are checked here, in the one
        service the API and the web pages both call, so no entry point can skip them."""
        too_large = submission_problem(notes, fields)
        if too_large:
            raise TooLarge("too_large", f"the submission is too large: {too_large}")
        unkept = unwritable({"notes": notes, "fields": fields})
        if unkept:
            raise Invalid("bad_request", f"the submission cannot be kept: {unkept}")
        with self.engine.connect() as c:
            stored = Interruption.from_dict(interruptions.view(c, interruption_id)["request"])
        allowed = stored.choices if stored.guided else ("proceed", "abort")
        if result not in allowed:
            raise Invalid("bad_result", f"result must be {' or '.join(allowed)}")
        if result in ("abort", "skip", "fail") and not notes.strip():
            article = "an" if result == "abort" else "a"
            raise Invalid("notes_required", f"{article} {result} needs notes saying why")
        # field patterns are matched here, before the transaction (a slow match must never hold
        # the database's write lock); a stored request never changes, so the check still holds
        problem = check_fields(stored.fields, fields, result)
        with self.engine.begin() as c:
            current = _waiting(c, interruption_id)
            directory = people.directory(c)
            request = Interruption.from_dict(current["request"])
            moment = now()
            mine = Submission(
                "server",
                _result(result),
                person.username,
                "username",
                notes,
                fields,
                iso(moment) or "",
            )
            verdict, refusal = _judge(request, current["submissions"], mine, directory)
            if refusal is not None and refusal.rule in WHO_MAY_DECIDE:
                raise _refused(refusal)
            if current["responsible"] != person.username:
                raise Forbidden(
                    "not_responsible",
                    "take responsibility before submitting"
                    + (f" ({current['responsible']} has it)" if current["responsible"] else ""),
                )
            if problem:
                raise Invalid("bad_fields", problem)
            if refusal is not None:
                raise _refused(refusal)
            interruptions.add_submission(c, interruption_id, person, result, notes, fields, moment)
            state = {"approved": "approved", "aborted": "aborted"}.get(verdict.state, "waiting")
            interruptions.settle(c, interruption_id, state, moment)
            audit_log.append(
                c,
                "submitted",
                interruption_id,
                person.username,
                {"result": result, "notes": notes, "fields": fields, "state": state},
            )
            return interruptions.view(c, interruption_id)

    def cancel(self, interruption_id: str, reason: str, caller: Caller) -> dict[str, Any]:
        """End a waiting interruption (the run stopped, or its deadline passed); a decided one
        stays as it is. Only the runner token that registered it, or an admin, may: another
        team's runner ended a waiting run's interruption, which then could never be approved."""
        with self.engine.begin() as c:
            interruptions.lock_row(c, interruption_id)
            if (
                caller.kind != "admin"
                and interruptions.owner(c, interruption_id) != caller.token_id
            ):
                raise Forbidden(
                    "not_owner",
                    f"interruption {interruption_id} was registered by another runner token; "
                    "only that token, or an admin, may cancel it",
                )
            current = interruptions.view(c, interruption_id)
            if current["state"] == "waiting":
                state = "timed-out" if reason == "timed-out" else "cancelled"
                interruptions.settle(c, interruption_id, state, now())
                audit_log.append(
                    c,
                    state,
                    interruption_id,
                    f"{caller.kind}:{caller.token_id}",
                    {"reason": reason},
                )
            return interruptions.view(c, interruption_id)


def _result(result: str) -> Result:
    """A result ``submit`` accepted, typed."""
    for known in ("proceed", "abort", "retry", "skip", "fail"):
        if result == known:
            return known
    raise Invalid("bad_result", f"unknown result {result[:40]!r}")


def _waiting(c: Connection, interruption_id: str) -> dict[str, Any]:
    """The interruption, locked for this transaction; ``Conflict`` once it is decided."""
    interruptions.lock_row(c, interruption_id)
    current = interruptions.view(c, interruption_id)
    if current["state"] != "waiting":
        raise Conflict("decided", f"the interruption is {current['state']}")
    return current


def _judge(
    request: Interruption,
    stored: list[dict[str, Any]],
    mine: Submission,
    directory: Directory,
) -> tuple[Verdict, Refused | None]:
    """``judge`` over the stored submissions and ``mine`` (last), and why it refused ``mine``.
    Every submission's fields were checked on its way in (outside the transaction, for this
    one): who counts is judged without matching patterns again while the write lock is held."""
    submissions = [
        Submission(
            "server",
            s["result"],
            s["username"],
            "username",
            s["notes"],
            {},
            s["at"],
            key=str(s["id"]),
        )
        for s in stored
    ]
    new = replace(mine, fields={}, key="new")
    verdict = judge(
        replace(request, fields=()),
        [*submissions, new],
        directory,
        directory.by_login(request.started_by),
    )
    return verdict, next((r for r in verdict.refused if r.submission is new), None)


def _refused(refusal: Refused) -> ServerError:
    return REFUSALS.get(refusal.rule, Forbidden)(refusal.rule, refusal.detail)


def _same_request(view: dict[str, Any], parsed: Interruption) -> dict[str, Any]:
    """``view`` when it holds exactly ``parsed``'s request, else a ``Conflict``."""
    differ = differing_fields(view["request"], parsed.to_dict())
    if differ:
        # a second, different request under an existing run and step would be answered by
        # the first one's decisions: a staging approval replayed in production, or an
        # interruption registered ahead of a real run (issue #17)
        raise Conflict(
            "request_differs",
            f"run {parsed.run_id} already has an interruption at step {parsed.step_id} "
            f"asking something else (differs in: {', '.join(differ)}); a run id is used "
            "once: start this run with another --run-id",
        )
    return view
