"""The one error hierarchy of the runner.

Every error a user can cause carries enough to be acted on: a message, an optional hint, and where
possible a source :class:`Location`. The CLI has one error boundary (``runner.cli.main``) that turns
these into diagnostics and exit codes; anything else is an internal error (exit 70).

::

    RunnerError                          exit code
    ├── UsageError                       2   bad command line (unknown env, bad --input, ...)
    ├── WorkflowError                    2   a file that does not load or validate (.diagnostics)
    ├── ExpressionError                  2   ``${{ }}`` that does not lex, parse or evaluate
    │   └── UnterminatedTemplateError        a ``${{`` without its ``}}`` (.offset)
    ├── SubstitutionError                2   ``#{}`` template problems found while checking
    │   └── SubstitutionLimitError           a template that needs too much work to evaluate
    ├── StepError                        1   a step could not be started (bad shell, missing action)
    ├── PreflightError                   1   manual steps that may run cannot be decided here
    ├── ApprovalError                    6   an approval source failed or could not be reached
    │   ├── VerificationError                a proof that does not hold (never a decision)
    │   │   └── TrustFileError               an allowed_signers or revoked-keys file is unusable
    │   ├── GitError                         git did not answer (not found, timed out, failed)
    │   └── ServerAnswer                     the approval server answered an error (.status, .code)
    ├── RefusedError                     5   a lock is held, a resume or a policy refused
    │   └── StateError                       the run record cannot be written: the run stops there
    └── SigningError                     2   ``runner approval new``: ssh-keygen could not sign

    InputLimitError (a ValueError)           untrusted JSON or YAML past a parser limit (nesting,
                                             alias expansion): each reader turns it into its own
                                             refusal above, never a crash (runner.bounded)

A subclass without a code exits with its parent's. Exit codes tell the outcome, not the module
that raised: 4 is only ever "an approval timed out" (a manual step's outcome, set by the engine),
while an approval source that fails outside a step (an unreachable approval server while taking
the deployment lock, a trust ref that cannot be read, an approver's ``runner approval ...
--server`` request) exits 6. Inside a step, a source's failure fails the step or is waited out
(``approvals.wait``): the run then ends by that step's outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Literal, Protocol

from msgspec import Struct


class ExitCode(IntEnum):
    """Exit codes by outcome, shared by every command (documented in the README)."""

    SUCCESS = 0
    STEP_FAILED = 1
    INVALID = 2
    ABORTED = 3
    TIMED_OUT = 4
    REFUSED = 5
    #: an approval source failed or could not be reached (not a timeout: nobody was asked long
    #: enough to time out), e.g. the approval server while taking the lock, or an approver's
    #: ``runner approval ... --server`` request
    APPROVAL_SOURCE = 6
    INTERNAL = 70
    WAITING = 75
    INTERRUPTED = 130


class Location(Struct, frozen=True, order=True):
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
        #: where, in the string being substituted, the ``${{`` of the failing expression starts
        #: (0-based), when the error came from substituting one (see ``render_text``)
        self.offset: int | None = None


class UnterminatedTemplateError(ExpressionError):
    """A ``${{`` without its ``}}``; ``offset`` is where the ``${{`` starts (0-based)."""

    def __init__(self, offset: int) -> None:
        super().__init__(
            "The expression is not closed. An unescaped ${{ sequence was found, but the closing "
            f"}}}} sequence was not found (at offset {offset}).",
            kind="parsing",
        )
        self.offset = offset


def expression_at(where: Location | None) -> ExpressionAt:
    """A block in which an :class:`ExpressionError` raised gets ``where`` as its place unless it
    has one: an expression is evaluated far from the YAML it came from, and only the caller
    knows which key that was."""
    return ExpressionAt(where)


class ExpressionAt:
    """See :func:`expression_at`; :meth:`place` may find a finer place than ``where``."""

    # a class, not @contextmanager: a step enters four of these (its env, its condition, its
    # script), and a generator's context manager costs 1.1 µs each, this one a quarter of that
    __slots__ = ("where",)

    def __init__(self, where: Location | None) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: object, exc: BaseException | None, traceback: object
    ) -> Literal[False]:
        if isinstance(exc, ExpressionError) and exc.location is None:
            exc.location = self.place(exc)
        elif isinstance(exc, SubstitutionError) and exc.location is None:
            # `#{}` work past its budget (variables expanding to copies of each other) said
            # neither step nor key: the key's place, as for an expression
            exc.location = self.where
        return False

    def place(self, exc: ExpressionError) -> Location | None:
        """The place ``exc`` gets."""
        return self.where


class SubstitutionError(RunnerError):
    """A ``#{}`` template problem worth reporting (Octostache itself echoes bad templates back)."""


class SubstitutionLimitError(SubstitutionError):
    """Evaluating a template needed more than ``runner.variables.octostache.limits.MAX_WORK``
    units of work."""


class StepError(RunnerError):
    """A step could not be started or its outputs could not be read."""

    exit_code = ExitCode.STEP_FAILED


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class PreflightProblem(Protocol):
    """What :class:`PreflightError` lists (``runner.engine.preflight.Problem``)."""

    @property
    def step(self) -> _Named: ...

    @property
    def message(self) -> str: ...

    @property
    def hint(self) -> str: ...


class PreflightError(RunnerError):
    """Manual steps that cannot be decided here: the run stops before its first step."""

    exit_code = ExitCode.STEP_FAILED

    def __init__(self, problems: Sequence[PreflightProblem]) -> None:
        lines = ["manual steps that may run cannot be decided here, so nothing was run:"]
        for problem in problems:
            lines += [
                f"  step '{problem.step.name}': {problem.message}",
                f"    fix: {problem.hint}",
            ]
        super().__init__("\n".join(lines))
        self.problems = list(problems)


class ApprovalError(RunnerError):
    """An approval source failed or could not be reached, or a decision it returned is not
    acceptable. Not "timed out" (exit 4): that is a manual step's outcome, never an error's."""

    exit_code = ExitCode.APPROVAL_SOURCE


class VerificationError(ApprovalError):
    """An approval whose proof does not hold. It is refused, logged, and never counts."""


class TrustFileError(VerificationError):
    """An allowed_signers or revoked-keys file that cannot be used as it is."""


class GitError(ApprovalError):
    """git did not answer: not found, timed out, wrote too much, or failed (``runner.git``).
    An approval error because every git read of the runner serves trust or approvals: a failure
    there is never a decision."""


class ServerAnswer(ApprovalError):
    """The approval server answered with an error: ``status`` and its stable ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} ({code}, HTTP {status})")
        self.status = status
        self.code = code


class RefusedError(RunnerError):
    """The runner refuses to start or continue: a lock is held, a resume or a policy refused."""

    exit_code = ExitCode.REFUSED


class StateError(RefusedError):
    """The run record cannot be written: the runner stops rather than go on unrecorded."""


class SigningError(RunnerError):
    """``ssh-keygen -Y sign`` could not produce a signature."""


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


class Diagnostic(Struct, frozen=True):
    """One problem in a file, shown as ``path:line:col: message [kind]``."""

    location: Location
    message: str
    kind: str
    severity: str = "error"  # or "warning"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.location.path, self.location.line, self.location.column, self.message)
