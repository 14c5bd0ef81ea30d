"""The ``prompt`` source: the person at the terminal decides, for local runs.

It asks on the controlling terminal in a thread of its own, so other sources of the step keep
being polled meanwhile. It refuses to start when stdin is not a terminal or the runner is in CI:
there nobody is at the keyboard, and a piped "yes" must never approve a deployment.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TextIO

from runner.actor import os_account
from runner.approvals.identity import LOCAL_ONLY, Directory, eligible
from runner.approvals.request import FieldSpec, Interruption, Result, Submission
from runner.ci import CI_VARIABLES as CI_VARIABLES
from runner.ci import in_ci as in_ci
from runner.errors import ApprovalError
from runner.options import RunOptions
from runner.patterns import fullmatch

#: the stream of the question waiting for an answer, its line not yet ended
_asking: list[TextIO] = []
#: a question is written and noted as asked in one step: a signal that came between the two
#: found the question on the terminal but not noted, and its message went on the question's line
_asking_lock = threading.Lock()


def end_question() -> None:
    """End the line of an unanswered question (a signal came): what follows starts a line."""
    with _asking_lock:
        while _asking:
            stream = _asking.pop()
            stream.write("\n")
            stream.flush()


class PromptSource:
    name = "prompt"
    interval = 0.2

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        user: str | None = None,
        directory: Directory | None = None,
        now: Callable[[], datetime] | None = None,
        options: RunOptions | None = None,
        **_: object,
    ) -> None:
        self.environ = environ
        #: ``--detach-on-wait``: the run records the gate and ends at once, so nobody could
        #: answer a question asked now (it was printed, and the run exited under it)
        self.detaching = options is not None and options.detach_on_wait
        self.now = now or (lambda: datetime.now(UTC))
        #: the people file: who may answer, said before anything is asked
        self.directory = directory
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stderr
        self.user = user or local_user()
        self._result: Submission | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: ApprovalError | None = None

    def register(self, request: Interruption) -> None:
        ci = in_ci(self.environ)
        if ci:
            raise ApprovalError(
                f"the prompt source cannot be used in CI (${ci} is set)",
                hint="approve with a signed file (`file` source) or the approval server",
            )
        if not self.stdin.isatty():
            raise ApprovalError(
                "the prompt source needs a terminal, but stdin is not one",
                hint="run on a terminal, or approve through the `file` or `server` source",
            )
        refusal = self._refusal(request)
        if refusal is not None:
            # asking would collect a decision, notes and fields only to refuse them, and then
            # wait silently: say so now, and let the step wait on its other sources (or fail)
            raise ApprovalError(
                f"{refusal}, so the prompt will not ask; {self._may_answer(request)}",
                hint="run it on a terminal as one of them, or approve through another source",
            )
        if self.detaching:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._ask, args=(request,), daemon=True)
            self._thread.start()

    def poll(self, request: Interruption) -> list[Submission]:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return [self._result] if self._result else []

    def cancel(self, request: Interruption, reason: str) -> None:
        self._stop.set()

    def instructions(self, request: Interruption) -> list[str]:
        if in_ci(self.environ) or not self.stdin.isatty():
            return []  # it cannot ask here, and says why when it registers
        if self.detaching:
            return [f"answer the prompt when the run is resumed on a terminal (as {self.user})"]
        return [f"answer the prompt on this terminal (as {self.user})"]

    def _refusal(self, request: Interruption) -> str | None:
        if self.directory is None:
            return None
        return prompt_refusal(
            self.directory,
            request.teams,
            request.prevent_self_approval,
            request.started_by,
            self.user,
        )

    def _may_answer(self, request: Interruption) -> str:
        if self.directory is None:
            who = " or ".join(request.teams) if request.teams else "anyone in the people file"
            return f"{who} may answer"
        return may_answer(self.directory, request.teams)

    # -- the conversation --------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _read(self, question: str) -> str:
        with _asking_lock:
            self._say(question)
            _asking.append(self.stdout)
        line = self.stdin.readline()
        with _asking_lock:
            _asking.clear()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def _ask(self, request: Interruption) -> None:
        try:
            self._conversation(request)
        except EOFError:
            self._error = ApprovalError("the terminal closed before a decision was given")
        except Exception as exc:  # keep the waiting loop alive; report through poll
            self._error = ApprovalError(f"the prompt failed: {exc}")

    def _conversation(self, request: Interruption) -> None:
        self._say(f"\n{request.title}: you are {self.user}; {self._may_answer(request)}.\n")
        if request.guided:
            self._guided(request)
            return
        while not self._stop.is_set():
            answer = self._read("Proceed or abort? [p/a] ").strip().lower()
            if answer in ("p", "proceed", "a", "abort"):
                break
            self._say("Please answer p (proceed) or a (abort).\n")
        else:
            return
        result: Result = "proceed" if answer.startswith("p") else "abort"
        notes = self._read("Notes: ").strip()
        while result == "abort" and not notes:
            notes = self._read("Notes are required to abort. Notes: ").strip()
        values: dict[str, str] = {}
        if result == "proceed":
            for spec in request.fields:
                values[spec.name] = self._field(spec)
        stamp = self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._result = Submission(
            source="prompt",
            result=result,
            who=self.user,
            who_kind="login",
            notes=notes,
            fields={k: v for k, v in values.items() if v != ""},
            submitted_at=stamp,
            evidence={"terminal": True, "user": self.user},
            key=f"prompt:{request.id}:{stamp}",
        )

    def _guided(self, request: Interruption) -> None:
        """Guided failure's question: what failed (masked by the engine), then one of the
        request's choices, with notes (required to skip or fail: someone will ask why)."""
        tail = [str(line) for line in request.failure.get("log_tail", ())]
        if tail:
            self._say("Last lines of its log:\n" + "".join(f"  | {t}\n" for t in tail))
        keys = {choice[0]: choice for choice in request.choices}
        question = f"{', '.join(c.capitalize() for c in request.choices)}? [{'/'.join(keys)}] "
        while not self._stop.is_set():
            answer = self._read(question).strip().lower()
            chosen = keys.get(answer[:1]) if answer else None
            if chosen is not None and chosen.startswith(answer):
                break
            self._say(f"Please answer {' or '.join(f'{k} ({c})' for k, c in keys.items())}.\n")
        else:
            return
        notes = self._read("Notes: ").strip()
        while chosen != "retry" and not notes:
            notes = self._read(f"Notes are required to {chosen}. Notes: ").strip()
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        result: Result = "retry" if chosen == "retry" else "skip" if chosen == "skip" else "fail"
        self._result = Submission(
            source="prompt",
            result=result,
            who=self.user,
            who_kind="login",
            notes=notes,
            submitted_at=stamp,
            evidence={"terminal": True, "user": self.user},
            key=f"prompt:{request.id}:{stamp}",
        )

    def _field(self, spec: FieldSpec) -> str:
        label = spec.label or spec.name
        hints = []
        if spec.type == "choice":
            hints.append("/".join(spec.options))
        elif spec.type == "boolean":
            hints.append("true/false")
        if spec.pattern:
            hints.append(f"matching {spec.pattern}")
        hints.append("required" if spec.required else "optional")
        while True:
            value = self._read(f"{label} ({', '.join(hints)}): ").strip()
            if not value and not spec.required:
                return ""
            problem = _field_problem(spec, value)
            if problem is None:
                return value.lower() if spec.type == "boolean" else value
            self._say(f"  {problem}\n")


