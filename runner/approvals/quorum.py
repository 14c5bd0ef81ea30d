"""Judging submissions against a manual step's rules. Pure.

Rules: only people in the people-and-teams file; with ``teams``, only their members; with
``prevent-self-approval``, never the person who started the run; fields must validate; a person
counts once, whatever the number of sources or submissions; any valid abort aborts; ``require``
needs that many *distinct* people from each team, one person filling one team's place (a
bipartite matching, so that a person in two teams cannot count twice).

Guided failure's question (``request.guided``) is judged by the same rules: ``fail`` is its
abort (one eligible person ends it), ``retry`` and ``skip`` each need the quorum of their own
people, and a decision that is not one of the request's ``choices`` is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from msgspec import Struct, field

from runner.approvals.identity import Directory, Person, eligible
from runner.approvals.request import FieldSpec, Interruption, Submission
from runner.patterns import fullmatch


class Accepted(Struct, frozen=True):
    submission: Submission
    person: Person


class Refused(Struct, frozen=True):
    submission: Submission
    reason: str
    #: which rule refused it, for a caller that answers each rule its own way (the server)
    rule: str = ""
    #: ``reason`` without the submission it names
    detail: str = ""


class Verdict(Struct, frozen=True):
    state: str  # "waiting" | "approved" | "aborted"
    accepted: tuple[Accepted, ...] = ()
    refused: tuple[Refused, ...] = ()
    #: the decision that settled it: the last approver toward the quorum, or the abort
    deciding: Accepted | None = None
    #: for each team of the quorum, how many distinct people count so far
    progress: tuple[tuple[str, int, int], ...] = field(default=())


def identify(directory: Directory, submission: Submission) -> Person | None:
    if submission.who_kind == "principal":
        return directory.by_principal(submission.who)
    if submission.who_kind == "login":
        return directory.by_login(submission.who)
    return directory.by_username(submission.who)


def check_fields(specs: Sequence[FieldSpec], values: dict[str, str], result: str) -> str | None:
    """Why the field values are not acceptable, or None. Aborts need no fields."""
    known = {s.name for s in specs}
    unknown = sorted(set(values) - known)
    if unknown:
        return f"unknown field {unknown[0]!r}"
    if result == "abort":
        return None
    for spec in specs:
        value = values.get(spec.name, "")
        if not value:
            if spec.required:
                return f"field {spec.name!r} is required"
            continue
        if spec.type == "boolean" and value.lower() not in ("true", "false"):
            return f"field {spec.name!r} must be true or false, got {value!r}"
        if spec.type == "choice" and value not in spec.options:
            return f"field {spec.name!r} must be one of {', '.join(spec.options)}, got {value!r}"
        if spec.pattern and not fullmatch(spec.pattern, value):
            return f"field {spec.name!r} does not match {spec.pattern}, got {value!r}"
    return None


def judge(
    request: Interruption,
    submissions: Iterable[Submission],
    directory: Directory,
    started_by: Person | None,
) -> Verdict:
    """Who counts, who is refused and why, and whether the step is decided."""
    accepted: list[Accepted] = []
    refused: list[Refused] = []
    counted: set[str] = set()
    allowed = request.choices if request.guided else ("proceed", "abort")
    stop = "fail" if request.guided else "abort"
    for submission in submissions:
        if submission.problem is not None:
            refused.append(
                Refused(
                    submission,
                    f"{submission.source}: {submission.problem}",
                    "source",
                    submission.problem,
                )
            )
            continue
        person = identify(directory, submission)
        reason = rule = None
        if submission.result not in allowed:
            rule = "bad_result"
            reason = (
                f"{submission.result} is not one of the choices here ({', '.join(allowed)})"
                if request.guided
                else f"{submission.result} is a guided-failure decision, not proceed or abort"
            )
        elif person is None:
            rule = "unknown_person"
            reason = f"{submission.who_kind} {submission.who!r} is not in the people file"
        elif not eligible(directory, person, request.teams):
            rule = "not_in_team"
            reason = f"{person.username} is not in team {' or '.join(request.teams)}"
        elif request.prevent_self_approval and started_by is None and submission.result != stop:
            # fail closed: whoever started the run may be anyone, this approver included (an
            # empty starter too: a rewritten record must not switch the rule off)
            rule = "self_approval"
            reason = (
                f"the run was started by {request.started_by!r}, who is not in the people "
                "file, so self-approval cannot be ruled out"
                if request.started_by
                else "who started the run is not known, so self-approval cannot be ruled out"
            )
        elif (
            request.prevent_self_approval
            and started_by is not None
            and person.username == started_by.username
        ):
            rule = "self_approval"
            reason = f"{person.username} started this run and may not approve it"
        else:
            rule = "bad_fields"
            reason = check_fields(request.fields, submission.fields, submission.result)
        repeated = person is not None and person.username in counted
        if reason is None and repeated and submission.result != stop:
            assert person is not None
            rule = "already_counted"
            reason = f"{person.username} already counted toward this step"
        if reason is not None:
            refused.append(Refused(submission, f"{_who(submission)}: {reason}", rule or "", reason))
            continue
        assert person is not None
        if submission.result == stop:
            abort = Accepted(submission, person)
            return Verdict("aborted", (*accepted, abort), tuple(refused), abort)
        counted.add(person.username)
        accepted.append(Accepted(submission, person))
        if request.guided:
            # the first choice whose own people fill the quorum settles it
            same = [a.person for a in accepted if a.submission.result == submission.result]
            met, progress = _quorum_met(request, directory, same)
            if met:
                return Verdict("approved", tuple(accepted), tuple(refused), accepted[-1], progress)
    if request.guided:
        progress = _progress(request, directory, accepted)
        return Verdict("waiting", tuple(accepted), tuple(refused), None, progress)
    met, progress = _quorum_met(request, directory, [a.person for a in accepted])
    if met and accepted:
        return Verdict("approved", tuple(accepted), tuple(refused), accepted[-1], progress)
    return Verdict("waiting", tuple(accepted), tuple(refused), None, progress)


def _who(submission: Submission) -> str:
    return f"{submission.result} by {submission.who} via {submission.source}"


def _progress(
    request: Interruption, directory: Directory, accepted: list[Accepted]
) -> tuple[tuple[str, int, int], ...]:
    """A guided question's progress: that of the choice closest to its quorum."""
    best: tuple[tuple[str, int, int], ...] = ()
    for choice in ("retry", "skip"):
        people = [a.person for a in accepted if a.submission.result == choice]
        _, progress = _quorum_met(request, directory, people)
        if not best or sum(p[1] for p in progress) > sum(p[1] for p in best):
            best = progress
    return best


def _quorum_met(
    request: Interruption, directory: Directory, people: list[Person]
) -> tuple[bool, tuple[tuple[str, int, int], ...]]:
    if not request.quorum:
        return bool(people), ()
    slots = [team for team, count in request.quorum for _ in range(count)]
    match: dict[int, int] = {}  # slot -> person index

    def augment(person: int, seen: set[int]) -> bool:
        for slot, team in enumerate(slots):
            if slot in seen or people[person].username not in directory.members(team):
                continue
            seen.add(slot)
            if slot not in match or augment(match[slot], seen):
                match[slot] = person
                return True
        return False

    for index in range(len(people)):
        augment(index, set())
    progress = []
    for team, count in request.quorum:
        filled = sum(1 for slot, t in enumerate(slots) if t == team and slot in match)
        progress.append((team, filled, count))
    return len(match) == len(slots), tuple(progress)
