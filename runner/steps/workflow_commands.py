"""GitHub workflow commands: ``::name key=value,key=value::data`` lines in a step's output.

Parsing mirrors GitHub's runner (``ActionCommand.TryParseV2`` in
``src/Runner.Common/ActionCommand.cs``; ``ActionCommandManager.TryProcessCommand`` for the
``stop-commands`` state):

* Leading whitespace is ignored; the line must then start with ``::`` and have a second
  ``::``. Between them: the command name, then optionally a space and ``,``-separated
  ``key=value`` properties; after it: the data (which may itself contain ``::``).
* The name must be a registered command (case-insensitive); anything else, such as
  ``::not-a-command::x`` or a C++ ``std::string``, is plain output.
* Properties: empty items and items without a key or a value are skipped; keys are
  case-insensitive (stored lower-cased here); a repeated key keeps its last value.
* Escapes: data uses ``%25`` ``%0D`` ``%0A``; properties add ``%3A`` (``:``) and ``%2C``
  (``,``). Unknown ``%XX`` sequences stay as written, and matching is case-sensitive.

Not mirrored: the legacy ``##[name key=value;]data`` syntax, which GitHub still accepts but
nothing has written for years, and the ``internal-set-repo-path`` plugin command.

The runner should parse a line *before* masking it (GitHub does: commands see the raw
line, and only the output written to the log is masked), never echo ``add-mask`` lines
(their data is the secret), and write plain text through the masker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum

from msgspec import Struct

__all__ = [
    "ADD_MASK_EMPTY_WARNING",
    "Annotation",
    "Command",
    "CommandKind",
    "CommandProcessor",
    "Refused",
    "deprecation_message",
    "disabled_message",
    "escape_data",
    "escape_property",
    "format_command",
    "parse_command",
    "unescape_data",
    "unescape_property",
]


class CommandKind(StrEnum):
    """The commands GitHub's runner registers, by their (lower-case) names."""

    ADD_MASK = "add-mask"
    ADD_MATCHER = "add-matcher"
    ADD_PATH = "add-path"  # disabled unless ACTIONS_ALLOW_UNSECURE_COMMANDS
    DEBUG = "debug"
    ECHO = "echo"
    END_GROUP = "endgroup"
    ERROR = "error"
    GROUP = "group"
    NOTICE = "notice"
    REMOVE_MATCHER = "remove-matcher"
    SAVE_STATE = "save-state"  # deprecated: GITHUB_STATE
    SET_ENV = "set-env"  # disabled unless ACTIONS_ALLOW_UNSECURE_COMMANDS
    SET_OUTPUT = "set-output"  # deprecated: GITHUB_OUTPUT
    STOP_COMMANDS = "stop-commands"
    WARNING = "warning"
    # Not a registered name: the ``::TOKEN::`` line that ends a ``stop-commands`` pause.
    # Only :class:`CommandProcessor` produces it; its ``data`` is the token.
    RESUME_COMMANDS = "resume-commands"


_REGISTERED = {kind.value: kind for kind in CommandKind if kind is not CommandKind.RESUME_COMMANDS}

# Commands whose raw line GitHub never echoes to the log (``OmitEcho``): add-mask's data is
# a secret, and the others are rendered as a debug line or an annotation instead.
_OMIT_ECHO = frozenset(
    {
        CommandKind.ADD_MASK,
        CommandKind.DEBUG,
        CommandKind.ERROR,
        CommandKind.WARNING,
        CommandKind.NOTICE,
    }
)

ADD_MASK_EMPTY_WARNING = "Can't add secret mask for empty string in ##[add-mask] command."

_DEPRECATED = "https://github.blog/changelog/2022-10-11-github-actions-deprecating-save-state-and-set-output-commands/"
_DISABLED = "https://github.blog/changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/"
_STOP_TOKEN_DOCS = (
    "https://docs.github.com/actions/learn-github-actions/"
    "workflow-commands-for-github-actions#example-stopping-and-starting-workflow-commands"
)


def deprecation_message(kind: CommandKind) -> str | None:
    """GitHub's warning for ``set-output`` and ``save-state`` (``UnsupportedCommandMessage``).

    GitHub still applies both, with this warning; the files ``GITHUB_OUTPUT`` and
    ``GITHUB_STATE`` replace them. ``None`` for every other command.
    """
    if kind in (CommandKind.SET_OUTPUT, CommandKind.SAVE_STATE):
        return (
            f"The `{kind.value}` command is deprecated and will be disabled soon. Please "
            f"upgrade to using Environment Files. For more information see: {_DEPRECATED}"
        )
    return None


def disabled_message(kind: CommandKind) -> str | None:
    """GitHub's error for ``set-env`` and ``add-path`` (``UnsupportedCommandMessageDisabled``)."""
    if kind in (CommandKind.SET_ENV, CommandKind.ADD_PATH):
        return (
            f"The `{kind.value}` command is disabled. Please upgrade to using Environment "
            "Files or opt into unsecure command execution by setting the "
            "`ACTIONS_ALLOW_UNSECURE_COMMANDS` environment variable to `true`. "
            f"For more information see: {_DISABLED}"
        )
    return None


