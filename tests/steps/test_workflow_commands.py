from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.steps.workflow_commands import (
    ADD_MASK_EMPTY_WARNING,
    Annotation,
    Command,
    CommandKind,
    CommandProcessor,
    Refused,
    deprecation_message,
    disabled_message,
    escape_data,
    escape_property,
    format_command,
    parse_command,
    unescape_data,
    unescape_property,
)

K = CommandKind

PARSED = [
    ("::add-mask::s3cr3t", K.ADD_MASK, "s3cr3t", {}),
    ("::group::My title", K.GROUP, "My title", {}),
    ("::endgroup::", K.END_GROUP, "", {}),
    ("::debug::details", K.DEBUG, "details", {}),
    ("::warning::careful", K.WARNING, "careful", {}),
    ("::notice title=Note::fyi", K.NOTICE, "fyi", {"title": "Note"}),
    (
        "::error file=app.js,line=1,col=5,title=Bad thing::Missing semicolon",
        K.ERROR,
        "Missing semicolon",
        {"file": "app.js", "line": "1", "col": "5", "title": "Bad thing"},
    ),
    ("::set-output name=result::42", K.SET_OUTPUT, "42", {"name": "result"}),
    ("::save-state name=pid::1234", K.SAVE_STATE, "1234", {"name": "pid"}),
    ("::set-env name=A::1", K.SET_ENV, "1", {"name": "A"}),
    ("::add-path::/opt/bin", K.ADD_PATH, "/opt/bin", {}),
    ("::stop-commands::tok", K.STOP_COMMANDS, "tok", {}),
    ("::echo::on", K.ECHO, "on", {}),
    ("::add-matcher::.github/m.json", K.ADD_MATCHER, ".github/m.json", {}),
    ("::remove-matcher owner=eslint::", K.REMOVE_MATCHER, "", {"owner": "eslint"}),
    # GitHub's parsing details
    ("   \t::debug::leading whitespace is ignored", K.DEBUG, "leading whitespace is ignored", {}),
    ("::ERROR::names are case-insensitive", K.ERROR, "names are case-insensitive", {}),
    ("::error::data may contain :: too", K.ERROR, "data may contain :: too", {}),
    ("::error::line terminator dropped\r\n", K.ERROR, "line terminator dropped", {}),
    ("::error::trailing spaces kept  ", K.ERROR, "trailing spaces kept  ", {}),
    ("::error ::empty property list", K.ERROR, "empty property list", {}),
    ("::error::100%25 done%0D%0Anext", K.ERROR, "100% done\r\nnext", {}),
    ("::error::%3A and %2C stay in data", K.ERROR, "%3A and %2C stay in data", {}),
    ("::error::%0a is case-sensitive", K.ERROR, "%0a is case-sensitive", {}),
    ("::error::%250A is a literal", K.ERROR, "%0A is a literal", {}),
    ("::error title=a%3Ab%2Cc%25%0A::x", K.ERROR, "x", {"title": "a:b,c%\n"}),
    ("::error File=a.js,FILE=b.js::x", K.ERROR, "x", {"file": "b.js"}),
    (
        "::error file=a.js,,line=2, col=3::x",
        K.ERROR,
        "x",
        {"file": "a.js", "line": "2", " col": "3"},
    ),
    ("::error file=,=3,flag::x", K.ERROR, "x", {}),
    ("::error title=a=b::x", K.ERROR, "x", {"title": "a=b"}),
    ("::error   title=spaced  ::x", K.ERROR, "x", {"title": "spaced"}),
]


@pytest.mark.parametrize(("line", "kind", "data", "properties"), PARSED, ids=[p[0] for p in PARSED])
def test_parse_command(line: str, kind: CommandKind, data: str, properties: dict[str, str]) -> None:
    command = parse_command(line)
    assert command is not None
    assert (command.kind, command.data, dict(command.properties)) == (kind, data, properties)
    assert command.name == kind.value
    assert command.raw == line.rstrip("\r\n")


@pytest.mark.parametrize(
    "line",
    [
        "",
        "plain output",
        "::",
        "::error",
        "::error no closing",
        ":: error::space before the name",
        "::::empty name",
        "::unknown-command::x",
        "::resume-commands::x",
        "::error%::x",
        "std::string s = x::y;",
        "x ::error::must start the line",
        "##[error]legacy syntax is not supported",
        "##[group]title",
    ],
)
def test_not_a_command(line: str) -> None:
    assert parse_command(line) is None


