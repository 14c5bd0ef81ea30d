"""The hash-chained audit log, on SQLite and PostgreSQL: it verifies, `runner server audit
verify` finds a changed, removed or swapped entry in the database or in an exported file and
names it, and the export is JSON lines that verify accepts."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers.cli import cli
from sqlalchemy import delete, select, update

from runner.approvals.identity import Directory
from runner.server import tables as t
from runner.server.audit import GENESIS, entry_hash, verify_chain
from runner.server.storage import Caller, Store, make_engine, migrate

RequestFactory = Callable[..., dict[str, Any]]
RUNNER = Caller("runner", "tok-runner", None)
COLUMNS = ("at", "kind", "interruption_id", "actor", "data", "prev_hash", "hash")


def url_of(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def verify(store: Store, *extra: str) -> tuple[int, list[str]]:
    code, out = cli("server", "--database", url_of(store), "audit", "verify", *extra)
    return code, out.splitlines()


def activity(store: Store, make_request: RequestFactory) -> list[dict[str, Any]]:
    """A day's work: tokens, an interruption assigned, reassigned and approved, a revocation."""
    directory = store.directory()
    alice, bob = directory.by_username("alice"), directory.by_username("bob")
    assert alice is not None and bob is not None
    store.issue_token("runner", label="ci")
    token = store.issue_token("approver", "alice")
    store.create_interruption(make_request(), RUNNER)
    store.take_responsibility("r1--gate", alice, False)
    store.take_responsibility("r1--gate", bob, True)
    store.submit("r1--gate", bob, "proceed", "désormais OK ✓", {})
    caller = store.authenticate(token)
    assert caller is not None
    store.revoke_token(caller.token_id)
    entries = store.audit_entries()
    assert [e["kind"] for e in entries] == [
        "people-imported",
        "token-issued",
        "token-issued",
        "created",
        "assigned",
        "reassigned",
        "submitted",
        "token-revoked",
    ]
    return entries


@pytest.fixture
def entries(store: Store, make_request: RequestFactory) -> list[dict[str, Any]]:
    return activity(store, make_request)


def row(store: Store, seq: int) -> dict[str, Any]:
    with store.engine.connect() as c:
        return dict(c.execute(select(t.audit).where(t.audit.c.seq == seq)).one()._mapping)


def test_the_chain_links_every_entry_to_the_one_before(
    store: Store, entries: list[dict[str, Any]]
) -> None:
    assert [e["seq"] for e in entries] == list(range(1, 9))
    assert entries[0]["prev_hash"] == GENESIS
    for before, entry in itertools.pairwise(entries):
        assert entry["prev_hash"] == before["hash"]
    for entry in entries:
        assert entry["hash"] == entry_hash(entry["prev_hash"], entry)
        assert entry["at"].endswith("Z")
    assert verify_chain(entries) == []
    assert entries[6]["data"] == {
        "result": "proceed",
        "notes": "désormais OK ✓",
        "fields": {},
        "state": "approved",
    }
    assert (entries[6]["actor"], entries[6]["interruption_id"]) == ("bob", "r1--gate")


def test_verify_command_accepts_an_intact_chain(
    store: Store, entries: list[dict[str, Any]]
) -> None:
    assert verify(store) == (0, ["8 entries, chain intact"])


def test_a_changed_entry_is_named(store: Store, entries: list[dict[str, Any]]) -> None:
    with store.tx() as c:
        c.execute(
            update(t.audit)
            .where(t.audit.c.seq == 7)
            .values(data={**entries[6]["data"], "result": "abort"})
        )
    assert verify(store) == (1, ["entry 7: its content was changed", "8 entries, 1 problem(s)"])


def test_a_changed_actor_is_named(store: Store, entries: list[dict[str, Any]]) -> None:
    with store.tx() as c:
        c.execute(update(t.audit).where(t.audit.c.seq == 5).values(actor="mallory"))
    assert verify(store) == (1, ["entry 5: its content was changed", "8 entries, 1 problem(s)"])


def test_a_changed_entry_with_its_hash_recomputed_breaks_the_next(
    store: Store, entries: list[dict[str, Any]]
) -> None:
    forged = {**entries[6], "data": {**entries[6]["data"], "notes": "forged"}}
    with store.tx() as c:
        c.execute(
            update(t.audit)
            .where(t.audit.c.seq == 7)
            .values(data=forged["data"], hash=entry_hash(forged["prev_hash"], forged))
        )
    assert verify(store) == (
        1,
        ["entry 8: does not follow the entry before it", "8 entries, 1 problem(s)"],
    )


