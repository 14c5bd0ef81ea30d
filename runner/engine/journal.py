"""The run's journal: ``events.jsonl`` beside ``record.json``, one line per change of the record.

A step boundary used to rename a new ``record.json`` over the old one (twice a step): the largest
part of a step's cost (bench/README.md). Now each change appends one line, written with one
``write``, holding only what changed: the record's top-level fields that differ from
the last line (``set``) and the steps replaced since (``steps``, by position). ``record.json`` is a
snapshot, rewritten where the state folder may be read by someone else or travel (a manual step,
a detach, the end of the run): it says how many journal lines it holds (``journal.lines``) and the
chain's value after the last of them (``journal.mac``). A reader replays the lines after those
over the snapshot (``replay``).

Lines are fsynced where the record was before: at manual steps, a detach, the end of the run
(``durable``). A script step's two lines are not: two fsyncs a step cost 1.5 to 5 ms on the
benchmark's disk, more than the step's shell, and a ``kill -9`` loses nothing written (the kernel
has it); a power loss may lose the last lines, as it could lose the renames before them.

Tamper evidence, as strong as the snapshot's seal (``runner.engine.seal``): every line ends with a
MAC chained over the one before, ``mac[n] = HMAC(key, mac[n-1] + "\\n" + line[n] without its MAC)``,
``mac[0]`` derived from the run id and the run's start time. So a line edited, removed, reordered,
added by someone without the key, or taken from another run's journal (another chain, whatever
run id it was given) fails at that line; a journal cut
below the snapshot's count, or whose chain does not reach the snapshot's ``journal.mac``, is
refused. Without ``RUNNER_RECORD_KEY`` the chain is a plain SHA-256 chain: it catches a damaged or
spliced file, not a forger (as an unsealed record). Lines after the snapshot that are cut off
whole cannot be told from a runner killed before writing them; where the state folder leaves the
machine (a detach, the end) the snapshot covers every line.

A last line without its newline is a write a crash cut short: it is dropped (and cut off before
the next line is appended); anything else that is not a verified line is refused with the file and
the line number.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct

from runner.bounded import NotTheRunnersFile, loads, open_regular, read_file
from runner.errors import InputLimitError
from runner.workspace import sync_folder, write_all

NAME = "events.jsonl"
#: the last field of every line: what the chain gives after it
_MAC = re.compile(r', "mac": "(hmac-sha256|sha256):([0-9a-f]{64})"\}\Z')


class JournalError(ValueError):
    """A journal line does not verify, or the journal does not match its snapshot."""


class Position(Struct, frozen=True):
    """Where a chain stands: the number of lines and the MAC after the last one."""

    lines: int
    mac: str
    #: bytes of the file up to the end of the last line counted (a torn line after it is not)
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "mac": self.mac}


def _scheme(key: bytes | None) -> str:
    return "sha256" if key is None else "hmac-sha256"


def _chain(key: bytes | None, previous: str, body: str) -> str:
    data = f"{previous}\n{body}".encode()
    if key is None:
        return f"sha256:{hashlib.sha256(data).hexdigest()}"
    return f"hmac-sha256:{hmac.new(key, data, hashlib.sha256).hexdigest()}"


def start(run_id: str, started_at: str, key: bytes | None) -> Position:
    """The chain of the run ``run_id`` started at ``started_at`` before its first line: another
    run's lines never verify, one given the same id included (the deployer chooses run ids, and
    a run killed mid-step has all its lines after its first snapshot)."""
    return Position(0, _chain(key, "runner journal v1", f"{run_id}\n{started_at}"), 0)


def line(position: Position, key: bytes | None, changes: str) -> tuple[bytes, Position]:
    """The line after ``position`` for ``changes`` (a JSON object's members, as text), and where
    the chain stands after it."""
    body = f'{{"n": {position.lines + 1}, {changes}'
    mac = _chain(key, position.mac, body)
    data = f'{body}, "mac": "{mac}"}}\n'.encode()
    return data, Position(position.lines + 1, mac, position.size + len(data))


def replay(
    path: Path, run_id: str, data: dict[str, Any], key: bytes | None
) -> tuple[dict[str, Any], Position]:
    """The record's data with the journal's lines after the snapshot ``data`` applied, and the
    chain's position at the journal's end. The chain is run ``run_id``'s, the run whose folder
    it is (what the snapshot says is checked by the caller). ``JournalError`` names the file and
    the line."""
    recorded = data.get("journal")
    snapshot = path.parent / "record.json"
    if recorded is None:
        at, mac = 0, None  # a record from before the journal, or written by hand
    elif (
        isinstance(recorded, dict)
        and type(recorded.get("lines")) is int
        and recorded["lines"] >= 0
        and isinstance(recorded.get("mac"), str)
    ):
        at, mac = recorded["lines"], recorded["mac"]
    else:
        raise JournalError(f"{snapshot}: its `journal` field is not a journal position")
    started = data.get("started_at")
    events, position = read(path, run_id, str(started or ""), key, Position(at, mac or ""))
    for where, event in events:
        _apply(data, event, where)
    return data, position


def read(
    path: Path,
    run_id: str,
    started_at: str,
    key: bytes | None,
    snapshot: Position | None = None,
) -> tuple[list[tuple[str, Any]], Position]:
    """The journal's lines after the ``snapshot`` (``file:line``, the change), and the chain's
    position at its end, every line checked.

    With ``key``, every line must be its HMAC; without, SHA-256 lines are checked and HMAC ones
    taken as they are (a report read without the key, as a sealed record's seal is then not
    checked: a resume with the key checks them all)."""
    at = snapshot.lines if snapshot is not None else 0
    try:
        raw = read_file(path, what="run's journal", follow=False)
    except FileNotFoundError:
        if at:
            raise JournalError(f"{path} is missing; the record holds {at} lines of it") from None
        raw = b""
    position = start(run_id, started_at, key)
    end = raw.rfind(b"\n") + 1  # a last line without its newline: a write cut short, dropped
    events = []
    for number, text in enumerate(raw[:end].decode("utf-8", "replace").split("\n")[:-1], 1):
        where = f"{path}:{number}"
        found = _MAC.search(text)
        if found is None or not text.startswith(f'{{"n": {number}, '):
            raise JournalError(
                f"{where}: not the journal line {number} of a run (edited, reordered or cut)"
            )
        scheme, mac = found.group(1), f"{found.group(1)}:{found.group(2)}"
        body = text[: found.start()]
        if key is not None and scheme != "hmac-sha256":
            raise JournalError(f"{where}: the line has no MAC by $RUNNER_RECORD_KEY (unsealed)")
        if (key is not None or scheme == "sha256") and not hmac.compare_digest(
            mac, _chain(key if scheme != "sha256" else None, position.mac, body)
        ):
            raise JournalError(
                f"{where}: the line does not verify (edited, removed, reordered, or taken "
                "from another run's journal)"
            )
        position = Position(number, mac, position.size + len(text.encode("utf-8")) + 1)
        if snapshot is not None and number == at and mac != snapshot.mac:
            raise JournalError(
                f"{where}: the journal is not the one the record was saved with (the record "
                "says another line ends there)"
            )
        if number <= at:
            continue
        try:
            # JSON from outside (the chain without the key is anyone's): nesting bounded
            events.append((where, loads(text, what="the line")))
        except InputLimitError as exc:
            raise JournalError(f"{where}: {exc}") from None
        except ValueError:
            raise JournalError(f"{where}: not JSON") from None
    if position.lines < at:
        raise JournalError(
            f"{path}: {position.lines} lines, but the record holds {at} (lines were removed)"
        )
    return events, position


def _apply(data: dict[str, Any], event: Any, where: str) -> None:
    changed = event.get("set", {}) if isinstance(event, dict) else None
    steps = event.get("steps", {}) if isinstance(event, dict) else None
    if not isinstance(changed, dict) or not isinstance(steps, dict):
        raise JournalError(f"{where}: not a change of the record")
    for name, value in changed.items():
        if name in ("steps", "journal", "version"):
            raise JournalError(f"{where}: sets `{name}`, which no change sets")
        data[name] = value
    have = data.get("steps")
    if not isinstance(have, list):
        raise JournalError(f"{where}: the record has no steps to change")
    for index, step in steps.items():
        at = int(index) if isinstance(index, str) and index.isdigit() else -1
        if not 0 <= at < len(have) or not isinstance(step, dict):
            raise JournalError(f"{where}: changes a step the record does not have")
        if not isinstance(have[at], Mapping) or step.get("id") != have[at].get("id"):
            raise JournalError(f"{where}: changes step {at} into another step")
        have[at] = step


def lines_after(handle: int, size: int) -> bool:
    """Whether the open journal ``handle`` holds a whole line after its first ``size`` bytes
    (what a torn last line, cut short by a crash, never is)."""
    at = size
    while chunk := os.pread(handle, 1 << 20, at):
        if b"\n" in chunk:
            return True
        at += len(chunk)
    return False


def append(path: Path, data: bytes, size: int, *, durable: bool) -> None:
    """Append one line with one ``write``: a kill leaves it whole or absent. With ``durable``
    it is fsynced (a crash of the machine then keeps it; without, at worst a torn last line,
    which readers drop). A torn line left by an earlier process (the file longer than
    ``size``) is cut off first, so that lines stay lines."""
    try:
        # never through a link: a journal replaced by one in a state folder that travelled as
        # a CI artifact had its target cut and written over (attack pass)
        handle, status = open_regular(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    except NotTheRunnersFile as exc:
        raise JournalError(f"{path}: {exc.what}, not the journal the runner wrote") from None
    try:
        have = status.st_size
        if have < size:
            raise JournalError(f"{path}: shorter than this process wrote it (cut by someone)")
        if have > size:
            if lines_after(handle, size):
                # whole lines another process wrote: never cut off what was recorded
                raise JournalError(f"{path}: lines were appended by another process")
            os.ftruncate(handle, size)
        write_all(handle, data)
        if durable:
            os.fsync(handle)
    finally:
        os.close(handle)
    if durable and not size:  # a new file: its name must survive a crash too
        sync_folder(path.parent)
