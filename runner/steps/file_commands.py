"""Parsers for the files a step writes to talk back to the runner.

GitHub's runner hands every step the paths of a few empty files (``GITHUB_OUTPUT``,
``GITHUB_ENV``, ``GITHUB_STATE``, ``GITHUB_PATH``) and reads them after the step
(``src/Runner.Worker/FileCommandManager.cs``). This module parses their text the same way;
reading the files, and applying what they say, is the caller's job.

* ``GITHUB_OUTPUT``, ``GITHUB_ENV``, ``GITHUB_STATE``: :func:`parse_key_values`, GitHub's
  ``EnvFileKeyValuePairs`` format (``NAME=value`` and ``NAME<<DELIMITER`` heredocs).
  ``GITHUB_ENV`` adds :func:`parse_env_file`, which also drops names GitHub refuses.
* ``GITHUB_PATH``: :func:`parse_path_file` and :func:`prepend_path`.
* Octopus output variables: :data:`OCTOPUS_BASH_FUNCTIONS` defines
  ``set_octopusvariable NAME VALUE [-sensitive]`` for bash scripts (which load it at its first
  call, :func:`octopus_stub`); it appends one line per
  call to the file named by ``$RUNNER_OCTOPUS_VARIABLES``, which
  :func:`parse_octopus_variables` reads back. Name and value are base64-encoded, so any
  value (newlines, quotes, a line that looks like a delimiter) round-trips exactly.

Nothing here needs randomness: heredoc delimiters are chosen by the writer, never by us.
"""

from __future__ import annotations

import base64
import binascii
import functools
import shlex
from collections.abc import Iterable, Iterator, Sequence

from msgspec import Struct

from runner.errors import Location, StepError

__all__ = [
    "ENV_BLOCKLIST",
    "OCTOPUS_BASH_FUNCTIONS",
    "OCTOPUS_VARIABLES_ENV",
    "EnvFile",
    "OctopusVariable",
    "blocked_env_message",
    "format_octopus_variable",
    "octopus_stub",
    "parse_env_file",
    "parse_key_values",
    "parse_octopus_variables",
    "parse_path_file",
    "prepend_path",
]

# GitHub refuses NODE_OPTIONS through GITHUB_ENV (``SetEnvFileCommand._setEnvBlockList``):
# it would let one step inject code into every later JavaScript action. The comparison is
# case-insensitive there, and so it is here.
ENV_BLOCKLIST: frozenset[str] = frozenset({"NODE_OPTIONS"})

# The environment variable that names the file ``set_octopusvariable`` appends to.
OCTOPUS_VARIABLES_ENV = "RUNNER_OCTOPUS_VARIABLES"

_BOM = "\ufeff"


class _Line(Struct, frozen=True):
    """One line of a file command: its text without terminator, and where it is."""

    number: int  # 1-based
    text: str
    terminated: bool  # False only for a last line with no newline after it
    start: int  # offset of the line in the text
    end: int  # offset just past the line's text (before its terminator)


def _lines(text: str) -> Iterator[_Line]:
    """Split on LF or CRLF, remembering whether each line had a terminator.

    GitHub's ``ReadLine`` splits on LF only on Linux and macOS, so there ``NAME=value\\r\\n``
    gives a value ending in CR and a heredoc closed by ``EOF\\r`` is never closed. Files
    written by Windows tools (PowerShell's ``Out-File``, ``git`` with autocrlf) reach Linux
    runners too, so we accept CRLF everywhere, as GitHub's Windows runner does: one CR
    directly before the LF (or ending the text) belongs to the terminator, not to the line.
    """
    index = 0
    number = 0
    length = len(text)
    while index < length:
        number += 1
        lf = text.find("\n", index)
        if lf < 0:
            if text.endswith("\r"):
                # A CR ending the text is taken as a cut-off CRLF, not as content.
                yield _Line(number, text[index : length - 1], True, index, length - 1)
            else:
                yield _Line(number, text[index:], False, index, length)
            return
        end = lf - 1 if lf > index and text[lf - 1] == "\r" else lf
        yield _Line(number, text[index:end], True, index, end)
        index = lf + 1


def _error(message: str, source: str, line: int) -> StepError:
    return StepError(message, location=Location(source, line, 1))