def test_a_removed_entry_is_named(store: Store, entries: list[dict[str, Any]]) -> None:
    with store.tx() as c:
        c.execute(delete(t.audit).where(t.audit.c.seq == 4))
    code, lines = verify(store)
    assert code == 1
    assert lines == [
        "entry 5: expected entry 4 here (removed or reordered)",
        "entry 5: does not follow the entry before it",
        "7 entries, 2 problem(s)",
    ]


def test_a_removed_first_entry_is_found(store: Store, entries: list[dict[str, Any]]) -> None:
    with store.tx() as c:
        c.execute(delete(t.audit).where(t.audit.c.seq == 1))
    assert verify(store) == (
        1,
        ["entry 2: does not follow the entry before it", "7 entries, 1 problem(s)"],
    )


def test_two_swapped_entries_are_named(store: Store, entries: list[dict[str, Any]]) -> None:
    third, sixth = row(store, 3), row(store, 6)
    with store.tx() as c:
        c.execute(
            update(t.audit).where(t.audit.c.seq == 3).values(**{k: sixth[k] for k in COLUMNS})
        )
        c.execute(
            update(t.audit).where(t.audit.c.seq == 6).values(**{k: third[k] for k in COLUMNS})
        )
    code, lines = verify(store)
    assert code == 1
    assert lines[0] == "entry 3: does not follow the entry before it"
    assert "entry 6: does not follow the entry before it" in lines
    assert lines[-1].startswith("8 entries, ")


def test_export_is_json_lines_that_verify_accepts(
    store: Store, entries: list[dict[str, Any]], tmp_path: Path
) -> None:
    code, out = cli("server", "--database", url_of(store), "audit", "export")
    assert code == 0
    lines = out.splitlines()
    assert [json.loads(line) for line in lines] == entries
    assert all(json.loads(line)["seq"] == i for i, line in enumerate(lines, 1))
    path = tmp_path / "audit.jsonl"
    path.write_text(out, encoding="utf-8")
    assert verify(store, "--file", str(path)) == (0, ["8 entries, chain intact"])
    # the file is verified, not the database: a broken database does not matter
    with store.tx() as c:
        c.execute(delete(t.audit).where(t.audit.c.seq == 2))
    assert verify(store, "--file", str(path))[0] == 0


def export_lines(store: Store) -> list[str]:
    code, out = cli("server", "--database", url_of(store), "audit", "export")
    assert code == 0
    return out.splitlines()


def check_file(store: Store, tmp_path: Path, lines: list[str]) -> tuple[int, list[str]]:
    path = tmp_path / "tampered.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return verify(store, "--file", str(path))


def test_a_tampered_export_is_detected(
    store: Store, entries: list[dict[str, Any]], tmp_path: Path
) -> None:
    lines = export_lines(store)
    changed = json.loads(lines[6])
    changed["data"]["notes"] = "something else"
    tampered = [*lines[:6], json.dumps(changed, sort_keys=True), *lines[7:]]
    assert check_file(store, tmp_path, tampered) == (
        1,
        ["entry 7: its content was changed", "8 entries, 1 problem(s)"],
    )


def test_a_line_removed_from_an_export_is_detected(
    store: Store, entries: list[dict[str, Any]], tmp_path: Path
) -> None:
    lines = export_lines(store)
    code, problems = check_file(store, tmp_path, lines[:2] + lines[3:])
    assert code == 1
    assert problems[:2] == [
        "entry 4: expected entry 3 here (removed or reordered)",
        "entry 4: does not follow the entry before it",
    ]


def test_reordered_lines_in_an_export_are_detected(
    store: Store, entries: list[dict[str, Any]], tmp_path: Path
) -> None:
    lines = export_lines(store)
    code, problems = check_file(store, tmp_path, [lines[0], lines[2], lines[1], *lines[3:]])
    assert code == 1
    assert problems[0] == "entry 3: expected entry 2 here (removed or reordered)"


def test_audit_verifies_on_a_postgres_database_not_in_utc(
    fresh_postgres_url: str, make_request: RequestFactory, people: Directory
) -> None:
    database = fresh_postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(fresh_postgres_url, autocommit=True) as c:
        c.execute(f"ALTER DATABASE \"{database}\" SET timezone TO 'Europe/Paris'")
    engine = make_engine(fresh_postgres_url)
    try:
        migrate(engine)
        store = Store(engine)
        store.import_directory(people)
        entries = activity(store, make_request)
        assert verify_chain(entries) == []
        assert all(e["at"].endswith("Z") for e in entries)
    finally:
        engine.dispose()
