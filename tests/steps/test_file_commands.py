from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ExitCode, Location, StepError
from runner.steps.file_commands import (
    ENV_BLOCKLIST,
    OCTOPUS_BASH_FUNCTIONS,
    OCTOPUS_VARIABLES_ENV,
    EnvFile,
    OctopusVariable,
    blocked_env_message,
    format_octopus_variable,
    octopus_stub,
    parse_env_file,
    parse_key_values,
    parse_octopus_variables,
    parse_path_file,
    prepend_path,
)

# --- NAME=value and NAME<<DELIMITER ------------------------------------------------------

VALID = [
    ("single", "A=1\n", [("A", "1")]),
    ("no trailing newline", "A=1", [("A", "1")]),
    ("several", "A=1\nB=2\n", [("A", "1"), ("B", "2")]),
    ("empty value", "A=\n", [("A", "")]),
    ("value containing =", "A=b=c\n", [("A", "b=c")]),
    ("= before << is a plain value", "A=b<<c\n", [("A", "b<<c")]),
    ("<< before = is a heredoc", "A<<B=C\nx\nB=C\n", [("A", "x")]),
    ("value keeps spaces", "A=  x  \n", [("A", "  x  ")]),
    ("name keeps spaces", "A B=x\n", [("A B", "x")]),
    ("empty lines skipped", "\n\nA=1\n\n\nB=2\n\n", [("A", "1"), ("B", "2")]),
    ("repeated name kept in order", "A=1\nA=2\n", [("A", "1"), ("A", "2")]),
    ("heredoc", "A<<EOF\nline1\nline2\nEOF\n", [("A", "line1\nline2")]),
    ("heredoc empty value", "A<<EOF\nEOF\n", [("A", "")]),
    ("heredoc one empty line", "A<<EOF\n\nEOF\n", [("A", "")]),
    ("heredoc two empty lines", "A<<EOF\n\n\nEOF\n", [("A", "\n")]),
    ("heredoc keeps blank edges", "A<<EOF\n\nx\n\nEOF\n", [("A", "\nx\n")]),
    ("delimiter on last line, no newline", "A<<EOF\nx\nEOF", [("A", "x")]),
    (
        "delimiter inside a line is content",
        "A<<EOF\nfoo EOF\nEOFX\n EOF\nEOF\n",
        [("A", "foo EOF\nEOFX\n EOF")],
    ),
    (
        "heredoc content looks like entries",
        "A<<EOF\nB=2\nC<<X\nEOF\nD=4\n",
        [("A", "B=2\nC<<X"), ("D", "4")],
    ),
    ("mixed entries", "A=1\nB<<EOF\nx\nEOF\nC=3\n", [("A", "1"), ("B", "x"), ("C", "3")]),
    ("CRLF plain", "A=1\r\nB=2\r\n", [("A", "1"), ("B", "2")]),
    ("CRLF heredoc keeps inner CRLF", "B<<EOF\r\nx\r\ny\r\nEOF\r\n", [("B", "x\r\ny")]),
    ("delimiter line with trailing CR", "A<<EOF\nx\nEOF\r", [("A", "x")]),
    ("delimiter header with CR", "A<<EOF\r\nx\nEOF\n", [("A", "x")]),
    ("CR-only line is empty", "A=1\r\n\r\nB=2\n", [("A", "1"), ("B", "2")]),
    ("CR ending the text", "A=1\n\r", [("A", "1")]),
    ("lone CR inside a value", "A=x\ry\n", [("A", "x\ry")]),
    ("only one CR belongs to the terminator", "A=x\r\r\n", [("A", "x\r")]),
    ("unicode", "GRÜSSE=héllo ✓\n", [("GRÜSSE", "héllo ✓")]),
    ("unicode delimiter", "A<<✓\n日本\n語\n✓\n", [("A", "日本\n語")]),
    ("byte order mark", "\ufeffA=1\n", [("A", "1")]),
    ("json value", 'J<<EOF\n{"a": "b=c"}\nEOF\n', [("J", '{"a": "b=c"}')]),
]


