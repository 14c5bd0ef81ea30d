"""What every step kind receives and returns."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from msgspec import Struct, field

from runner.approvals.state import ApprovalState, Decision, GuidedState
from runner.errors import Location, StepError
from runner.load.yaml import expression_in
from runner.masking import Masker
from runner.model import Identity, Step, Workflow
from runner.options import RunOptions
from runner.process import ProcessGroups
from runner.steps.scratch import Scratch
from runner.workspace import write_replacing


class StepResult(Struct):
    outcome: str  # success | failure | cancelled
    outputs: dict[str, str] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    octopus: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    summary: str = ""
    exit_code: int | None = None
    error: str | None = None
    attempts: int = 1
    timed_out: bool = False
    approval: ApprovalState | None = None
    #: for manual steps: the run should end with this exit code (aborted 3, timed out 4)
    exit_code_hint: int | None = None
    #: a failure the run goes on after, as after a success: guided failure's skip (the step
    #: keeps its failed outcome, and Octopus's status code ``Failed``)
    tolerated: bool = False
    #: guided failure's decisions and open question, for ``StepRecord.guided``
    guided: GuidedState | None = None


class StepLog(Protocol):
    """Where a step's output goes; every text is masked before it gets here."""

    def line(self, step: Step, text: str) -> None: ...

    def annotation(
        self, step: Step, level: str, message: str, properties: Mapping[str, str]
    ) -> None: ...

    def group(self, step: Step, title: str | None) -> None: ...

    def waiting(self, step: Step, request: Mapping[str, Any], status: str) -> None: ...

    def decision(self, step: Step, decision: Decision) -> None: ...


class RunLog(StepLog, Protocol):
    """Everything the engine tells people; each format in ``runner.logs`` implements it."""

    def write(self, *lines: str) -> None: ...

    def run_started(self, workflow: Workflow, record: Any) -> None: ...

    def step_started(self, step: Step) -> None: ...

    def step_skipped(self, step: Step, reason: str) -> None: ...

    def step_error(self, step: Step, message: str, location: Any) -> None: ...

    def step_finished(self, step: Step, record: Any, summary: str) -> None: ...

    def preflight_failed(self, problems: Any) -> None: ...

    def run_detached(self, record: Any, resume: str | None = None) -> None: ...

    def run_finished(self, workflow: Workflow, record: Any) -> None: ...

    def close(self) -> None:
        """End what the format has open (a CI's group, fence or section): called on every way
        out of a run (finished, detached, failed, interrupted), and more than once at will."""


class Siblings:
    """The Octopus-variables files of the script steps running together (``start:
    with-previous``): a ``-sensitive`` value one sets is masked in the others' output as soon
    as it is written, not only once its own step prints a line or ends (the masker is the
    run's, but each step read only its own file)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: file -> the size it had when last read
        self._files: dict[str, int] = {}

    def add(self, path: str) -> None:
        with self._lock:
            self._files[path] = 0

    def remove(self, path: str) -> None:
        with self._lock:
            self._files.pop(path, None)

    def changed(self, sizes: Callable[[str], int]) -> list[str]:
        """The files whose size ``sizes`` now says differs from when they were last read."""
        with self._lock:
            found = []
            for path, seen in self._files.items():
                size = sizes(path)
                if size != seen:
                    self._files[path] = size
                    found.append(path)
            return found


class StepContext(Struct):
    workflow: Workflow
    step: Step
    environment: str
    run_id: str
    workspace: Path
    #: the step's folder in the state folder (made by whoever writes in it first)
    step_dir: Path
    #: where its script and file-command files go
    scratch: Scratch
    #: the process environment the step's commands get (before the runner's own file variables)
    env: dict[str, str]
    render: Callable[[str], str]
    masker: Masker
    log: StepLog
    groups: ProcessGroups
    #: ``${{ }}`` contexts for expressions evaluated by the step itself (composite actions)
    contexts: Mapping[str, object]
    variables: Mapping[str, str]
    sleep: Callable[[float], None]
    #: the wall clock (aware UTC), for deadlines that must hold across machines
    now: Callable[[], datetime]
    #: the step's approval state from the record (a resumed run), if any
    previous: ApprovalState | None = None
    #: save the step's approval state in the record, durably, before waiting
    checkpoint: Callable[[ApprovalState], None] = lambda state: None
    #: what the command line asks (``--detach-on-wait`` ...)
    options: RunOptions = field(default_factory=RunOptions)
    #: who started the run (CI actor or local user)
    started_by: Identity = field(default_factory=Identity)
    #: facts about the run the request binds: digest, commit, inputs, started_at
    run_facts: Mapping[str, Any] = field(default_factory=dict)
    #: the ids and names of the steps after this one
    following: tuple[str, ...] = ()
    cancelled: Callable[[], bool] = lambda: False
    #: ``call(function)``: its result, or :class:`runner.cancel.Cancelled` as soon as the run is
    #: cancelled (for a blocking call that ``sleep`` does not cover: a source's poll)
    interruptible: Callable[[Callable[[], Any]], Any] = lambda function: function()
    #: the runner's own environment (``env`` above is the step's, with CI=true and file paths)
    host_env: Mapping[str, str] = field(default_factory=dict)
    #: where a key of what runs is written, when it is not ``step`` (a composite action's step,
    #: in its ``action.yml``)
    where: Callable[[str], Location | None] | None = None
    #: the steps started with this one, when there are others (None: it runs alone)
    siblings: Siblings | None = None

    def at(self, key: str) -> Location | None:
        """Where the key (``run``, ``working-directory``...) of what runs is written."""
        return self.where(key) if self.where is not None else self.step.at(key)

    def render_at(self, key: str, template: str) -> str:
        """``render(template)``, the step's ``key`` (``run``, ``with`` ...) named as the place of
        an expression that fails there: evaluating it needs the run, so the error comes now,
        and without a place the user is left to find which ``${{ }}`` of the file it was."""
        with expression_in(self.at(key), template):
            return self.render(template)


class StepKind(Protocol):
    def __call__(self, ctx: StepContext) -> StepResult: ...


class Detached(Exception):
    """Raised by a manual step to stop the run while it waits (``--detach-on-wait``)."""

    def __init__(self, step_id: str) -> None:
        super().__init__(step_id)
        self.step_id = step_id


def write_step_file(step_dir: Path, name: str, text: str) -> None:
    """Write ``text`` as ``step_dir/name`` (a manual step's request file), written aside and
    renamed into place. The state folder travels as a CI artifact: a link put at the file made
    a resumed run write the request over whatever it named on the resume machine; one at the
    step's folder (or ``steps``), into a folder of the attacker's choosing. A link at the file
    is replaced; one at either folder fails the step (a :class:`StepError`)."""
    for folder in (step_dir.parent, step_dir):
        if folder.is_symlink():
            raise StepError(
                f"{folder} is a link, not the folder the runner made: not writing through it "
                "(the state folder was changed since the run wrote it)"
            )
    try:
        step_dir.mkdir(parents=True, exist_ok=True)
        # a link or a FIFO a step put at the name is replaced, never opened (a FIFO there
        # blocked the runner for ever, SIGTERM too); as open() makes one, the umask decides
        write_replacing(step_dir / name, text.encode("utf-8"), mode=0o666)
    except OSError as exc:
        raise _unwritten(step_dir / name, exc) from None


def _unwritten(path: Path, exc: OSError) -> StepError:
    return StepError(
        f"could not write the request file {path}: {exc.strerror or exc}; nobody was asked"
    )