_STOP_TOKEN_REFUSED = (
    "You cannot use a endToken that is an empty string, the string 'pause-logging', or "
    f"another workflow command. For more information see: {_STOP_TOKEN_DOCS} or opt into "
    "insecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_STOPCOMMAND_TOKENS` "
    "environment variable to `true`."
)

# --- escaping -----------------------------------------------------------------------------

# Escaping order matters: `%` first, so the escapes it produces are not escaped again.
_DATA_ESCAPES = (("%", "%25"), ("\r", "%0D"), ("\n", "%0A"))
_PROPERTY_ESCAPES = (*_DATA_ESCAPES, (":", "%3A"), (",", "%2C"))
_DATA_UNESCAPE = re.compile("%25|%0D|%0A")
_PROPERTY_UNESCAPE = re.compile("%25|%0D|%0A|%3A|%2C")
_UNESCAPES = {"%25": "%", "%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ","}


def escape_data(value: str) -> str:
    """Escape command data as ``@actions/core`` does (``%``, CR, LF)."""
    for token, replacement in _DATA_ESCAPES:
        value = value.replace(token, replacement)
    return value


def escape_property(value: str) -> str:
    """Escape a property value as ``@actions/core`` does (``%``, CR, LF, ``:``, ``,``)."""
    for token, replacement in _PROPERTY_ESCAPES:
        value = value.replace(token, replacement)
    return value


def unescape_data(value: str) -> str:
    """Undo :func:`escape_data`.

    GitHub replaces ``%0D``, ``%0A`` and then ``%25`` one after the other; as no replacement
    produces a ``%``, that equals this single left-to-right pass.
    """
    return _DATA_UNESCAPE.sub(lambda m: _UNESCAPES[m.group()], value)


def unescape_property(value: str) -> str:
    """Undo :func:`escape_property` (see :func:`unescape_data`)."""
    return _PROPERTY_UNESCAPE.sub(lambda m: _UNESCAPES[m.group()], value)


def format_command(name: str, data: str = "", properties: Mapping[str, str] | None = None) -> str:
    """A workflow command line (no newline), for the runner's own output inside Actions.

    >>> format_command("error", "bad: 100%", {"file": "a.py", "line": "3"})
    '::error file=a.py,line=3::bad: 100%25'
    """
    props = ",".join(f"{key}={escape_property(value)}" for key, value in (properties or {}).items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(data)}"


# --- records ------------------------------------------------------------------------------


class Annotation(Struct, frozen=True):
    """An ``error``/``warning``/``notice`` command as GitHub turns it into an annotation.

    Positions follow GitHub's ``IssueCommandExtension.ValidateLinesAndColumns``: a lone
    ``endLine`` or ``endColumn`` stands in for the missing start; columns need a line and
    are dropped when the annotation spans lines; an end before its start drops the pair.
    """

    level: str  # "error", "warning" or "notice"
    message: str
    title: str | None = None
    file: str | None = None
    line: int | None = None
    end_line: int | None = None
    column: int | None = None
    end_column: int | None = None


class Command(Struct, frozen=True):
    """One parsed workflow command."""

    kind: CommandKind
    data: str
    # Lower-cased keys, in first-seen order, each with its last value.
    properties: tuple[tuple[str, str], ...] = ()
    raw: str = ""  # the line as received (without its line terminator)

    def get(self, key: str) -> str | None:
        """A property by name, case-insensitively (GitHub's ``OrdinalIgnoreCase``)."""
        wanted = key.lower()
        for name, value in self.properties:
            if name == wanted:
                return value
        return None

    @property
    def name(self) -> str:
        """The command's name, as GitHub spells it (``add-mask``, ``endgroup``, ...)."""
        return self.kind.value

    @property
    def omit_echo(self) -> bool:
        """Whether the raw line must never be echoed to the log (``OmitEcho`` in GitHub)."""
        return self.kind in _OMIT_ECHO

    @property
    def deprecation(self) -> str | None:
        """GitHub's deprecation warning for this command, if it has one."""
        return deprecation_message(self.kind)

    def annotation(self) -> Annotation | None:
        """The annotation an ``error``, ``warning`` or ``notice`` command makes, else ``None``."""
        if self.kind not in (CommandKind.ERROR, CommandKind.WARNING, CommandKind.NOTICE):
            return None
        line, end_line = _int(self.get("line")), _int(self.get("endLine"))
        column, end_column = _int(self.get("col")), _int(self.get("endColumn"))
        if end_line is not None and line is None:
            line = end_line
        if end_column is not None and column is None:
            column = end_column
        if line is None or (end_line is not None and end_line != line):
            column = end_column = None
        if line is not None and end_line is not None and end_line < line:
            line = end_line = None
        if column is not None and end_column is not None and end_column < column:
            column = end_column = None
        return Annotation(
            level=self.kind.value,
            message=self.data,
            title=self.get("title") or None,
            file=self.get("file") or None,
            line=line,
            end_line=end_line,
            column=column,
            end_column=end_column,
        )


def _int(value: str | None) -> int | None:
    # int.TryParse: optional sign and surrounding whitespace, decimal digits only.
    if value is None:
        return None
    text = value.strip()
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else None


class Refused(Struct, frozen=True):
    """A command GitHub refuses: the step fails with ``message`` (GitHub logs it as an error)."""

    command: Command
    message: str


_TERMINATOR = re.compile(r"\r?\n\Z|\r\Z")


def _split(line: str) -> tuple[str, str | None, str] | None:
    """``(name, properties or None, data)`` of a ``::`` command line, unescaped not yet."""
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    space = info.find(" ")
    if space < 0:
        return info, None, message[end + 2 :]
    return info[:space], info[space + 1 :], message[end + 2 :]


def parse_command(line: str) -> Command | None:
    """Parse one output line as a workflow command; ``None`` when it is plain output.

    A trailing LF, CRLF or CR is ignored (GitHub reads output with ``ReadLine``).
    """
    line = _TERMINATOR.sub("", line)
    parts = _split(line)
    if parts is None:
        return None
    name, props, data = parts
    kind = _REGISTERED.get(name.lower())
    if kind is None:
        return None
    properties: dict[str, str] = {}
    # GitHub: only when the space is not the first character (`spaceIndex > 0`).
    if props is not None and name:
        for item in props.strip().split(","):
            key, _, value = item.partition("=")
            if key and value:
                properties[key.lower()] = unescape_property(value)
    return Command(kind, unescape_data(data), tuple(properties.items()), line)


class CommandProcessor:
    """Turns a step's output lines into commands and plain text, honouring ``stop-commands``.

    ``::stop-commands::TOKEN`` pauses command processing: every line is then text until
    ``::TOKEN::`` (the token matched case-insensitively, data ignored), which is returned as
    a :attr:`CommandKind.RESUME_COMMANDS` command. Both lines are shown in the log by GitHub.
    As in current GitHub runners (``ValidateStopToken``), a token that is empty,
    ``pause-logging`` or a command name is refused (the step fails), unless
    ``allow_unsecure_stop_tokens`` (``ACTIONS_ALLOW_UNSECURE_STOPCOMMAND_TOKENS``), so that
    output cannot guess the token and resume processing. ``set-env`` and ``add-path`` are
    refused unless ``allow_unsecure_commands`` (``ACTIONS_ALLOW_UNSECURE_COMMANDS``).

    Everything else is returned for the runner to apply: ``add-mask`` (warn with
    :data:`ADD_MASK_EMPTY_WARNING` on blank data), groups, annotations, ``debug``, ``echo``,
    and ``set-output``/``save-state`` with their :attr:`Command.deprecation` warning.
    """

    def __init__(
        self, *, allow_unsecure_commands: bool = False, allow_unsecure_stop_tokens: bool = False
    ) -> None:
        self._allow_unsecure_commands = allow_unsecure_commands
        self._allow_unsecure_stop_tokens = allow_unsecure_stop_tokens
        self._stopped = False
        self._token: str | None = None

    @property
    def stopped(self) -> bool:
        """Whether command processing is paused by ``stop-commands``."""
        return self._stopped

    @property
    def stop_token(self) -> str | None:
        """The token that resumes processing, while paused."""
        return self._token if self._stopped else None

    def process(self, line: str) -> Command | Refused | str:
        """Classify one output line (with or without its line terminator).

        Plain output comes back as a ``str`` without its line terminator, to be masked and
        logged.
        """
        if self._stopped:
            return self._while_stopped(line)
        command = parse_command(line)
        if command is None:
            return _TERMINATOR.sub("", line)
        if command.kind is CommandKind.STOP_COMMANDS:
            token = command.data
            if not self._allow_unsecure_stop_tokens and _weak_token(token):
                return Refused(command, _STOP_TOKEN_REFUSED)
            self._stopped, self._token = True, token
            return command
        message = disabled_message(command.kind)
        if message is not None and not self._allow_unsecure_commands:
            return Refused(command, message)
        return command

    def _while_stopped(self, line: str) -> Command | str:
        text = _TERMINATOR.sub("", line)
        parts = _split(text)
        # GitHub never resumes on an empty token (only reachable with the opt-in above).
        if parts is not None and self._token and parts[0].lower() == self._token.lower():
            token = self._token
            self._stopped, self._token = False, None
            return Command(CommandKind.RESUME_COMMANDS, token, (), text)
        return text


def _weak_token(token: str) -> bool:
    lowered = token.lower()
    return not token or lowered == "pause-logging" or lowered in _REGISTERED
