"""The terminal prompt source: refused without a terminal or in CI; the conversation on a pty."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

import pytest

from runner.approvals.prompt import PromptSource, in_ci
from runner.approvals.request import FieldSpec, Interruption, Submission
from runner.errors import ApprovalError

TICKET = FieldSpec(
    "ticket", "string", label="Change ticket", required=True, pattern=r"^CHG-[0-9]+$"
)
RISK = FieldSpec("risk", "choice", options=("low", "high"))
SURE = FieldSpec("sure", "boolean", required=True)


def request(fields: tuple[FieldSpec, ...] = ()) -> Interruption:
    return Interruption(
        id="run-1--gate",
        run_id="run-1",
        step_id="gate",
        step_name="Gate",
        title="Tell the traders",
        instructions="",
        teams=(),
        quorum=(),
        fields=fields,
        created="2030-01-01T00:00:00Z",
        deadline=None,
        environment="production",
        workflow="Deploy",
        digest="0" * 64,
        commit=None,
        inputs={},
        following_steps=(),
        started_by="someone",
        prevent_self_approval=False,
        sources=("prompt",),
    )


@dataclass
class Terminal:
    stdin: TextIO
    stdout: io.StringIO
    master: int

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    master, slave = os.openpty()
    stdin = open(slave, encoding="utf-8", closefd=True)  # noqa: SIM115
    try:
        yield Terminal(stdin, io.StringIO(), master)
    finally:
        stdin.close()
        os.close(master)


def answer(source: PromptSource, rules: Interruption, timeout: float = 10.0) -> Submission:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = source.poll(rules)
        if found:
            assert len(found) == 1
            return found[0]
        time.sleep(0.01)
    raise AssertionError("the prompt gave no submission in time")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"CI": "true"}, "CI"),
        ({"CI": "1"}, "CI"),
        ({"CI": "false"}, None),
        ({"CI": "0"}, None),
        ({"CI": ""}, None),
        ({"GITHUB_ACTIONS": "true"}, "GITHUB_ACTIONS"),
        ({"GITLAB_CI": "true"}, "GITLAB_CI"),
        ({"CI": "false", "GITLAB_CI": "true"}, "GITLAB_CI"),
    ],
)
def test_in_ci(environ: dict[str, str], expected: str | None) -> None:
    assert in_ci(environ) == expected


def test_refused_when_stdin_is_not_a_terminal() -> None:
    source = PromptSource(
        environ={}, stdin=io.StringIO("p\nok\n"), stdout=io.StringIO(), user="alice"
    )
    with pytest.raises(ApprovalError) as caught:
        source.register(request())
    assert caught.value.message == "the prompt source needs a terminal, but stdin is not one"
    assert caught.value.hint == (
        "run on a terminal, or approve through the `file` or `server` source"
    )
    assert source.poll(request()) == []


@pytest.mark.parametrize("variable", ["CI", "GITHUB_ACTIONS", "GITLAB_CI"])
def test_refused_in_ci_even_on_a_terminal(terminal: Terminal, variable: str) -> None:
    source = PromptSource(
        environ={variable: "true"}, stdin=terminal.stdin, stdout=terminal.stdout, user="alice"
    )
    with pytest.raises(ApprovalError) as caught:
        source.register(request())
    assert caught.value.message == f"the prompt source cannot be used in CI (${variable} is set)"
    assert caught.value.hint == (
        "approve with a signed file (`file` source) or the approval server"
    )
    assert terminal.stdout.getvalue() == ""


def test_ci_refusal_comes_before_the_terminal_check() -> None:
    source = PromptSource(environ={"CI": "true"}, stdin=io.StringIO(), stdout=io.StringIO())
    with pytest.raises(ApprovalError, match=r"cannot be used in CI \(\$CI is set\)"):
        source.register(request())


def test_proceed_with_notes_and_fields(terminal: Terminal) -> None:
    rules = request((TICKET, RISK, SURE))
    source = PromptSource(environ={}, stdin=terminal.stdin, stdout=terminal.stdout, user="alice")
    terminal.type(
        "maybe\n"  # not an answer: asked again
        "P\n"
        "  traders told  \n"
        "CHG-12x\n"  # does not match: asked again
        "   \n"  # required: asked again
        "CHG-12\n"
        "medium\n"  # not an option: asked again
        "\n"  # optional: left out
        "yes\n"  # not a boolean: asked again
        "TRUE\n"
    )
    source.register(rules)
    got = answer(source, rules)
    assert got.source == "prompt"
    assert got.result == "proceed"
    assert (got.who, got.who_kind) == ("alice", "login")
    assert got.notes == "traders told"
    assert got.fields == {"ticket": "CHG-12", "sure": "true"}
    assert got.evidence == {"terminal": True, "user": "alice"}
    assert got.key == f"prompt:{rules.id}:{got.submitted_at}"
    assert got.problem is None
    assert terminal.stdout.getvalue() == (
        "\nTell the traders: you are alice; anyone in the people file may answer.\n"
        "Proceed or abort? [p/a] "
        "Please answer p (proceed) or a (abort).\n"
        "Proceed or abort? [p/a] "
        "Notes: "
        "Change ticket (matching ^CHG-[0-9]+$, required): "
        "  must match ^CHG-[0-9]+$\n"
        "Change ticket (matching ^CHG-[0-9]+$, required): "
        "  a value is required\n"
        "Change ticket (matching ^CHG-[0-9]+$, required): "
        "risk (low/high, optional): "
        "  choose one of low, high\n"
        "risk (low/high, optional): "
        "sure (true/false, required): "
        "  answer true or false\n"
        "sure (true/false, required): "
    )
    # the same submission on every later poll (the waiting loop de-duplicates by key)
    assert source.poll(rules) == [got]


def test_abort_requires_notes_and_asks_no_fields(terminal: Terminal) -> None:
    rules = request((TICKET,))
    source = PromptSource(environ={}, stdin=terminal.stdin, stdout=terminal.stdout, user="bob")
    terminal.type("abort\n\n   \nwindow open\n")
    source.register(rules)
    got = answer(source, rules)
    assert got.result == "abort"
    assert got.notes == "window open"
    assert got.fields == {}
    assert got.who == "bob"
    assert terminal.stdout.getvalue() == (
        "\nTell the traders: you are bob; anyone in the people file may answer.\n"
        "Proceed or abort? [p/a] "
        "Notes: "
        "Notes are required to abort. Notes: "
        "Notes are required to abort. Notes: "
    )


def test_proceed_needs_no_notes(terminal: Terminal) -> None:
    rules = request()
    source = PromptSource(environ={}, stdin=terminal.stdin, stdout=terminal.stdout, user="carol")
    terminal.type("proceed\n\n")
    source.register(rules)
    got = answer(source, rules)
    assert (got.result, got.notes, got.fields) == ("proceed", "", {})


def test_register_is_idempotent(terminal: Terminal) -> None:
    rules = request()
    source = PromptSource(environ={}, stdin=terminal.stdin, stdout=terminal.stdout, user="carol")
    source.register(rules)
    source.register(rules)
    terminal.type("p\nok\n")
    answer(source, rules)
    assert terminal.stdout.getvalue().count("Proceed or abort?") == 1


def test_terminal_closed_before_a_decision(terminal: Terminal) -> None:
    rules = request()
    source = PromptSource(environ={}, stdin=terminal.stdin, stdout=terminal.stdout, user="carol")
    terminal.type("\x04")  # Ctrl-D at the start of a line: end of input
    source.register(rules)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert source.poll(rules) == []
        except ApprovalError as exc:
            assert exc.message == "the terminal closed before a decision was given"
            break
        assert time.monotonic() < deadline, "the prompt never reported the closed terminal"
        time.sleep(0.01)
    # reported once; then the source reports nothing (a failure is never a decision)
    assert source.poll(rules) == []


def test_instructions_name_the_user(terminal: Terminal) -> None:
    source = PromptSource(environ={}, stdin=terminal.stdin, stdout=terminal.stdout, user="zoe")
    assert source.instructions(request()) == ["answer the prompt on this terminal (as zoe)"]


@pytest.mark.parametrize("ci", [True, False], ids=["in-ci", "no-terminal"])
def test_a_prompt_that_cannot_ask_here_gives_no_instructions(terminal: Terminal, ci: bool) -> None:
    """A CI log said "answer the prompt on this terminal", then that the prompt cannot be used
    in CI."""
    stdin = terminal.stdin if ci else io.StringIO()
    environ = {"CI": "true"} if ci else {}
    source = PromptSource(environ=environ, stdin=stdin, stdout=terminal.stdout, user="zoe")
    assert source.instructions(request()) == []


def test_the_local_user_is_the_os_account_not_what_logname_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``getpass.getuser`` reads ``$LOGNAME`` and ``$USER`` first: ``LOGNAME=alice`` answered
    the prompt as alice, passing her team and the self-approval check as her."""
    import pwd

    from runner.approvals.prompt import local_user

    account = pwd.getpwuid(os.geteuid()).pw_name
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "alice-not-me")
    assert local_user() == account


def test_without_a_people_file_the_approver_is_named_the_local_user() -> None:
    """It said "anyone in the people file (alice)" of a workflow that names no people file."""
    from runner.approvals.prompt import approvers_text
    from runner.approvals.trust import load_directory

    directory = load_directory(None, None, "alice")  # type: ignore[arg-type]
    assert approvers_text(directory, ()) == "only the local user (alice)"


def test_without_a_people_file_the_prompt_says_why_in_a_sentence(terminal: Terminal) -> None:
    """It said "you are root; the local user (root): the workflow names no people file may
    answer." (newcomer pass)."""
    from runner.approvals.trust import load_directory

    directory = load_directory(None, None, "root")  # type: ignore[arg-type]
    source = PromptSource(
        environ={}, stdin=terminal.stdin, stdout=terminal.stdout, user="root", directory=directory
    )
    terminal.type("p\n\n")
    rules = request()
    source.register(rules)
    assert answer(source, rules).result == "proceed"
    assert terminal.stdout.getvalue().startswith(
        "\nTell the traders: you are root; only the local user (root) may answer (the workflow "
        "names no people file).\n"
    )
