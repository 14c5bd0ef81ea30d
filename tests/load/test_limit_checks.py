"""``runner validate`` says what the approval server would refuse in a question the workflow
writes itself (a name, a title, instructions, teams, fields past the server's sizes): the gate
failed only once a deployment reached it (race pass)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.load import check_file
from runner.request_limits import INSTRUCTIONS_CHARS, LIST_ITEMS, TEXT_CHARS

SERVER = """\
approvals:
  server:
    url: https://approvals.example.com
"""

FILE = """\
approvals:
  trust:
    ref: refs/remotes/origin/approvals-trust
    allowed-signers: trust/allowed_signers
  file: {}
"""


def _problems(tmp_path: Path, text: str) -> list[tuple[int, int, str, str]]:
    path = tmp_path / "w.yml"
    path.write_text(text, encoding="utf-8")
    loaded = check_file(path)
    return [
        (d.location.line, d.location.column, d.severity, d.message)
        for d in loaded.diagnostics
        if "approval server" in d.message
    ]


def _gate(manual: str, *, approvals: str = SERVER, name: str = "Approve") -> str:
    return f"""\
name: limits
{approvals}steps:
  - id: build
    name: Build
    run: echo build
  - id: gate
    name: {name}
{manual}  - id: deploy
    name: Deploy
    run: echo deploy
"""


def test_a_step_name_past_the_servers_size_is_an_error_at_the_name(tmp_path: Path) -> None:
    found = _problems(tmp_path, _gate("    manual: {}\n", name="x" * (TEXT_CHARS + 1)))
    assert found == [
        (
            10,
            11,
            "error",
            f"step `gate`'s `name` is longer than the {TEXT_CHARS:,} characters the approval "
            "server takes: the gate would fail when a deployment reaches it; shorten it",
        )
    ]
    # the same name is the server's business only: a gate that asks for a signed file is fine
    approvals = FILE
    text = _gate("    manual: {}\n", approvals=approvals, name="x" * (TEXT_CHARS + 1))
    assert _problems(tmp_path, text) == []
    # and at the size the server takes, nothing is said
    assert _problems(tmp_path, _gate("    manual: {}\n", name="x" * TEXT_CHARS)) == []


def test_instructions_teams_and_fields_past_the_servers_sizes(tmp_path: Path) -> None:
    teams = ", ".join(f"t{n}" for n in range(LIST_ITEMS + 1))
    options = ", ".join(f"o{n}" for n in range(LIST_ITEMS + 1))
    manual = f"""\
    manual:
      instructions: "{"i" * (INSTRUCTIONS_CHARS + 1)}"
      teams: [{teams}]
      fields:
        - name: pick
          type: choice
          options: [{options}]
"""
    text = _gate(manual, approvals=SERVER + "  trust:\n    people: people.yml\n")
    found = _problems(tmp_path, text)
    assert [(line, column, severity) for line, column, severity, _ in found] == [
        (14, 21, "error"),  # the instructions
        (15, 14, "error"),  # the teams
        (17, 9, "error"),  # the options, at `fields`
    ], found
    assert "`manual.instructions` is longer than the 65,536 characters" in found[0][3]
    assert f"`manual.teams` has {LIST_ITEMS + 1} items" in found[1][3]
    assert f"field `pick`'s `options` has {LIST_ITEMS + 1} items" in found[2][3]


def test_instructions_with_an_expression_are_judged_at_the_gate(tmp_path: Path) -> None:
    long = "i" * (INSTRUCTIONS_CHARS + 1)
    manual = f'    manual:\n      instructions: "#{{if Ready}}{long}#{{/if}}"\n'
    assert _problems(tmp_path, _gate(manual)) == []


def test_a_guided_failure_that_asks_the_server_is_checked_too(tmp_path: Path) -> None:
    teams = ", ".join(f"t{n}" for n in range(LIST_ITEMS + 1))
    text = f"""\
name: limits
{SERVER}  trust:
    people: people.yml
guided-failure:
  teams: [{teams}]
steps:
  - id: build
    name: Build
    run: echo build
  - id: deploy
    name: Deploy
    run: echo deploy
"""
    found = _problems(tmp_path, text)
    # the workflow's guided failure applies to both steps: said once, where it is written
    assert [(line, severity, message[:40]) for line, _, severity, message in found] == [
        (7, "error", "`guided-failure`'s `teams` has 101 items")
    ]


@pytest.mark.parametrize("count", [1_001])
def test_more_following_steps_than_the_server_lists_is_a_warning(
    tmp_path: Path, count: int
) -> None:
    later = "".join(f"  - id: s{n}\n    name: S{n}\n    run: echo\n" for n in range(count))
    text = f"""\
name: limits
{SERVER}steps:
  - id: gate
    name: Gate
    manual: {{}}
{later}"""
    found = _problems(tmp_path, text)
    assert [(line, severity) for line, _, severity, _ in found] == [(7, "warning")]
    assert f"{count:,} follow it here" in found[0][3]
