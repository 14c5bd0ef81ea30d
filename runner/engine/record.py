"""The run record: the whole state of a run, saved so that it can be reloaded and resumed.

The engine is a state machine over this record. It is written atomically at each step boundary (a
temporary file in the same folder, renamed over the old one, so a killed runner leaves either the
old record or the new one, never half of one) and fsynced, file and folder, where it must survive
the machine: at manual steps and at the end of the run.

Secrets never reach it: secret outputs are stored as names only (or masked, when a step wrote a
secret into an output), secret inputs as ``***``, environment variables steps set masked.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from runner.approvals.state import ApprovalState, RecordShapeError

FORMAT_VERSION = 1


class StepStatus(StrEnum):
    """A step's state in the record (a ``str``: the JSON is the same text)."""

    PENDING = "pending"
    RUNNING = "running"
    #: manual steps only
    WAITING = "waiting"
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    #: it was running when its runner died
    INTERRUPTED = "interrupted"


class RunStatus(StrEnum):
    """A run's state; every one but ``running`` and ``waiting`` is final."""

    RUNNING = "running"
    WAITING = "waiting"
    SUCCESS = "success"
    FAILURE = "failure"
    ABORTED = "aborted"
    TIMED_OUT = "timed-out"
    CANCELLED = "cancelled"
    #: the deployment lock was held when the run started, and no step ran
    REFUSED = "refused"


@dataclass
class StepRecord:
    id: str
    name: str
    status: StepStatus = StepStatus.PENDING
    outcome: str = ""
    conclusion: str = ""
    reason: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    #: names of outputs that were secret: their values are never stored
    secret_outputs: list[str] = field(default_factory=list)
    #: Octopus output variables (``Manual.Notes`` ...), secret ones left out as above
    octopus: dict[str, str] = field(default_factory=dict)
    #: for manual steps: the interruption and every decision, with its evidence
    approval: ApprovalState | None = None
    error: str | None = None
    #: guided failure (issue 21): each decided failed attempt, and the open question if any
    guided: dict[str, Any] | None = None


