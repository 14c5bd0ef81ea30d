"""``runner server users|teams|tokens`` refusals on SQLite and PostgreSQL: an unknown person, a
missing ``--user`` or a duplicate person is a usage error (exit 2) that says what to do, not an
internal error with a crash log; nothing is written."""

from __future__ import annotations

import pytest

from runner.cli.main import main
from runner.server.storage import Store

ADD_FIRST = (
    "hint: add them first with `runner server users add USERNAME` (or `runner server users "
    "import FILE`); `runner server users list` shows who there is\n"
)


def admin(store: Store, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    url = store.engine.url.render_as_string(hide_password=False)
    code = main(["server", "--database", url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args",
    [
        ("tokens", "issue", "--kind", "approver", "--user", "zed"),
        ("teams", "set", "dba", "carol", "zed"),
    ],
    ids=["tokens-issue", "teams-set"],
)
def test_an_unknown_person_is_named_with_the_fix(
    store: Store, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    tokens, audit = store.list_tokens(), store.audit_entries()
    code, out, err = admin(store, capsys, *args)
    assert (code, out, err) == (2, "", "error: no person 'zed'\n" + ADD_FIRST)
    assert store.list_tokens() == tokens and store.audit_entries() == audit
    assert store.directory().members("dba") == {"bob", "carol"}


def test_an_approver_token_needs_a_person(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = admin(store, capsys, "tokens", "issue", "--kind", "approver")
    assert (code, out) == (2, "")
    assert err == (
        "error: an approver token acts as a person: name them with --user USERNAME\n"
        "hint: `runner server users list` shows who there is\n"
    )
    assert store.list_tokens() == []


@pytest.mark.parametrize("kind", ["runner", "admin"])
def test_a_person_on_a_runner_or_admin_token_is_refused(
    store: Store, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    code, out, err = admin(store, capsys, "tokens", "issue", "--kind", kind, "--user", "dave")
    assert (code, out) == (2, "")
    assert err == (
        f"error: a {kind} token acts for no person: --user is only for --kind approver\n"
        "hint: drop --user, or issue `--kind approver --user dave`\n"
    )
    assert store.list_tokens() == []


def test_a_person_added_twice_is_refused(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = admin(store, capsys, "users", "add", "alice", "--id", "u-other")
    assert (code, out) == (2, "")
    assert err.startswith(
        "error: there is already a person with the username 'alice' or the id 'u-other'\n"
    )
    assert store.directory().by_username("alice").id == "u-alice"  # type: ignore[union-attr]


def test_the_known_cases_still_work(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert admin(store, capsys, "teams", "set", "dba", "carol") == (0, "team dba: carol\n", "")
    code, out, _ = admin(store, capsys, "tokens", "issue", "--kind", "approver", "--user", "dave")
    assert code == 0 and out.startswith("rnr_")
    assert store.authenticate(out.strip()) is not None