def test_property_lookup_is_case_insensitive() -> None:
    command = parse_command("::error endLine=4,endColumn=2::x")
    assert command is not None
    assert command.get("endLine") == "4"
    assert command.get("ENDCOLUMN") == "2"
    assert command.get("missing") is None


# --- escaping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "data", "prop"),
    [
        ("plain", "plain", "plain"),
        ("100%", "100%25", "100%25"),
        ("a\r\nb", "a%0D%0Ab", "a%0D%0Ab"),
        ("k: v, w", "k: v, w", "k%3A v%2C w"),
        ("%0A", "%250A", "%250A"),
        ("", "", ""),
    ],
)
def test_escaping(value: str, data: str, prop: str) -> None:
    assert escape_data(value) == data
    assert escape_property(value) == prop
    assert unescape_data(data) == value
    assert unescape_property(prop) == value


@given(st.text())
def test_escape_round_trips(value: str) -> None:
    assert unescape_data(escape_data(value)) == value
    assert unescape_property(escape_property(value)) == value
    assert "\n" not in escape_data(value) and "\r" not in escape_data(value)
    assert not {":", ",", "\n", "\r"} & set(escape_property(value))


@given(data=st.text(), title=st.text(), file=st.text())
def test_format_then_parse_round_trips(data: str, title: str, file: str) -> None:
    line = format_command("warning", data, {"title": title, "file": file})
    command = parse_command(line)
    assert command is not None
    assert command.data == data
    assert command.get("title") == (title or None)
    # GitHub trims the property list, so the last value loses trailing whitespace, except
    # CR and LF, which travel escaped (%0D, %0A) and so are not whitespace when trimmed.
    expected = file
    while expected and expected[-1].isspace() and expected[-1] not in "\r\n":
        expected = expected[:-1]
    assert command.get("file") == (expected or None)


def test_format_command() -> None:
    assert format_command("group", "Deploy: web, api") == "::group::Deploy: web, api"
    assert format_command("endgroup") == "::endgroup::"
    assert (
        format_command("error", "bad: 100%\nsecond", {"file": "a,b.py", "title": "T: x"})
        == "::error file=a%2Cb.py,title=T%3A x::bad: 100%25%0Asecond"
    )


# --- messages ----------------------------------------------------------------------------


def test_github_messages() -> None:
    assert deprecation_message(K.SET_OUTPUT) == (
        "The `set-output` command is deprecated and will be disabled soon. Please upgrade to "
        "using Environment Files. For more information see: https://github.blog/changelog/"
        "2022-10-11-github-actions-deprecating-save-state-and-set-output-commands/"
    )
    assert deprecation_message(K.SAVE_STATE) is not None
    assert "`save-state`" in (deprecation_message(K.SAVE_STATE) or "")
    assert deprecation_message(K.ERROR) is None
    assert disabled_message(K.SET_ENV) == (
        "The `set-env` command is disabled. Please upgrade to using Environment Files or opt "
        "into unsecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_COMMANDS` "
        "environment variable to `true`. For more information see: https://github.blog/"
        "changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/"
    )
    assert disabled_message(K.GROUP) is None
    assert (
        ADD_MASK_EMPTY_WARNING == "Can't add secret mask for empty string in ##[add-mask] command."
    )
    command = parse_command("::set-output name=x::1")
    assert command is not None and command.deprecation == deprecation_message(K.SET_OUTPUT)


def test_omit_echo() -> None:
    omitted = {K.ADD_MASK, K.DEBUG, K.ERROR, K.WARNING, K.NOTICE}
    for kind in CommandKind:
        assert Command(kind, "").omit_echo is (kind in omitted)


# --- annotations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ("", {}),
        ("file=a.py,line=3,col=5,title=T", {"file": "a.py", "line": 3, "column": 5, "title": "T"}),
        ("line=3,endLine=5", {"line": 3, "end_line": 5}),
        ("endLine=4", {"line": 4, "end_line": 4}),
        ("line=2,endColumn=7", {"line": 2, "column": 7, "end_column": 7}),
        ("col=5", {}),
        ("line=1,endLine=3,col=2,endColumn=4", {"line": 1, "end_line": 3}),
        ("line=5,endLine=3", {}),
        ("line=1,col=5,endColumn=2", {"line": 1}),
        ("line=abc,col=x", {}),
        ("line= 7 ", {"line": 7}),
        ("file=,title=", {}),
    ],
)
def test_annotation(props: str, expected: dict[str, object]) -> None:
    command = parse_command(f"::error {props}::message")
    assert command is not None
    assert command.annotation() == Annotation("error", "message", **expected)  # type: ignore[arg-type]