@dataclass
class RunRecord:
    run_id: str
    workflow_path: str
    workflow_name: str
    digest: str
    environment: str
    #: sha256 of the workflow file and of each action it uses, to refuse a changed resume
    files: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    started_by: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str | None = None
    status: RunStatus = RunStatus.RUNNING
    exit_code: int | None = None
    job_status: str = "success"
    error: dict[str, str] | None = None
    #: environment variables set by steps through ``RUNNER_ENV`` (masked), and path entries
    env: dict[str, str] = field(default_factory=dict)
    #: names of those whose value held a secret: stored masked, known whole only to the
    #: process that ran the step
    secret_env: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    #: the source commit being deployed, where git knows it
    commit: str | None = None
    #: the commit the trust ref named when the run started; a resumed run reads trust from it
    trust_commit: str | None = None
    host: str = ""
    pid: int | None = None
    #: steps skipped with --skip, kept so that a resumed run skips them too
    skip: list[str] = field(default_factory=list)
    #: the environment policy's verdict at start, and a break-glass override if one was used
    policy: list[dict[str, Any]] = field(default_factory=list)
    break_glass: dict[str, Any] | None = None
    steps: list[StepRecord] = field(default_factory=list)
    version: int = FORMAT_VERSION

    def step(self, step_id: str) -> StepRecord:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def finished(self) -> bool:
        return self.status not in (RunStatus.RUNNING, RunStatus.WAITING)

    def to_json(self) -> str:
        """One field per line and one step per line: readable, and written by json's C encoder
        (``indent=`` falls back to the pure-Python one, and that with ``asdict``'s deep copy
        made saving the record, twice per step, cost more than running the step).

        Each step's line is kept and reused while the step is unchanged (see ``_StepLines``):
        the record is saved twice per step, and encoding every step again each time made a
        step's cost grow with the number of steps before it."""
        encode = json.JSONEncoder(ensure_ascii=False, default=_plain).encode
        lines = []
        for item in fields(self):
            if item.name == "steps":
                cache = self.__dict__.get("_step_lines")
                if cache is None:
                    cache = self.__dict__["_step_lines"] = _StepLines()
                steps = cache.text(self.steps, encode)
                lines.append(f' "steps": [\n{steps}\n ]' if steps else ' "steps": []')
            else:
                lines.append(f" {encode(item.name)}: {encode(getattr(self, item.name))}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """A record from its JSON; ``ValueError`` (an ``InputLimitError`` when nested too
        deeply) for anything that is not one: a record may come from a copied state folder or
        the approval server, and a reader must refuse it, never crash on it."""
        from runner.bounded import loads

        data = loads(text, what="the run record")
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a run record of format {FORMAT_VERSION}")
        if not isinstance(data.get("steps"), list) or not all(
            isinstance(s, dict) for s in data["steps"]
        ):
            raise ValueError("the run record's `steps` is not a list of steps")
        known = {f.name for f in fields(StepRecord)}
        own = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in own and k != "steps"}
        if "status" in values:
            try:
                values["status"] = RunStatus(values["status"])
            except ValueError:
                raise RecordShapeError(f"its record's status is {values['status']!r}") from None
        try:
            steps = [
                StepRecord(**{k: _step_value(s, k, v) for k, v in s.items() if k in known})
                for s in data["steps"]
            ]
            return cls(steps=steps, **values)
        except TypeError as exc:  # a field missing: not a record this runner wrote
            raise ValueError(f"not a complete run record: {exc}") from None


def _step_value(step: dict[str, Any], name: str, value: Any) -> Any:
    if name == "status":
        try:
            return StepStatus(value)
        except ValueError:
            raise RecordShapeError(f"its record's step `{step.get('id')}` is {value!r}") from None
    if name != "approval" or value is None:
        return value
    try:
        return ApprovalState.from_json(value)
    except RecordShapeError as exc:
        raise RecordShapeError(
            f"the `approval` of its record's step `{step.get('id')}` {exc}"
        ) from None


class _StepLines:
    """The JSON line of each step of a record, re-encoded only when the step has changed.

    A step is unchanged when its attributes are the same values of the same types as when its
    line was encoded (``1``, ``1.0`` and ``True`` are equal in Python but not in JSON). Lines are
    kept only for steps whose containers hold strings alone (outputs, secret output names,
    Octopus variables) and that have no approval (nested values of any type): those are copied
    and compared in full; any other step is encoded at every save, as before.

    The engine changes a step only on its way from ``pending`` to a final status (``running``,
    ``waiting`` in between), and saves it at each: a step still pending, or still in the final
    status it had when its line was encoded, is taken as unchanged without the comparison, which
    made each save cost as much as comparing every step of the run."""

    FINAL = frozenset(
        {StepStatus.SUCCESS, StepStatus.FAILURE, StepStatus.CANCELLED, StepStatus.SKIPPED}
    )
    STABLE = FINAL | {StepStatus.PENDING}

    def __init__(self) -> None:
        #: the leading finished steps, their statuses then, and their joined lines
        self.done: tuple[list[StepRecord], list[str], str] = ([], [], "")
        #: the trailing steps that were pending, and their lines
        self.tail: tuple[list[StepRecord], list[str]] = ([], [])
        #: id(step) -> (step, its values then, their types, its line, its status then)
        self.lines: dict[int, tuple[StepRecord, tuple[Any, ...], tuple[type, ...], str, str]] = {}

    def text(self, steps: list[StepRecord], encode: Callable[[Any], str]) -> str:
        """The steps' lines joined; the leading steps that were finished at the last call, and
        are still, are one kept piece of text (the run's finished steps, at every save), and the
        trailing ones that were pending and still are keep their lines (the steps to come)."""
        done, statuses, kept = self.done
        count = len(done)
        if count > len(steps) or not (
            all(map(operator.is_, steps[:count], done))
            and [step.status for step in steps[:count]] == statuses
        ):
            done, statuses, kept, count = [], [], "", 0
        tail, tail_lines = self._pending_tail(steps, count)
        middle = steps[count : len(steps) - len(tail)]
        lines = [f"  {self.line(step, encode)}" for step in middle]
        rest = lines
        taken = 0
        for step in middle:
            if step.status not in self.FINAL or id(step) not in self.lines:
                break
            taken += 1
        if taken:
            kept = ",\n".join(filter(None, [kept, *rest[:taken]]))
            rest = rest[taken:]
            done = [*done, *middle[:taken]]
            statuses = [*statuses, *(step.status for step in middle[:taken])]
        self.done = (done, statuses, kept)
        pending = len(middle)
        while (
            pending > taken
            and middle[pending - 1].status == StepStatus.PENDING
            and id(middle[pending - 1]) in self.lines  # one whose line may be kept at all
        ):
            pending -= 1
        self.tail = ([*middle[pending:], *tail], [*lines[pending:], *tail_lines])
        return ",\n".join(filter(None, [kept, *rest, *tail_lines]))

    def _pending_tail(
        self, steps: list[StepRecord], start: int
    ) -> tuple[list[StepRecord], list[str]]:
        """The kept trailing steps that are the same steps, still pending, after ``start``."""
        tail, lines = self.tail
        count = len(tail)
        if not count or count > len(steps) - start:
            return [], []
        if not all(map(operator.is_, steps[len(steps) - count :], tail)):
            return [], []
        pending = [step.status == StepStatus.PENDING for step in tail]
        if not all(pending):
            started = count - pending[::-1].index(False)  # up to the last one no longer pending
            return tail[started:], lines[started:]
        return tail, lines

    def line(self, step: StepRecord, encode: Callable[[Any], str]) -> str:
        entry = self.lines.get(id(step))
        if (
            entry is not None
            and entry[0] is step
            and step.status in self.STABLE
            and entry[4] == step.status
        ):
            return entry[3]
        values = vars(step)
        now = tuple(values.items())
        if (
            entry is not None
            and entry[0] is step
            and entry[1] == now
            and entry[2] == tuple(map(type, values.values()))
        ):
            return entry[3]
        text = encode(_plain(step))
        if _plain_strings(step):
            copied = tuple((k, v.copy() if isinstance(v, dict | list) else v) for k, v in now)
            types = tuple(map(type, values.values()))
            self.lines[id(step)] = (step, copied, types, text, step.status)
        else:
            self.lines.pop(id(step), None)
        return text


def _plain_strings(step: StepRecord) -> bool:
    if type(step) is not StepRecord or step.approval is not None:
        return False
    for value in vars(step).values():
        if isinstance(value, dict):
            if not all(type(k) is str and type(v) is str for k, v in value.items()):
                return False
        elif isinstance(value, list):
            if not all(type(v) is str for v in value):
                return False
        elif not isinstance(value, str | int | float | type(None)):
            return False
    return True


def _plain(value: Any) -> Any:
    """A dataclass as a dict of its fields (shallow: json encodes the values as they are)."""
    if isinstance(value, ApprovalState):
        return value.to_json()
    if is_dataclass(value) and not isinstance(value, type):
        if type(value) is StepRecord:
            values = vars(value)
            if values["guided"] is None:
                # a step that never asked keeps the line it had before guided failure existed
                return {k: v for k, v in values.items() if k != "guided"}
            return values  # its fields, in order (no copy: encoding does not change it)
        return {item.name: getattr(value, item.name) for item in fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class RecordStore:
    """Run records as ``<state-dir>/runs/<run-id>/record.json``."""

    def __init__(self, state_dir: Path, *, key: bytes | None = None) -> None:
        self.state_dir = state_dir
        self.runs = state_dir / "runs"
        #: ``$RUNNER_RECORD_KEY``: with it, every save seals the record (``runner.engine.seal``)
        self.key = key
        #: called after each durable save (the approval server keeps a copy of the record)
        self.mirror: Callable[[RunRecord], None] | None = None

    def folder(self, run_id: str) -> Path:
        return self.runs / run_id

    def resume_command(self, run_id: str) -> str:
        """The command that resumes ``run_id`` from here: with ``--state-dir`` unless the state
        folder is the default ``.runner`` (``$RUNNER_STATE_DIR`` may not be set where the hint is
        followed, a later CI job or another shell)."""
        import shlex

        command = f"runner resume {shlex.quote(run_id)}"
        if Path(self.state_dir) != Path(".runner"):
            command += f" --state-dir {shlex.quote(str(self.state_dir))}"
        return command

    def path(self, run_id: str) -> Path:
        return self.folder(run_id) / "record.json"

    def exists(self, run_id: str) -> bool:
        return self.path(run_id).is_file()

    def create(self, record: RunRecord) -> bool:
        """Save a new run's first record unless a run with its id exists: of two processes
        starting the same run id at once, exactly one creates it (False for the other).

        The whole record is written to a temporary file and linked into place: ``link`` fails if
        the name exists, and a kill at any moment leaves no record or the whole one, never an
        empty file that a reader would take for a broken run."""
        folder = self.folder(record.run_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return write_new(self.path(record.run_id), record.to_json().encode("utf-8"))
        except OSError as exc:
            from runner.errors import StateError

            raise StateError(
                f"cannot create the record of run {record.run_id} in {folder}: "
                f"{exc.strerror or exc}"
            ) from None

    def save(self, record: RunRecord, *, durable: bool = False) -> None:
        """Replace the record atomically; with ``durable``, make it survive a power loss."""
        folder = self.folder(record.run_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            data = record.to_json().encode("utf-8")
            if self.key is not None:
                from runner.engine.seal import seal

                data = seal(data, self.key)
            write_atomic(self.path(record.run_id), data, durable=durable)
        except OSError as exc:
            from runner.errors import StateError

            raise StateError(
                f"cannot save the record of run {record.run_id} in {folder}: "
                f"{exc.strerror or exc}; the run stops here, its last saved record is intact",
                hint=f"free space or fix the state folder, then `runner resume {record.run_id}`",
            ) from None
        if durable and self.mirror is not None:
            self.mirror(record)

    def load(self, run_id: str) -> RunRecord:
        """The record, its seal (if any) not checked: for reports, never for a resume."""
        return RunRecord.from_json(self.path(run_id).read_text(encoding="utf-8"))

    def load_sealed(self, run_id: str) -> RunRecord:
        """The record, its seal verified with this store's key (``SealError``, a
        ``ValueError``, when it is missing or does not verify)."""
        from runner.engine.seal import unseal

        assert self.key is not None
        text = self.path(run_id).read_text(encoding="utf-8")
        return RunRecord.from_json(unseal(text, self.key))

    def list(self) -> Iterator[RunRecord]:
        if not self.runs.is_dir():
            return
        for folder in sorted(self.runs.iterdir()):
            try:
                yield self.load(folder.name)
            except (OSError, ValueError, TypeError, KeyError):
                continue


def write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` whole, unless it exists (False then)."""
    import tempfile

    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def write_atomic(path: Path, data: bytes, *, durable: bool) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``."""
    import tempfile  # not at the top: ``runner --help`` imports this module (runner.cli.runs)

    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
