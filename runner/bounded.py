"""JSON from untrusted sources, with its nesting bounded before the parser sees it.

Every JSON document the runner or the approval server reads from outside (run records, lock
files, approval bodies, the server's answers, request bodies) goes through :func:`loads` or
:func:`check_depth`. Python's ``json`` itself stops at the interpreter's recursion limit with a
``RecursionError``, an exception no caller expects (a resumed run exited 70 on a deep
``record.json``, issue #17), and a value nested a thousand levels deep would still break the code
that walks it next (encoders, FastAPI's serialiser, ``copy.deepcopy``). So the depth is counted
first, on the text, and a deeper document is an :class:`~runner.errors.InputLimitError` (a
``ValueError``, which every reader already turns into its own refusal) naming the line and column.

YAML has the same rule in :mod:`runner.load.yaml` (its own pre-scan, since YAML nesting also
comes from indentation).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from itertools import accumulate
from typing import Any

from runner.characters import HALF_ESCAPE, encodable
from runner.errors import InputLimitError

#: the deepest JSON the runner reads: a run record is about 6 levels deep, an approval body 3
MAX_JSON_DEPTH = 64

_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def check_depth(text: str, *, what: str = "JSON document", limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`InputLimitError` if ``text`` nests arrays and objects deeper than ``limit``.

    Linear and in C but for one pass over the brackets: a document with few brackets is passed
    at once; otherwise escaped backslashes and quotes are dropped, the text is split at its
    quotes (every other piece is a string: exact for any text the parser would accept), the
    brackets outside strings are summed, and only a refusal walks the text again to say where.
    It costs about as much again as ``json.loads`` (a 1.4 MB record: 10-20 ms)."""
    if text.count("[") + text.count("{") <= limit:
        return
    plain = text.replace("\\\\", "").replace('\\"', "") if "\\" in text else text
    brackets = _NOT_BRACKET.sub("", "".join(plain.split('"')[::2]))
    if max(accumulate(map(_STEP.__getitem__, map(ord, brackets))), default=0) <= limit:
        return
    depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                raise InputLimitError(
                    f"{what} is nested more than {limit} levels deep (line {line}, column "
                    f"{column})",
                    line=line,
                    column=column,
                )
        elif token in "]}":
            depth -= 1
    # Unbalanced text that only looked deep: the parser will refuse it on its own terms.


def loads(raw: str | bytes, *, what: str = "JSON document", **options: Any) -> Any:
    """``json.loads`` with the depth checked first; ``InputLimitError`` or ``ValueError``."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    check_depth(text, what=what)
    try:
        value = json.loads(text, **options)
    except RecursionError:  # unreachable after check_depth; kept so no caller ever sees one
        raise InputLimitError(f"{what} is nested too deeply") from None
    if HALF_ESCAPE.search(text) and holds_half_character(value):
        # no file, log or record can be written with one (resuming such a record was an
        # internal error): what the runner or a person wrote never holds one
        raise ValueError(f"{what} holds half of a character (a lone \\ud800-\\udfff escape)")
    return value


def holds_half_character(value: Any) -> bool:
    """Whether a parsed JSON value holds a string with half of a UTF-16 pair (from an escape:
    UTF-8 text cannot hold one), which no file or log can take."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not encodable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


#: the largest run record file (``record.json``, ``events.jsonl``) the runner reads: the approval
#: server keeps copies of 4 MiB at most, and a run of 5,000 steps writes about 4 MB of journal
MAX_RECORD_FILE_BYTES = 64 * 1024 * 1024


class NotTheRunnersFile(Exception):
    """What :func:`open_regular` found at a path instead of a regular file: a symbolic link
    (``link``), or something else; ``what`` says which (each caller says whose file it
    expected)."""

    def __init__(self, *, link: bool) -> None:
        self.link = link
        self.what = "a symbolic link" if link else "not a regular file"
        super().__init__(self.what)


def open_regular(
    path: str | os.PathLike[str], flags: int, mode: int = 0o600, *, follow: bool = False
) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file ``path`` (``flags`` as for ``os.open``) and its
    status. Not through a symbolic link unless ``follow``, and never a FIFO, a device or a
    folder: the state folder travels as a CI artifact and a step's files are the step's to
    replace, and a link or a FIFO put there was written through, locked or read for ever
    (:class:`NotTheRunnersFile`). Other failures are ``OSError``, as for ``os.open``."""
    flags |= os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        handle = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise NotTheRunnersFile(link=True) from None
        raise
    try:
        status = os.fstat(handle)
        if not stat.S_ISREG(status.st_mode):
            raise NotTheRunnersFile(link=False)
    except BaseException:
        os.close(handle)
        raise
    return handle, status


def read_file(
    path: str | os.PathLike[str],
    *,
    what: str,
    limit: int = MAX_RECORD_FILE_BYTES,
    follow: bool = True,
) -> bytes:
    """The bytes of the regular file ``path``, which the runner wrote and someone may have
    replaced (the state folder travels as a CI artifact): :class:`InputLimitError` past
    ``limit`` bytes (a 64 GB journal was read whole: a ``MemoryError``, or the machine's memory)
    or when it is not a regular file (a FIFO would block the reader for ever). A missing file is
    ``FileNotFoundError``, as for ``Path.read_bytes``. Without ``follow``, a symbolic link is
    refused too: the runner never writes one in its state folder."""
    try:
        handle, status = open_regular(path, os.O_RDONLY | os.O_NONBLOCK, follow=follow)
    except NotTheRunnersFile as exc:
        if exc.link:
            raise InputLimitError(
                f"{path}: the {what} is a symbolic link, not the file the runner wrote"
            ) from None
        raise InputLimitError(f"{path}: the {what} is {exc.what}") from None
    try:
        if status.st_size > limit:
            raise InputLimitError(_too_large(path, what, status.st_size, limit))
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(handle, min(1 << 20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while read
            raise InputLimitError(_too_large(path, what, size, limit))
        return b"".join(chunks)
    finally:
        os.close(handle)


def _too_large(path: str | os.PathLike[str], what: str, size: int, limit: int) -> str:
    return (
        f"{path}: the {what} is {size:,} bytes, more than the {limit // (1024 * 1024)} MiB the "
        "runner reads"
    )


#: the largest JSON file named on the command line (``approval new --request``, ``approval
#: verify --request``, ``expr --context``): a request file is a few KiB
MAX_ARGUMENT_FILE_BYTES = 8 * 1024 * 1024


def read_prefix(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the file ``path``, whatever kind of file it is: more than
    ``limit`` bytes means it is too large. A file a command reads may be a link to ``/dev/zero``
    or to a file of 60 GB (one in the deployed commit, or a request file from the waiting run):
    read whole, it ended in ``MemoryError`` (exit 70) or the machine's memory. A pipe the user
    gives (``<(...)``) is read as any file."""
    with open(path, "rb") as handle:
        return handle.read(limit + 1)  # a buffered read: until that many bytes, or the end


def read_argument_file(
    path: str | os.PathLike[str], *, what: str, limit: int = MAX_ARGUMENT_FILE_BYTES
) -> str:
    """The UTF-8 text of a file named on the command line, of at most ``limit`` bytes
    (:class:`InputLimitError` past it: a ``ValueError``, as a decoding error is)."""
    raw = read_prefix(path, limit)
    if len(raw) > limit:
        raise InputLimitError(
            f"the {what} is more than the {limit // (1024 * 1024)} MiB the runner reads"
        )
    return raw.decode("utf-8")