def test_only_annotation_commands_annotate() -> None:
    notice = parse_command("::notice::n")
    group = parse_command("::group::g")
    assert notice is not None and group is not None
    assert notice.annotation() == Annotation("notice", "n")
    assert group.annotation() is None


# --- the processor -----------------------------------------------------------------------


def kinds(results: list[Command | Refused | str]) -> list[object]:
    return [
        r.kind if isinstance(r, Command) else type(r).__name__ if isinstance(r, Refused) else r
        for r in results
    ]


def test_stop_and_resume() -> None:
    processor = CommandProcessor()
    lines = [
        "::stop-commands::tok123\n",
        "::error::not a command while stopped\n",
        "::add-mask::not a mask either\n",
        "::tok123x::not the token\n",
        "::TOK123::resumes, data ignored\n",
        "::error::counted again\n",
    ]
    results = [processor.process(line) for line in lines]
    assert kinds(results) == [
        K.STOP_COMMANDS,
        "::error::not a command while stopped",
        "::add-mask::not a mask either",
        "::tok123x::not the token",
        K.RESUME_COMMANDS,
        K.ERROR,
    ]
    resume = results[4]
    assert isinstance(resume, Command)
    assert (resume.data, resume.raw) == ("tok123", "::TOK123::resumes, data ignored")
    assert not processor.stopped


def test_stop_state() -> None:
    processor = CommandProcessor()
    assert (processor.stopped, processor.stop_token) == (False, None)
    processor.process("::stop-commands::abc-123")
    assert (processor.stopped, processor.stop_token) == (True, "abc-123")
    assert processor.process("  ::abc-123::") == Command(
        K.RESUME_COMMANDS, "abc-123", (), "  ::abc-123::"
    )
    assert processor.stop_token is None


STOP_REFUSED = (
    "You cannot use a endToken that is an empty string, the string 'pause-logging', or another "
    "workflow command. For more information see: https://docs.github.com/actions/"
    "learn-github-actions/workflow-commands-for-github-actions#example-stopping-and-starting-"
    "workflow-commands or opt into insecure command execution by setting the "
    "`ACTIONS_ALLOW_UNSECURE_STOPCOMMAND_TOKENS` environment variable to `true`."
)


@pytest.mark.parametrize(
    "token",
    ["", "pause-logging", "Pause-Logging", "error", "ADD-MASK", "set-output", "stop-commands"],
)
def test_weak_stop_tokens_are_refused(token: str) -> None:
    processor = CommandProcessor()
    result = processor.process(f"::stop-commands::{token}")
    assert isinstance(result, Refused)
    assert result.message == STOP_REFUSED
    assert result.command.kind is K.STOP_COMMANDS
    assert not processor.stopped
    assert isinstance(processor.process("::error::still processed"), Command)


def test_weak_stop_tokens_with_the_opt_in() -> None:
    processor = CommandProcessor(allow_unsecure_stop_tokens=True)
    assert isinstance(processor.process("::stop-commands::error"), Command)
    assert processor.process("::warning::x") == "::warning::x"
    resumed = processor.process("::error::resumes")
    assert isinstance(resumed, Command) and resumed.kind is K.RESUME_COMMANDS
    # An empty token never resumes (GitHub checks IsNullOrEmpty before comparing).
    processor.process("::stop-commands::")
    assert processor.stopped
    assert processor.process("::::") == "::::"
    assert processor.stopped


@pytest.mark.parametrize("line", ["::set-env name=A::1", "::add-path::/x"])
def test_unsecure_commands(line: str) -> None:
    refused = CommandProcessor().process(line)
    assert isinstance(refused, Refused)
    assert refused.message == disabled_message(refused.command.kind)
    allowed = CommandProcessor(allow_unsecure_commands=True).process(line)
    assert isinstance(allowed, Command)


def test_plain_text_and_commands_pass_through() -> None:
    processor = CommandProcessor()
    assert processor.process("hello\r\n") == "hello"
    assert processor.process("::not-registered::x\n") == "::not-registered::x"
    assert processor.process("::add-mask::   ") == Command(K.ADD_MASK, "   ", (), "::add-mask::   ")
    output = processor.process("::set-output name=x::1")
    assert isinstance(output, Command) and output.deprecation is not None