@pytest.mark.parametrize(("text", "expected"), [v[1:] for v in VALID], ids=[v[0] for v in VALID])
def test_parse_key_values(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_key_values(text, source="GITHUB_OUTPUT") == expected


INVALID = [
    ("empty name", "=value\n", "Invalid format '=value'. Name must not be empty", 1),
    ("no = or <<", "A=1\nnovalue\n", "Invalid format 'novalue'", 2),
    ("whitespace line", "  \n", "Invalid format '  '", 1),
    (
        "heredoc without name",
        "<<EOF\nx\nEOF\n",
        "Invalid format '<<EOF'. Name must not be empty and delimiter must not be empty",
        1,
    ),
    (
        "heredoc without delimiter",
        "A=1\nA<<\nx\n",
        "Invalid format 'A<<'. Name must not be empty and delimiter must not be empty",
        2,
    ),
    (
        "missing delimiter",
        "A=1\nB<<EOF\nx\n",
        "Invalid value. Matching delimiter not found 'EOF'",
        2,
    ),
    (
        "delimiter with trailing space",
        "B<<EOF\nx\nEOF \n",
        "Invalid value. Matching delimiter not found 'EOF'",
        1,
    ),
    ("header is the last line", "B<<EOF", "Invalid value. Matching delimiter not found 'EOF'", 1),
    (
        "header then newline only",
        "B<<EOF\n",
        "Invalid value. Matching delimiter not found 'EOF'",
        1,
    ),
    ("value without newline", "B<<EOF\nx", "Invalid value. EOF marker missing new line.", 2),
    ("wrong last line", "B<<EOF\nx\nEOF2", "Invalid value. EOF marker missing new line.", 3),
    (
        "delimiter case matters",
        "B<<EOF\nx\neof\n",
        "Invalid value. Matching delimiter not found 'EOF'",
        1,
    ),
]


@pytest.mark.parametrize(
    ("text", "message", "line"), [v[1:] for v in INVALID], ids=[v[0] for v in INVALID]
)
def test_parse_key_values_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(StepError) as caught:
        parse_key_values(text, source="GITHUB_ENV")
    error = caught.value
    assert error.message == message
    assert error.location == Location("GITHUB_ENV", line, 1)
    assert str(error) == f"GITHUB_ENV:{line}:1: {message}"
    assert error.exit_code == ExitCode.STEP_FAILED


@given(
    st.lists(
        st.tuples(
            st.text(st.characters(blacklist_characters="=<\r\n"), min_size=1),
            st.text(st.characters(blacklist_characters="\r"), max_size=40),
        ),
        max_size=5,
    )
)
def test_heredoc_round_trip(entries: list[tuple[str, str]]) -> None:
    """Whatever a value holds, a delimiter that is no line of it brings it back exactly."""
    parts = []
    for name, value in entries:
        delimiter = "EOF"
        while delimiter in value.split("\n"):
            delimiter += "_"
        parts.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    assert parse_key_values("".join(parts), source="GITHUB_OUTPUT") == entries


# --- GITHUB_ENV, GITHUB_PATH -------------------------------------------------------------


def test_env_file_refuses_node_options_like_github() -> None:
    env = parse_env_file("A=1\nNODE_OPTIONS=--require evil.js\nnode_options=x\nB=2\n")
    assert env == EnvFile(
        entries=(("A", "1"), ("B", "2")),
        refused=(
            "Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.",
            "Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.",
        ),
    )
    assert "NODE_OPTIONS" in ENV_BLOCKLIST
    assert blocked_env_message("PATH") is None


def test_env_file_refuses_nul() -> None:
    env = parse_env_file("A=x\0y\nB=ok\n")
    assert env.entries == (("B", "ok"),)
    assert env.refused == ("Can't store 'A' using '$GITHUB_ENV': it contains a NUL character.",)


def test_env_file_errors_name_the_source() -> None:
    with pytest.raises(StepError) as caught:
        parse_env_file("oops\n", source="RUNNER_ENV")
    assert str(caught.value) == "RUNNER_ENV:1:1: Invalid format 'oops'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("/a\n", ["/a"]),
        ("/a\n\n/b\r\n/c\r/d", ["/a", "/b", "/c", "/d"]),
        (" /with space \n", [" /with space "]),
        ("\ufeff/opt/bin\n", ["/opt/bin"]),
        ("C:\\tools\r\n", ["C:\\tools"]),
    ],
)
def test_parse_path_file(text: str, expected: list[str]) -> None:
    assert parse_path_file(text) == expected


def test_prepend_path_moves_repeats_last() -> None:
    assert prepend_path(["/a", "/b"], ["/c", "/a", "/c"]) == ["/b", "/a", "/c"]
    assert prepend_path([], []) == []


# --- Octopus variables -------------------------------------------------------------------

TRICKY_VALUES = [
    "",
    "plain",
    "two words",
    "multi\nline\n",
    "\n\nleading and trailing newlines\n\n",
    "quotes ' \" ` $HOME $(rm -rf /) \\",
    "ünïcødé ✓ 日本",
    "EOF",
    "A=1\nB<<EOF\nEOF",
    "tab\there\r\nwindows",
    "-sensitive",
]


