"""The one error hierarchy of the runner.

Every error a user can cause carries enough to be acted on: a message, an optional hint, and where
possible a source :class:`Location`. The CLI has one error boundary (``runner.cli.main``) that turns
these into diagnostics and exit codes; anything else is an internal error (exit 70).

::

    RunnerError                      exit code
    ├── UsageError                   2   bad command line (unknown env, bad --input, ...)
    ├── WorkflowError                2   a file that does not load or validate; holds Diagnostics
    ├── ExpressionError              2   ``${{ }}`` that does not lex, parse or evaluate (.kind)
    ├── SubstitutionError            2   ``#{}`` template problems found while checking
    ├── StepError                    1   a step could not be started (bad shell, missing action)
    ├── ApprovalError                4/3 an approval source failed or a decision is invalid
    │   └── VerificationError            an approval whose proof does not hold (never a decision)
    ├── RefusedError                 5   a lock is held, a resume or a policy refused
    └── ServerRequestError           6   `runner approval ... --server`: a request failed

    InputLimitError (a ValueError)       untrusted JSON or YAML past a parser limit (nesting,
                                         alias expansion): each reader turns it into its own
                                         refusal above, never a crash (runner.bounded)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes shared by ``plan``, ``run`` and ``resume`` (documented in the README)."""

    SUCCESS = 0
    STEP_FAILED = 1
    INVALID = 2
    ABORTED = 3
    TIMED_OUT = 4
    REFUSED = 5
    #: ``runner approval list|show|assign|proceed|abort --server``: the request failed
    SERVER_REQUEST = 6
    INTERNAL = 70
    WAITING = 75
    INTERRUPTED = 130


@dataclass(frozen=True, order=True)
class Location:
    """A position in a source file: 1-based line and column, as shown to people."""

    path: str
    line: int
    column: int
    length: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class RunnerError(Exception):
    """Root of every error the runner reports to a user."""

    exit_code: int = ExitCode.INVALID

    def __init__(
        self, message: str, *, location: Location | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(RunnerError):
    """The command line asks for something that cannot be done."""

    exit_code = ExitCode.INVALID


class WorkflowError(RunnerError):
    """A workflow (or action, or policy) file has problems; ``diagnostics`` lists all of them."""

    exit_code = ExitCode.INVALID

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        first = diagnostics[0].message if diagnostics else "invalid workflow"
        super().__init__(first, location=diagnostics[0].location if diagnostics else None)
        self.diagnostics = diagnostics


class ExpressionError(RunnerError):
    """A ``${{ }}`` expression failed; ``kind`` is ``lexing``, ``parsing`` or ``evaluation``."""

    exit_code = ExitCode.INVALID

    def __init__(
        self, message: str, *, kind: str, location: Location | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, location=location, hint=hint)
        self.kind = kind


class SubstitutionError(RunnerError):
    """A ``#{}`` template problem worth reporting (Octostache itself echoes bad templates back)."""


class StepError(RunnerError):
    """A step could not be started or its outputs could not be read."""

    exit_code = ExitCode.STEP_FAILED


class ApprovalError(RunnerError):
    """An approval source failed, or a decision it returned is not acceptable."""

    exit_code = ExitCode.TIMED_OUT


class VerificationError(ApprovalError):
    """An approval whose proof does not hold. It is refused, logged, and never counts."""


class RefusedError(RunnerError):
    """The runner refuses to start or continue: a lock is held, a resume or a policy refused."""

    exit_code = ExitCode.REFUSED


class ServerRequestError(RunnerError):
    """An approver's request to the approval server failed (unreachable, refused, not found).
    Not exit 4: nothing timed out, and no deployment's outcome is told by it."""

    exit_code = ExitCode.SERVER_REQUEST


class StateError(RefusedError):
    """The run record cannot be written: the runner stops rather than go on unrecorded."""


class InputLimitError(ValueError):
    """Untrusted input past a parser limit (nesting depth, alias or merge expansion).

    A ``ValueError``, not a :class:`RunnerError`: it is raised deep inside readers of records,
    approval bodies and server answers, which already turn ``ValueError`` into their own refusal
    (a refused approval file, a record that cannot be read, a 422). ``line`` and ``column`` are
    1-based, 0 when unknown."""

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a file, shown as ``path:line:col: message [kind]``."""

    location: Location
    message: str
    kind: str
    severity: str = "error"  # or "warning"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.location.path, self.location.line, self.location.column, self.message)