def parse_key_values(text: str, *, source: str) -> list[tuple[str, str]]:
    """Parse a ``GITHUB_OUTPUT``/``GITHUB_ENV``/``GITHUB_STATE`` file into ``(name, value)``s.

    Mirrors GitHub's ``EnvFileKeyValuePairs``: empty lines are skipped; a line is
    ``NAME=value`` when its first ``=`` comes before any ``<<`` (the value may contain ``=``
    and ``<<``), else ``NAME<<DELIMITER`` when it has ``<<``; the heredoc value is every line
    up to the first line equal to ``DELIMITER``, newlines inside kept as written and the one
    before the delimiter dropped. Pairs come back in file order; a repeated name appears
    twice (later wins when applied).

    Raises :class:`~runner.errors.StepError` with GitHub's message and a location of
    ``source`` and the 1-based line (the heredoc's header line for a missing delimiter).
    Differences from GitHub, both deliberate: CRLF is a line terminator everywhere (see
    :func:`_lines`), and ``=value`` (an empty name) is refused; GitHub's check tests the
    whole line instead of the name, so it lets an empty name through.
    """
    if text.startswith(_BOM):
        # File.ReadAllText drops a UTF-8 byte order mark; Windows PowerShell 5 writes one.
        text = text[1:]
    pairs: list[tuple[str, str]] = []
    lines = _lines(text)
    for line in lines:
        content = line.text
        if not content:
            continue
        equals = content.find("=")
        heredoc = content.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            name, value = content[:equals], content[equals + 1 :]
            if not name:
                raise _error(
                    f"Invalid format '{content}'. Name must not be empty", source, line.number
                )
            pairs.append((name, value))
        elif heredoc >= 0:
            name, delimiter = content[:heredoc], content[heredoc + 2 :]
            if not name or not delimiter:
                raise _error(
                    f"Invalid format '{content}'. "
                    "Name must not be empty and delimiter must not be empty",
                    source,
                    line.number,
                )
            pairs.append((name, _heredoc_value(text, lines, line, delimiter, source)))
        else:
            raise _error(f"Invalid format '{content}'", source, line.number)
    return pairs


def _heredoc_value(
    text: str, lines: Iterator[_Line], header: _Line, delimiter: str, source: str
) -> str:
    """The text between ``header`` and the line equal to ``delimiter``, consuming ``lines``."""
    start: int | None = None
    end: int | None = None
    for line in lines:
        if line.text == delimiter:
            return text[start:end] if start is not None and end is not None else ""
        if not line.terminated:
            # GitHub: a last line that is not the delimiter and has no newline after it.
            raise _error("Invalid value. EOF marker missing new line.", source, line.number)
        if start is None:
            start = line.start
        end = line.end
    raise _error(
        f"Invalid value. Matching delimiter not found '{delimiter}'", source, header.number
    )


def blocked_env_message(name: str) -> str | None:
    """GitHub's error for a name ``GITHUB_ENV`` may not set, or ``None`` when it may."""
    for blocked in ENV_BLOCKLIST:
        if blocked.casefold() == name.casefold():
            return f"Can't store {blocked} output parameter using '$GITHUB_ENV' command."
    return None


class EnvFile(Struct, frozen=True):
    """A parsed ``GITHUB_ENV``: what to set, and the messages for what was refused.

    GitHub reports a refused name as an error annotation but neither fails the step nor
    drops the other entries; the caller should do the same with ``refused``.
    """

    entries: tuple[tuple[str, str], ...]
    refused: tuple[str, ...]


def parse_env_file(text: str, *, source: str = "GITHUB_ENV") -> EnvFile:
    """Parse a ``GITHUB_ENV`` file: :func:`parse_key_values` plus the environment's own rules.

    Beyond GitHub's blocklist (:data:`ENV_BLOCKLIST`) this refuses a name or value containing
    a NUL character, which no process environment can hold (``os.execve`` would fail the
    *next* step with a confusing error instead).
    """
    entries: list[tuple[str, str]] = []
    refused: list[str] = []
    for name, value in parse_key_values(text, source=source):
        message = blocked_env_message(name)
        if message is None and ("\0" in name or "\0" in value):
            message = f"Can't store '{name}' using '$GITHUB_ENV': it contains a NUL character."
        if message is None:
            entries.append((name, value))
        else:
            refused.append(message)
    return EnvFile(tuple(entries), tuple(refused))


def parse_path_file(text: str) -> list[str]:
    """The directories in a ``GITHUB_PATH`` file: each non-empty line, in file order.

    GitHub reads it with ``File.ReadAllLines`` (lines end at CR, LF or CRLF) and skips only
    empty lines; other whitespace is kept, as it may be part of a directory name.
    """
    if text.startswith(_BOM):
        text = text[1:]
    return [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line]


def prepend_path(current: Sequence[str], added: Iterable[str]) -> list[str]:
    """Add directories to a prepend-path list, as GitHub's ``PrependPath`` does.

    Each added directory first leaves the list (exact, case-sensitive match) and is then
    appended, so the list holds each directory once, most recently added last. A step's
    ``PATH`` is the list *reversed* followed by the original ``PATH``: the directory added
    last is searched first.
    """
    result = list(current)
    for directory in added:
        result = [item for item in result if item != directory]
        result.append(directory)
    return result


# --- Octopus output variables ------------------------------------------------------------