def _field_problem(spec: FieldSpec, value: str) -> str | None:
    if not value:
        return "a value is required"
    if spec.type == "boolean" and value.lower() not in ("true", "false"):
        return "answer true or false"
    if spec.type == "choice" and value not in spec.options:
        return f"choose one of {', '.join(spec.options)}"
    if spec.pattern and not fullmatch(spec.pattern, value):
        return f"must match {spec.pattern}"
    return None


def local_user() -> str:
    """The person at this terminal: the OS account the runner runs as (see ``os_account``)."""
    return os_account()


def approvers_text(directory: Directory, teams: tuple[str, ...]) -> str:
    """Who may answer a step, by name: ``trading-desk (alice, bob)``."""
    if teams:
        parts = [
            f"{team} ({', '.join(sorted(directory.members(team))) or 'nobody'})" for team in teams
        ]
        return " or ".join(parts)
    names = ", ".join(p.username for p in directory.people) or "nobody"
    if directory.source == LOCAL_ONLY:
        return f"only the local user ({names})"
    return f"anyone in the people file ({names})"


def may_answer(directory: Directory, teams: tuple[str, ...]) -> str:
    """The clause saying who may answer a step: ``trading-desk (alice, bob) may answer``; without
    a people file, why only the local user may (the reason, put inside the name, garbled the
    sentence: "the local user (root): the workflow names no people file may answer")."""
    clause = f"{approvers_text(directory, teams)} may answer"
    if not teams and directory.source == LOCAL_ONLY:
        clause += " (the workflow names no people file)"
    return clause


def prompt_refusal(
    directory: Directory,
    manual_teams: tuple[str, ...],
    prevent_self_approval: bool,
    started_by: str,
    user: str,
) -> str | None:
    """Why ``user`` at the terminal may not answer a step, or None if they may."""
    person = directory.by_login(user)
    if person is None:
        return f"you ({user}) are not in the people file"
    if not eligible(directory, person, manual_teams):
        return f"you ({person.username}) are not in team {' or '.join(manual_teams)}"
    if prevent_self_approval:
        starter = directory.by_login(started_by)
        if starter is None or starter.username == person.username:
            return f"you ({person.username}) started this run, and it prevents self-approval"
    return None
