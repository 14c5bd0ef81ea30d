"""The run record: the whole state of a run, saved so that it can be reloaded and resumed.

The engine is a state machine over this record. Each change is one line appended to the run's
journal, ``events.jsonl`` (``runner.engine.journal``); ``record.json`` is a snapshot, written
atomically (a temporary file renamed over the old one) and fsynced, file and folder, when the run
is created and wherever it may be read by others or travel: at manual steps, at a detach and at
the end of the run. Readers (``RecordStore.load``) replay the journal's newer lines over it.

Secrets never reach it: secret outputs are stored as names only (or masked, when a step wrote a
secret into an output), secret inputs as ``***``, environment variables steps set masked.
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
import os
import shlex
import tempfile
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from itertools import compress, count
from pathlib import Path
from typing import Any, cast

import msgspec
from msgspec import Struct, field, msgpack
from msgspec.structs import asdict, replace

from runner.approvals.state import ApprovalState, GuidedState, RecordShapeError
from runner.bounded import MAX_RECORD_FILE_BYTES, loads, read_file
from runner.engine import journal
from runner.engine.journal import Position
from runner.engine.seal import seal, unseal
from runner.errors import StateError
from runner.process import SignalsDeferred
from runner.workspace import write_replacing

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


class StepRecord(Struct, frozen=True, dict=True):
    """One step's state in the record. Frozen, its containers typed read-only: a change is a
    new record put in place by ``RunRecord.update_step``, so a step's JSON line, encoded once,
    can be kept as long as the object lives (``json_line``), and so can anything else built
    from it (``runner.evaluation.contexts.ContextBuilder``)."""

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
    outputs: Mapping[str, str] = field(default_factory=dict)
    #: names of outputs that were secret: their values are never stored
    secret_outputs: Sequence[str] = field(default_factory=list)
    #: Octopus output variables (``Manual.Notes`` ...), secret ones left out as above
    octopus: Mapping[str, str] = field(default_factory=dict)
    #: for manual steps: the interruption and every decision, with its evidence
    approval: ApprovalState | None = None
    error: str | None = None
    #: guided failure (issue 21): each decided failed attempt, and the open question if any
    guided: GuidedState | None = None

    def json_line(self) -> str:
        """The step as one line of JSON, encoded at the first call and kept: the record is
        saved at every step boundary, and encoding every step again each time made a step's
        cost grow with the number of steps before it."""
        line = self.__dict__.get("_json_line")
        if line is None:
            line = _ENCODE(step_fields(self))
            self.__dict__["_json_line"] = line  # not a field: frozen is about the fields
        return line


def step_fields(step: StepRecord) -> dict[str, Any]:
    """A step's fields as the record's JSON object holds them: its approval and guided states
    as their own objects, the rest as they are (json encodes them)."""
    values = asdict(step)
    if step.approval is not None:
        values["approval"] = step.approval.to_json()
    if step.guided is None:
        # a step that never asked keeps the line it had before guided failure existed
        del values["guided"]
    else:
        values["guided"] = step.guided.to_json()
    return values


class RunRecord(Struct, dict=True):
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
    #: those of ``path`` whose entry held a secret (as ``path`` shows them, masked): known
    #: whole only to the process that ran the step, as ``secret_env``'s values are
    secret_path: list[str] = field(default_factory=list)
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
    #: in ``record.json``: how many lines of ``events.jsonl`` it holds, and the journal's chain
    #: after them (``runner.engine.journal``)
    journal: dict[str, Any] | None = None
    version: int = FORMAT_VERSION

    def step(self, step_id: str) -> StepRecord:
        return self.steps[self._index(step_id)]

    def update_step(self, step_id: str, **changes: Any) -> StepRecord:
        """Put a copy of step ``step_id`` with ``changes`` in its place, and return it."""
        index = self._index(step_id)
        new = replace(self.steps[index], **changes)
        self.steps[index] = new
        # a hint for the store's next save, which checks it (see RecordStore._changed_steps)
        self.__dict__.setdefault("_updated", set()).add(index)
        return new

    def updated_steps(self) -> set[int]:
        """The positions :meth:`update_step` changed since the last call (a hint: a step put
        in place another way is not in it)."""
        return cast(set[int], self.__dict__.pop("_updated", set()))

    def _index(self, step_id: str) -> int:
        # a dict kept beside the list (not a field) and checked at each use: the list is
        # public and a caller may have replaced it or its items
        index = self.__dict__.get("_step_index")
        if index is not None:
            at = index.get(step_id)
            if at is not None and at < len(self.steps) and self.steps[at].id == step_id:
                return int(at)
        index = self.__dict__["_step_index"] = {}
        for at, step in enumerate(self.steps):
            index.setdefault(step.id, at)
        if step_id not in index:
            raise KeyError(step_id)
        return int(index[step_id])

    @property
    def finished(self) -> bool:
        return self.status not in (RunStatus.RUNNING, RunStatus.WAITING)

    def to_json(self) -> str:
        """One field per line and one step per line: readable, and written by json's C encoder
        (``indent=`` falls back to the pure-Python one, and that with ``asdict``'s deep copy
        made saving the record cost more than running the step). Each step's line is the one
        it keeps (``StepRecord.json_line``)."""
        lines = []
        for name in self.__struct_fields__:
            if name == "journal" and self.journal is None:
                continue  # a record with no journal lines (and every record before them)
            if name == "secret_path" and not self.secret_path:
                continue  # the same: a record as every runner before it wrote one
            if name == "steps":
                steps = ",\n".join([f"  {step.json_line()}" for step in self.steps])
                lines.append(f' "steps": [\n{steps}\n ]' if steps else ' "steps": []')
            else:
                lines.append(f" {_ENCODE(name)}: {_ENCODE(getattr(self, name))}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """A record from its JSON; ``ValueError`` (an ``InputLimitError`` when nested too
        deeply) for anything that is not one: a record may come from a copied state folder or
        the approval server, and a reader must refuse it, never crash on it."""

        return cls.from_data(loads(text, what="the run record"))

    @classmethod
    def from_data(cls, data: Any) -> RunRecord:
        """A record from its parsed JSON, refused as ``from_json`` says."""
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a run record of format {FORMAT_VERSION}")
        if not isinstance(data.get("steps"), list) or not all(
            isinstance(s, dict) for s in data["steps"]
        ):
            raise ValueError("the run record's `steps` is not a list of steps")
        known = set(StepRecord.__struct_fields__)
        own = set(cls.__struct_fields__)
        values = {k: v for k, v in data.items() if k in own and k != "steps"}
        if "status" in values:
            try:
                values["status"] = RunStatus(values["status"])
            except ValueError:
                raise RecordShapeError(f"its record's status is {values['status']!r}") from None
        for name, value in values.items():
            values[name] = _field_value(name, value)
        try:
            steps = [
                StepRecord(**{k: _step_value(s, k, v) for k, v in s.items() if k in known})
                for s in data["steps"]
            ]
            return cls(steps=steps, **values)
        except TypeError as exc:  # a field missing: not a record this runner wrote
            raise ValueError(f"not a complete run record: {exc}") from None


def _field_value(name: str, value: Any) -> Any:
    """A top-level field of a record read back, refused when not of its type: a record written
    by hand with ``started_by`` as a text crashed ``runner runs show`` (attack pass)."""
    try:
        return msgspec.convert(value, _record_types()[name], strict=True)
    except msgspec.ValidationError as exc:
        raise RecordShapeError(
            f"its record's `{name}` is not what the runner writes: {exc}"
        ) from None


@functools.cache
def _record_types() -> dict[str, Any]:
    return typing.get_type_hints(RunRecord)


def _step_value(step: dict[str, Any], name: str, value: Any) -> Any:
    if name == "status":
        try:
            return StepStatus(value)
        except ValueError:
            raise RecordShapeError(f"its record's step `{step.get('id')}` is {value!r}") from None
    if name not in _SHAPES or value is None:
        return value
    try:
        return _SHAPES[name](value)
    except RecordShapeError as exc:
        raise RecordShapeError(
            f"the `{name}` of its record's step `{step.get('id')}` {exc}"
        ) from None


#: the step fields kept as typed objects, read from their JSON
_SHAPES: dict[str, Callable[[object], object]] = {
    "approval": ApprovalState.from_json,
    "guided": GuidedState.from_json,
}


def _plain(value: Any) -> Any:
    """A struct as a dict of its fields (shallow: json encodes the values as they are)."""
    if type(value) is StepRecord:
        return step_fields(value)
    if isinstance(value, (ApprovalState, GuidedState)):
        return value.to_json()
    if isinstance(value, Struct):
        return asdict(value)
    if isinstance(value, Mapping):  # a step's read-only mappings, whatever their type
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODE = json.JSONEncoder(ensure_ascii=False, default=_plain).encode


class _Written(Struct):
    """A run's record as this store last wrote or read it: where its journal's chain stands,
    its top-level fields as JSON, and its step objects (frozen: an unchanged step is the same
    object)."""

    position: Position
    fields: dict[str, str]
    steps: list[StepRecord]
    #: all those fields in one value (:func:`_whole`): equal, equal fields (one encoder call
    #: instead of one a field, at each of a step's two saves)
    whole: bytes = b""
    #: the journal's path, built once
    journal: Path | None = None


def _changed_steps(record: RunRecord, written: list[StepRecord]) -> Iterable[int]:
    """The positions of the steps that changed since ``written``. Steps are frozen: a changed
    one is another object. The positions ``update_step`` changed are checked first: the list
    as written with those steps put in is compared with the record's in one C-level pass (an
    item is its own equal at once), ten times quicker than finding each changed one; only if
    something else changed too (a step put in place by hand) is each compared."""
    now = record.steps
    hint = record.updated_steps()
    if len(now) == len(written):
        expected = list(written)
        for index in hint:
            if index < len(now):
                expected[index] = now[index]
        if expected == now:
            return sorted(i for i in hint if i < len(now) and now[i] is not written[i])
    return compress(count(), map(operator.is_not, now, written))


def _encoded(record: RunRecord) -> dict[str, str]:
    return {name: _ENCODE(getattr(record, name)) for name in _RUN_FIELDS}


def _whole(record: RunRecord) -> bytes:
    """All the top-level fields as one value that changes when any of them does. Only compared,
    never written, so msgpack: a third of the JSON encoder's time, at each of a step's two saves,
    and exact where JSON is not (``NaN`` and ``null``, ``1`` and ``1.0`` and ``true`` differ).
    A value msgpack cannot hold (an integer over 64 bits) falls back to the JSON text."""
    values = [getattr(record, name) for name in _RUN_FIELDS]
    try:
        return _PACK(values)
    except (TypeError, ValueError, OverflowError):
        return _ENCODE(values).encode()


_PACK = msgpack.Encoder(enc_hook=_plain).encode


#: the fields a journal line may set: all but the steps (by position) and the snapshot's own
_RUN_FIELDS = tuple(n for n in RunRecord.__struct_fields__ if n not in ("steps", "journal"))


class RecordStore:
    """Run records as ``<state-dir>/runs/<run-id>/record.json`` and ``events.jsonl``."""

    def __init__(self, state_dir: Path, *, key: bytes | None = None) -> None:
        self.state_dir = state_dir
        self.runs = state_dir / "runs"
        #: ``$RUNNER_RECORD_KEY``: with it, every snapshot is sealed and every journal line MACed
        self.key = key
        #: called after each durable save (the approval server keeps a copy of the record)
        self.mirror: Callable[[RunRecord], None] | None = None
        self._written: dict[str, _Written] = {}

    def folder(self, run_id: str) -> Path:
        return self.runs / run_id

    def resume_command(self, run_id: str) -> str:
        """The command that resumes ``run_id`` from here: with ``--state-dir`` unless the state
        folder is the default ``.runner`` (``$RUNNER_STATE_DIR`` may not be set where the hint is
        followed, a later CI job or another shell)."""

        command = f"runner resume {shlex.quote(run_id)}"
        if Path(self.state_dir) != Path(".runner"):
            command += f" --state-dir {shlex.quote(str(self.state_dir))}"
        return command

    def path(self, run_id: str) -> Path:
        return self.folder(run_id) / "record.json"

    def journal_path(self, run_id: str) -> Path:
        return self.folder(run_id) / journal.NAME

    def exists(self, run_id: str) -> bool:
        # not ``is_file``: a record replaced by a FIFO or a folder is a run whose record cannot
        # be read (a refusal naming it), not "no such run"
        return self.path(run_id).exists()

    def create(self, record: RunRecord) -> bool:
        """Save a new run's first record unless a run with its id exists: of two processes
        starting the same run id at once, exactly one creates it (False for the other).

        The whole record is written to a temporary file and linked into place: ``link`` fails if
        the name exists, and a kill at any moment leaves no record or the whole one, never an
        empty file that a reader would take for a broken run."""
        folder = self.folder(record.run_id)
        position = journal.start(record.run_id, record.started_at, self.key)
        record.journal = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            created = write_new(self.path(record.run_id), self._snapshot_bytes(record))
        except OSError as exc:
            raise StateError(
                f"cannot create the record of run {record.run_id} in {folder}: "
                f"{exc.strerror or exc}"
            ) from None
        if created:
            self._written[record.run_id] = _Written(
                position, _encoded(record), list(record.steps), _whole(record)
            )
        return created

    def save(self, record: RunRecord, *, durable: bool = False) -> None:
        """Record what changed since the last save as one journal line; with ``durable``, also
        write the snapshot, made to survive a power loss."""
        try:
            with SignalsDeferred():  # the line and its count in memory go together
                self._save(record, durable=durable)
        except (OSError, journal.JournalError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StateError(
                f"cannot save the record of run {record.run_id} in {self.folder(record.run_id)}: "
                f"{why}; the run stops here, its last saved record is intact",
                hint=f"free space or fix the state folder, then `runner resume {record.run_id}`",
            ) from None
        if durable and self.mirror is not None:
            self.mirror(record)

    def _save(self, record: RunRecord, *, durable: bool) -> None:
        written = self._written.get(record.run_id)
        if written is None or len(written.steps) != len(record.steps):
            # a record this store did not write or read (fetched from the server, built by
            # hand): a snapshot, after whatever lines the journal holds
            self.folder(record.run_id).mkdir(parents=True, exist_ok=True)
            _, position = journal.read(
                self.journal_path(record.run_id), record.run_id, record.started_at, self.key
            )
            self._snapshot(record, position, durable=durable)
        else:
            self._append(record, written, durable=durable)
            if durable:
                self._snapshot(record, written.position, durable=True)

    def _append(self, record: RunRecord, written: _Written, *, durable: bool) -> None:
        whole = _whole(record)
        old = written.fields
        if whole == written.whole:
            now, changed = old, []
        else:
            now = _encoded(record)
            changed = [
                f"{_ENCODE(name)}: {text}" for name, text in now.items() if old.get(name) != text
            ]
        changed_at = _changed_steps(record, written.steps)
        steps = [f'"{index}": {record.steps[index].json_line()}' for index in changed_at]
        if not changed and not steps:
            written.whole = whole
            return
        parts = []
        if changed:
            parts.append('"set": {' + ", ".join(changed) + "}")
        if steps:
            parts.append('"steps": {' + ", ".join(steps) + "}")
        data, position = journal.line(written.position, self.key, ", ".join(parts))
        if written.journal is None:
            written.journal = self.journal_path(record.run_id)
        _within_limit(written.journal, "journal", position.size)
        journal.append(written.journal, data, written.position.size, durable=durable)
        written.position, written.fields, written.steps = position, now, list(record.steps)
        written.whole = whole

    def _snapshot(self, record: RunRecord, position: Position, *, durable: bool) -> None:
        record.journal = position.to_dict() if position.lines else None
        data = self._snapshot_bytes(record)
        _within_limit(self.path(record.run_id), "record", len(data))
        write_replacing(self.path(record.run_id), data, durable=durable)
        self._written[record.run_id] = _Written(
            position, _encoded(record), list(record.steps), _whole(record)
        )

    def _snapshot_bytes(self, record: RunRecord) -> bytes:
        data = record.to_json().encode("utf-8")
        if self.key is not None:
            data = seal(data, self.key)
        return data

    def check_current(self, run_id: str) -> None:
        """Refuse (``StateError``) to go on from a record another process has saved since this
        store read it: its journal holds whole lines this store did not write (or fewer). A
        resume reads the record before it takes the run's lock; a second resume that took the
        lock after the first had run and let go went on from the record it had read, ran the
        steps again and cut the first one's lines off the journal."""
        written = self._written.get(run_id)
        if written is None:
            return
        try:
            with open(self.journal_path(run_id), "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                more = journal.lines_after(handle.fileno(), written.position.size)
        except FileNotFoundError:
            more, size = False, 0
        except OSError as exc:
            raise StateError(
                f"cannot read the journal of run {run_id}: {exc.strerror or exc}"
            ) from None
        if size < written.position.size or more:
            raise StateError(
                f"run {run_id} was run or resumed by another process since this one read its "
                "record: this one stops, and the record stays as the other left it",
                hint=f"`runner runs show {run_id}` says where it is; resume it again if it "
                "still waits",
            )

    def load(self, run_id: str) -> RunRecord:
        """The record, its seal (if any) not checked: for reports, never for a resume. The
        journal's lines after the snapshot are replayed (``JournalError``, a ``ValueError``,
        for a journal that is not this record's)."""
        return self._replayed(run_id, self._text(run_id))

    def load_sealed(self, run_id: str) -> RunRecord:
        """The record, its seal verified with this store's key (``SealError``, a
        ``ValueError``, when it is missing or does not verify), and every journal line."""

        assert self.key is not None
        text = self._text(run_id)
        return self._replayed(run_id, unseal(text, self.key))

    def _text(self, run_id: str) -> str:
        return read_file(self.path(run_id), what="run record", follow=False).decode("utf-8")

    def _replayed(self, run_id: str, text: str) -> RunRecord:

        data = loads(text, what="the run record")
        if not isinstance(data, dict):
            raise ValueError(f"not a run record of format {FORMAT_VERSION}")
        data, position = journal.replay(self.journal_path(run_id), run_id, data, self.key)
        record = RunRecord.from_data(data)
        self._written[run_id] = _Written(
            position, _encoded(record), list(record.steps), _whole(record)
        )
        return record

    def list(self, unreadable: list[tuple[str, str]] | None = None) -> Iterator[RunRecord]:
        """Every run whose record can be read; those that cannot are appended to
        ``unreadable`` (run id, why) when given, for a listing to say so."""
        if not self.runs.is_dir():
            return
        for folder in sorted(self.runs.iterdir()):
            try:
                yield self.load(folder.name)
            except FileNotFoundError:
                continue  # a folder with no record: a run id never claimed
            except (OSError, ValueError, TypeError, KeyError) as exc:
                if unreadable is not None:
                    unreadable.append((folder.name, str(exc) or type(exc).__name__))


def write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` whole, unless it exists (False then)."""

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


def _within_limit(path: Path, what: str, size: int) -> None:
    """Refuse (``JournalError``: the run stops, its last record whole) to write a record or a
    journal of more than the runner reads back: it would be a run no ``resume`` or ``runs
    show`` could read (a step's 200 MB output was recorded, and the run was lost)."""
    if size > MAX_RECORD_FILE_BYTES:
        raise journal.JournalError(
            f"{path}: the run's {what} would be {size:,} bytes, more than the "
            f"{MAX_RECORD_FILE_BYTES // (1024 * 1024)} MiB the runner reads back"
        )