# A POSIX sh function (bash, dash, ash, zsh: its globals are prefixed `_octo_` rather than
# relying on `local`), in the spirit of Octopus's `set_octopusvariable "name" "value"
# -sensitive`. One line per call:
#     base64(name) SP base64(value) SP (plain|sensitive) LF
# Base64 never contains a space or a newline, so any value round-trips; `tr` strips the line
# wrapping GNU base64 adds. Octopus ignores an unknown third argument; we refuse it, as a
# typo such as `-sensitve` would otherwise publish a secret as a plain variable. xtrace is
# switched off inside the function so `set -x` does not print the value a second time.
OCTOPUS_BASH_FUNCTIONS = r"""set_octopusvariable() {
  case $- in *x*) set +x; _octo_xtrace=1 ;; *) _octo_xtrace= ;; esac
  if [ "$#" -lt 2 ] || [ "$#" -gt 3 ] || [ -z "$1" ]; then
    echo "usage: set_octopusvariable NAME VALUE [-sensitive]" >&2
    [ -n "$_octo_xtrace" ] && set -x
    return 2
  fi
  _octo_flag=plain
  if [ "$#" -eq 3 ]; then
    if [ "$3" = "-sensitive" ]; then
      _octo_flag=sensitive
    else
      echo "set_octopusvariable: unknown option '$3' (expected -sensitive)" >&2
      [ -n "$_octo_xtrace" ] && set -x
      return 2
    fi
  fi
  if [ -z "${RUNNER_OCTOPUS_VARIABLES:-}" ]; then
    echo "set_octopusvariable: RUNNER_OCTOPUS_VARIABLES is not set" >&2
    [ -n "$_octo_xtrace" ] && set -x
    return 1
  fi
  if ! command -v base64 >/dev/null 2>&1; then
    echo "set_octopusvariable: the base64 command is not available" >&2
    [ -n "$_octo_xtrace" ] && set -x
    return 127
  fi
  printf '%s %s %s\n' \
    "$(printf '%s' "$1" | base64 | tr -d '\r\n')" \
    "$(printf '%s' "$2" | base64 | tr -d '\r\n')" \
    "$_octo_flag" >> "$RUNNER_OCTOPUS_VARIABLES" || { [ -n "$_octo_xtrace" ] && set -x; return 1; }
  [ -n "$_octo_xtrace" ] && set -x
  return 0
}
"""


@functools.lru_cache(maxsize=8)
def octopus_stub(functions: str) -> str:
    """The line a bash script starts with instead of :data:`OCTOPUS_BASH_FUNCTIONS`: a function
    that, at its first call, reads the real one from the file ``functions`` (which holds it) and
    calls it. Bash parses every line of a script it starts, and parsing the whole function cost
    each step about 0.15 ms (bench/README.md, ``step_cost.py``) for a function most steps never
    call; one line also keeps bash's error line numbers one off the step's own, not 35.

    Under ``set -x`` it traces what the function itself does (the call, then ``set +x``): it
    switches xtrace off before it reads the file and calls the function, so the arguments, a
    ``-sensitive`` value among them, are not printed a second time. It removes itself first, so
    that a file that does not define the function ends in "command not found" rather than the
    stub calling itself."""
    return (
        "set_octopusvariable() { "
        "case $- in *x*) set +x; _octo_stub_x=1 ;; *) _octo_stub_x= ;; esac; "
        "unset -f set_octopusvariable; "
        # in an `||` list, so that `set -e` ends the script at the call, as for the function
        f'_octo_stub_status=0; . {shlex.quote(functions)} && set_octopusvariable "$@" '
        "|| _octo_stub_status=$?; "
        '[ -n "$_octo_stub_x" ] && set -x; return "$_octo_stub_status"; }\n'
    )


class OctopusVariable(Struct, frozen=True):
    """An output variable a step set with ``set_octopusvariable``."""

    name: str
    value: str
    sensitive: bool = False


_FLAGS = {"plain": False, "sensitive": True}


def format_octopus_variable(name: str, value: str, *, sensitive: bool = False) -> str:
    """One line of the ``$RUNNER_OCTOPUS_VARIABLES`` file, as the bash function writes it."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    return f"{b64(name)} {b64(value)} {'sensitive' if sensitive else 'plain'}\n"


def parse_octopus_variables(
    text: str, *, source: str = OCTOPUS_VARIABLES_ENV
) -> list[OctopusVariable]:
    """Read back the ``$RUNNER_OCTOPUS_VARIABLES`` file, in the order the variables were set.

    Empty lines are skipped; any other line must be exactly ``NAME64 VALUE64 FLAG``. A bad
    line raises :class:`~runner.errors.StepError` located at ``source`` and its line number;
    the message never quotes the line, as it may hold a sensitive value.
    """
    variables: list[OctopusVariable] = []
    for line in _lines(text):
        if not line.text:
            continue
        fields = line.text.split(" ")
        if len(fields) != 3 or fields[2] not in _FLAGS:
            raise _error(
                "Invalid Octopus variable record: expected 'NAME VALUE FLAG' with base64 "
                "NAME and VALUE and FLAG 'plain' or 'sensitive'",
                source,
                line.number,
            )
        name = _decode(fields[0], "name", source, line.number)
        if not name:
            raise _error("Invalid Octopus variable record: the name is empty", source, line.number)
        value = _decode(fields[1], "value", source, line.number)
        variables.append(OctopusVariable(name, value, _FLAGS[fields[2]]))
    return variables


def _decode(field: str, what: str, source: str, line: int) -> str:
    try:
        return base64.b64decode(field, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        # UnicodeDecodeError is a ValueError: a value must be UTF-8 text to be a variable.
        raise _error(
            f"Invalid Octopus variable record: the {what} is not base64-encoded UTF-8 text",
            source,
            line,
        ) from None
