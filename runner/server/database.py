"""The database: an engine on SQLite (default) or PostgreSQL, brought to the newest schema."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text

from runner.errors import UsageError

if TYPE_CHECKING:
    from alembic.config import Config

#: the newest migration in runner/server/migrations/versions (tests/server/test_migrations.py
#: keeps it equal to Alembic's head)
SCHEMA_HEAD = "0004"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_connection: Any, record: Any) -> None:
            # let SQLAlchemy issue BEGIN itself, and make it IMMEDIATE: writers queue up
            # instead of failing with "database is locked" when they upgrade a read lock
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at (Alembic's ``alembic_version``), None when it has none."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        revisions = list(found)
    return revisions[0] if len(revisions) == 1 else None


def alembic_config() -> Config:
    """Alembic's configuration for the server's migrations (runner/server/migrations)."""
    from alembic.config import Config  # see migrate: only when the schema must change

    config = Config()
    config.set_main_option("script_location", str(resources.files("runner.server") / "migrations"))
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (Alembic ``upgrade head``), unless it is there."""
    revision = schema_revision(engine)
    if revision == SCHEMA_HEAD:
        return
    # Alembic imports Mako, and Mako Pygments where it is installed: about 0.25 s of each
    # server start, for a database that is nearly always at the head already
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except CommandError:
        if revision is None:
            raise
        # the one way a known database fails here: a newer runner migrated it further
        raise UsageError(
            f"the database's schema is at revision {revision}, which this runner does not "
            f"know (its newest is {SCHEMA_HEAD})",
            hint="a newer deploy-runner migrated it: run the server with that version",
        ) from None
