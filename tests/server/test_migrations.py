"""Migrations from an empty database, on SQLite and PostgreSQL: every table is there, the
schema is the one ``tables.py`` describes, and running them again changes nothing."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text

from runner.cli.main import main
from runner.server import tables as t
from runner.server.database import SCHEMA_HEAD, alembic_config
from runner.server.errors import ServerError
from runner.server.storage import Caller, Store, make_engine, migrate

EXPECTED = {
    "people",
    "team_members",
    "tokens",
    "web_sessions",
    "interruptions",
    "submissions",
    "runs",
    "locks",
    "audit",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def engine(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def head(engine: Engine) -> list[str]:
    with engine.connect() as c:
        return [r[0] for r in c.execute(text("SELECT version_num FROM alembic_version"))]


def test_empty_database_has_no_tables(engine: Engine) -> None:
    assert table_names(engine) == set()


def test_migrate_creates_every_table(engine: Engine) -> None:
    migrate(engine)
    assert table_names(engine) == EXPECTED | {"alembic_version"}
    assert head(engine) == [SCHEMA_HEAD]
    columns = {c["name"] for c in inspect(engine).get_columns("interruptions")}
    assert columns == {
        "id",
        "run_id",
        "step_id",
        "request",
        "state",
        "responsible",
        "version",
        "created",
        "updated",
        "owner",
    }
    uniques = inspect(engine).get_unique_constraints("interruptions")
    assert [sorted(u["column_names"]) for u in uniques] == [["run_id", "step_id"]]


def test_migrated_schema_matches_tables_py(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as c:
        differences = compare_metadata(MigrationContext.configure(c), t.metadata)
    assert differences == []


def test_migrating_again_is_a_no_op(engine: Engine) -> None:
    migrate(engine)
    store = Store(engine)
    token = store.issue_token("runner", label="kept")
    before_tables = table_names(engine)
    before_audit = store.audit_entries()
    migrate(engine)
    migrate(engine)
    assert table_names(engine) == before_tables
    assert head(engine) == [SCHEMA_HEAD]
    # nothing lost, nothing added
    assert store.audit_entries() == before_audit
    assert store.authenticate(token) is not None
    with engine.connect() as c:
        assert c.execute(select(t.tokens.c.label)).scalars().all() == ["kept"]


def test_every_server_command_migrates_first(empty_url: str) -> None:
    """`runner server ... users list` on an empty database creates the schema; twice is fine."""
    for _ in range(2):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["server", "--database", empty_url, "users", "list"]) == 0
        assert out.getvalue() == ""
    engine = make_engine(empty_url)
    try:
        assert table_names(engine) == EXPECTED | {"alembic_version"}
        assert head(engine) == [SCHEMA_HEAD]
    finally:
        engine.dispose()


def test_the_schema_head_is_alembics_head() -> None:
    """SCHEMA_HEAD decides whether a start runs Alembic at all: a migration added without it
    would never run on a database already at the old head."""
    config = alembic_config()
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]


def test_a_database_at_an_older_revision_is_migrated_to_the_head(engine: Engine) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    assert head(engine) == ["0002"]
    assert "owner" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    migrate(engine)
    assert head(engine) == [SCHEMA_HEAD]
    assert "owner" in {c["name"] for c in inspect(engine).get_columns("runs")}


def test_an_interruption_kept_before_owners_is_cancelled_only_by_an_admin(
    engine: Engine,
) -> None:
    """Migration 0004 keeps who registered an interruption; one registered before it has no
    owner, and no runner token may cancel it (fail closed)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    moment = datetime.now(UTC)
    with engine.begin() as c:
        c.execute(
            t.interruptions.insert().values(
                id="old--gate",
                run_id="old",
                step_id="gate",
                request={"run_id": "old"},
                state="waiting",
                version=1,
                created=moment,
                updated=moment,
            )
        )
    migrate(engine)
    store = Store(engine)
    with pytest.raises(ServerError) as refused:
        store.cancel("old--gate", "timed-out", Caller("runner", "any", None))
    assert refused.value.code == "not_owner"
    assert store.cancel("old--gate", "x", Caller("admin", "adm", None))["state"] == "cancelled"


def test_a_database_at_the_head_opens_without_alembic(tmp_path: Path) -> None:
    """Each server start paid about 0.25 s for Alembic (Mako, Pygments) to find nothing to do."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    ready = make_engine(url)
    migrate(ready)
    ready.dispose()
    probe = (
        "import sys\n"
        "from runner.server.database import make_engine, migrate\n"
        f"migrate(make_engine({url!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_database_to_migrate_without_alembic_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alembic is imported only to migrate: its absence is the same missing `server` extra as
    before, not a traceback."""
    monkeypatch.setitem(sys.modules, "alembic", None)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert main(["server", "--database", url, "users", "list"]) == 2
    err = capsys.readouterr().err
    assert "the approval server needs the server extra (alembic is missing)" in err
    assert "pip install 'deploy-runner[server]'" in err
    assert "Traceback" not in err


def test_a_database_a_newer_runner_migrated_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    assert main(["server", "--database", url, "users", "list"]) == 2
    err = capsys.readouterr().err
    assert "the database's schema is at revision 0099, which this runner does not know" in err
    assert f"(its newest is {SCHEMA_HEAD})" in err
    assert "Traceback" not in err
