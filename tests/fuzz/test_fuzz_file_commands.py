"""Fuzzing the parsers of the files a step writes back (``GITHUB_OUTPUT``, ``GITHUB_ENV``,
``GITHUB_PATH``, ``$RUNNER_OCTOPUS_VARIABLES``).

Property: a result or a ``StepError`` located in the file, never another exception; and what a
well-behaved writer writes (``NAME=value``, heredocs with a delimiter absent from the value, the
bash function's base64 records) reads back exactly.
"""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from runner.errors import StepError
from runner.steps.file_commands import (
    EnvFile,
    format_octopus_variable,
    parse_env_file,
    parse_key_values,
    parse_octopus_variables,
    parse_path_file,
)

FUZZ = settings.get_profile("runner-fuzz")

PIECES = st.sampled_from(
    ["NAME", "=", "<<", "EOF", "\n", "\r\n", "\r", "\ufeff", "\x00", " ", "value", "=", "é", ""]
)
FILE_TEXT = st.lists(PIECES | st.text(max_size=4), max_size=30).map("".join) | st.text(max_size=80)


def assert_step_error(exc: StepError, text: str) -> None:
    assert exc.message
    assert exc.location is not None
    assert 1 <= exc.location.line <= text.count("\n") + text.count("\r") + 1


@FUZZ
@given(FILE_TEXT)
def test_key_values_parse_or_fail_with_a_located_step_error(text: str) -> None:
    try:
        pairs = parse_key_values(text, source="GITHUB_OUTPUT")
    except StepError as exc:
        assert_step_error(exc, text)
        return
    for name, value in pairs:
        assert isinstance(name, str) and name
        assert isinstance(value, str)


@FUZZ
@given(FILE_TEXT)
def test_env_file_parses_or_fails_with_a_step_error(text: str) -> None:
    try:
        parsed = parse_env_file(text)
    except StepError as exc:
        assert_step_error(exc, text)
        return
    assert isinstance(parsed, EnvFile)
    for name, value in parsed.entries:
        assert "\0" not in name and "\0" not in value
        assert name.casefold() != "node_options"


@FUZZ
@given(FILE_TEXT)
def test_path_file_never_fails(text: str) -> None:
    for line in parse_path_file(text):
        assert line and "\n" not in line and "\r" not in line


@FUZZ
@given(
    FILE_TEXT
    | st.lists(st.sampled_from(["YQ==", " ", "plain", "sensitive", "\n", "=", "!"])).map("".join)
)
def test_octopus_records_parse_or_fail_without_quoting_the_line(text: str) -> None:
    try:
        variables = parse_octopus_variables(text)
    except StepError as exc:
        assert exc.location is not None
        # the message never quotes the line: it may hold a sensitive value
        assert exc.message in OCTOPUS_MESSAGES
        return
    for variable in variables:
        assert variable.name


OCTOPUS_MESSAGES = {
    "Invalid Octopus variable record: expected 'NAME VALUE FLAG' with base64 NAME and VALUE "
    "and FLAG 'plain' or 'sensitive'",
    "Invalid Octopus variable record: the name is empty",
    "Invalid Octopus variable record: the name is not base64-encoded UTF-8 text",
    "Invalid Octopus variable record: the value is not base64-encoded UTF-8 text",
}
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
VALUES = st.text(
    st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)), max_size=40
)


@FUZZ
@given(st.lists(st.tuples(NAMES, VALUES), max_size=5))
def test_what_a_heredoc_writer_writes_reads_back(entries: list[tuple[str, str]]) -> None:
    text = ""
    for index, (name, value) in enumerate(entries):
        delimiter = f"ghadelimiter_{index}_x"
        assume(delimiter not in value.split("\n"))
        text += f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
    assert parse_key_values(text, source="GITHUB_OUTPUT") == entries


@FUZZ
@given(st.lists(st.tuples(NAMES, VALUES.filter(lambda v: "\n" not in v)), max_size=5))
def test_what_a_name_value_writer_writes_reads_back(entries: list[tuple[str, str]]) -> None:
    text = "".join(f"{name}={value}\n" for name, value in entries)
    assert parse_key_values(text, source="GITHUB_OUTPUT") == entries


@FUZZ
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=30), st.booleans()),
        max_size=5,
    )
)
def test_octopus_records_round_trip(entries: list[tuple[str, str, bool]]) -> None:
    entries = [(n, v, s) for n, v, s in entries if not _has_surrogate(n + v)]
    text = "".join(format_octopus_variable(n, v, sensitive=s) for n, v, s in entries)
    read = [(v.name, v.value, v.sensitive) for v in parse_octopus_variables(text)]
    assert read == entries


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)