@pytest.mark.parametrize("value", TRICKY_VALUES)
@pytest.mark.parametrize("sensitive", [False, True])
def test_octopus_round_trip(value: str, sensitive: bool) -> None:
    text = format_octopus_variable("Name With Spaces.Ü", value, sensitive=sensitive)
    assert text.endswith("\n") and text.count("\n") == 1
    assert parse_octopus_variables(text) == [
        OctopusVariable("Name With Spaces.Ü", value, sensitive)
    ]


def test_octopus_several_lines_and_blank_lines() -> None:
    text = (
        format_octopus_variable("A", "1")
        + "\n"
        + format_octopus_variable("B", "2", sensitive=True).replace("\n", "\r\n")
        + format_octopus_variable("A", "3")
    )
    assert parse_octopus_variables(text) == [
        OctopusVariable("A", "1"),
        OctopusVariable("B", "2", True),
        OctopusVariable("A", "3"),
    ]


_RECORD = (
    "Invalid Octopus variable record: expected 'NAME VALUE FLAG' with base64 NAME and VALUE "
    "and FLAG 'plain' or 'sensitive'"
)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("QQ== MQ==\n", _RECORD, 1),
        ("QQ== MQ== plain extra\n", _RECORD, 1),
        ("QQ==  MQ== plain\n", _RECORD, 1),
        ("QQ== MQ== secret\n", _RECORD, 1),
        ("QQ== MQ== plain\nQQ== MQ== Sensitive\n", _RECORD, 2),
        (
            "QQ== c2VjcmV0!! sensitive\n",
            "Invalid Octopus variable record: the value is not base64-encoded UTF-8 text",
            1,
        ),
        (
            "/w== MQ== plain\n",
            "Invalid Octopus variable record: the name is not base64-encoded UTF-8 text",
            1,
        ),
        (
            "QQ== /w== plain\n",
            "Invalid Octopus variable record: the value is not base64-encoded UTF-8 text",
            1,
        ),
        (" MQ== plain\n", "Invalid Octopus variable record: the name is empty", 1),
    ],
)
def test_octopus_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(StepError) as caught:
        parse_octopus_variables(text)
    assert caught.value.message == message
    assert caught.value.location == Location(OCTOPUS_VARIABLES_ENV, line, 1)


def test_octopus_error_never_quotes_the_value() -> None:
    with pytest.raises(StepError) as caught:
        parse_octopus_variables("QQ== c2VjcmV0 sensitive extra\n")
    assert "c2VjcmV0" not in str(caught.value)


# The shell function, run for real: it is the half of the format we do not write in Python.
# Each test runs it both ways: defined in the script, and as a step's script gets it, a one-line
# stub that reads it from its own file at the first call (``octopus_stub``).

SHELLS = [shell for shell in ("bash", "sh") if shutil.which(shell)]


@pytest.fixture(params=["inline", "stub"])
def loading(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _prelude(loading: str, tmp_path: Path) -> str:
    if loading == "inline":
        return OCTOPUS_BASH_FUNCTIONS + "\n"
    functions = tmp_path / "functions dir" / "functions.sh"  # a space: the path is quoted
    functions.parent.mkdir(exist_ok=True)
    functions.write_text(OCTOPUS_BASH_FUNCTIONS, encoding="ascii")
    return octopus_stub(str(functions))


def _run(
    shell: str, script: str, tmp_path: Path, loading: str = "inline", **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [shell, "-c", _prelude(loading, tmp_path) + script],
        env=environment,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.skipif(not SHELLS or not shutil.which("base64"), reason="needs a shell and base64")
@pytest.mark.parametrize("shell", SHELLS)
def test_set_octopusvariable_in_a_shell(shell: str, loading: str, tmp_path: Path) -> None:
    target = tmp_path / "octopus-variables"
    values = {f"V{i}": value for i, value in enumerate(TRICKY_VALUES)}
    long_value = "x" * 5000  # GNU base64 wraps at 76 columns
    script = "\n".join(
        [f'set_octopusvariable V{i} "$V{i}"' for i in range(len(values))]
        + ['set_octopusvariable "Secret Name" "$LONG" -sensitive']
    )
    result = _run(
        shell,
        script,
        tmp_path,
        loading,
        RUNNER_OCTOPUS_VARIABLES=str(target),
        LONG=long_value,
        **values,
    )
    assert result.returncode == 0, result.stderr
    parsed = parse_octopus_variables(target.read_text(encoding="utf-8"))
    # Values ending in newlines survive: they reach the function as arguments, and only the
    # base64 text passes through $(...), which would strip them.
    assert parsed == [OctopusVariable(name, value) for name, value in values.items()] + [
        OctopusVariable("Secret Name", long_value, True)
    ]


@pytest.mark.skipif(not SHELLS or not shutil.which("base64"), reason="needs a shell and base64")
@pytest.mark.parametrize(
    ("script", "status", "stderr"),
    [
        ("set_octopusvariable OnlyName", 2, "usage: set_octopusvariable NAME VALUE [-sensitive]"),
        ('set_octopusvariable "" value', 2, "usage: set_octopusvariable NAME VALUE [-sensitive]"),
        (
            "set_octopusvariable A b -sensitve",
            2,
            "set_octopusvariable: unknown option '-sensitve' (expected -sensitive)",
        ),
        ("set_octopusvariable A b c d", 2, "usage: set_octopusvariable NAME VALUE [-sensitive]"),
    ],
)
def test_set_octopusvariable_refuses_bad_calls(
    script: str, status: int, stderr: str, loading: str, tmp_path: Path
) -> None:
    target = tmp_path / "octopus-variables"
    result = _run(SHELLS[0], script, tmp_path, loading, RUNNER_OCTOPUS_VARIABLES=str(target))
    assert (result.returncode, result.stderr.strip()) == (status, stderr)
    assert not target.exists()


@pytest.mark.skipif(not SHELLS or not shutil.which("base64"), reason="needs a shell and base64")
def test_set_octopusvariable_without_the_file_variable(loading: str, tmp_path: Path) -> None:
    result = _run(SHELLS[0], "set_octopusvariable A b; echo status=$?", tmp_path, loading)
    assert result.stdout == "status=1\n"
    assert result.stderr == "set_octopusvariable: RUNNER_OCTOPUS_VARIABLES is not set\n"


@pytest.mark.skipif("bash" not in SHELLS or not shutil.which("base64"), reason="needs bash")
def test_set_octopusvariable_keeps_xtrace_state_and_hides_internals(
    loading: str, tmp_path: Path
) -> None:
    target = tmp_path / "octopus-variables"
    script = 'set -x\nset_octopusvariable A "hunter22" -sensitive\ncase $- in *x*) echo on;; esac'
    result = _run("bash", script, tmp_path, loading, RUNNER_OCTOPUS_VARIABLES=str(target))
    assert result.returncode == 0
    assert result.stdout == "on\n"
    # The call itself is traced by the shell; the function adds no trace of its own work, and
    # the stub none of its loading: the value is printed once, as in the shell's own trace
    assert "base64" not in result.stderr
    assert "functions.sh" not in result.stderr
    assert result.stderr.count("hunter22") == 1
    assert parse_octopus_variables(target.read_text()) == [OctopusVariable("A", "hunter22", True)]


@pytest.mark.skipif("bash" not in SHELLS or not shutil.which("base64"), reason="needs bash")
@pytest.mark.parametrize(
    "script",
    [
        "set -x\nset_octopusvariable A b\nset_octopusvariable C d -sensitive\nset +x",
        "set -x\nset_octopusvariable OnlyName || true\nset +x",
        "set -x\nset -e\nset_octopusvariable A b -sensitve\necho never",
    ],
)
def test_the_stub_traces_and_ends_as_the_function_does(script: str, tmp_path: Path) -> None:
    """What a script sees (output, trace, status, the file) does not tell how it got it."""
    seen = []
    for loading in ("inline", "stub"):
        target = tmp_path / f"octopus-{loading}"
        result = _run("bash", script, tmp_path, loading, RUNNER_OCTOPUS_VARIABLES=str(target))
        written = target.read_text() if target.exists() else None
        seen.append((result.returncode, result.stdout, result.stderr, written))
    assert seen[0] == seen[1]


@pytest.mark.skipif("bash" not in SHELLS or not shutil.which("base64"), reason="needs bash")
def test_the_stub_works_in_child_shells_and_subshells(tmp_path: Path) -> None:
    target = tmp_path / "octopus-variables"
    script = (
        "( set_octopusvariable InSubshell 1 )\n"
        "export -f set_octopusvariable\n"
        "bash -c 'set_octopusvariable InChild 2'\n"
        "set_octopusvariable InScript 3\n"
    )
    result = _run("bash", script, tmp_path, "stub", RUNNER_OCTOPUS_VARIABLES=str(target))
    assert result.returncode == 0, result.stderr
    assert [v.name for v in parse_octopus_variables(target.read_text())] == [
        "InSubshell",
        "InChild",
        "InScript",
    ]


@pytest.mark.skipif("bash" not in SHELLS, reason="needs bash")
def test_a_stub_whose_file_defines_nothing_fails_instead_of_calling_itself(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "functions.sh"
    empty.write_text("# emptied\n")
    script = octopus_stub(str(empty)) + "set_octopusvariable A b\necho status=$?\n"
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stdout == "status=127\n"
    assert "set_octopusvariable: command not found" in result.stderr
